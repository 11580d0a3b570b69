"""The zoo's held-out split, recording reader, device addresses and served data layout."""

from __future__ import annotations

import bz2
import os
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.lab.zoo import (
    data_root,
    device_addresses,
    list_recordings,
    prepare_data,
    read_identity,
    served_path,
    used_recordings,
)
from midprobe.runner.lab.zoo_classify import load_expected


def test_only_odd_positions_of_each_folder_sorted_by_name_are_used() -> None:
    paths = [
        "UPS/c.snmprec.bz2",
        "UPS/a.snmprec",
        "UPS/b.snmprec.bz2",
        "UPS/d.snmprec",
        "os/linux/z.snmprec",
        "os/windows/y.snmprec",
        "os/windows/x.snmprec",
    ]
    assert used_recordings(paths) == (
        "UPS/a.snmprec",
        "UPS/c.snmprec.bz2",
        "os/linux/z.snmprec",
        "os/windows/x.snmprec",
    )


def test_the_expectations_name_every_used_recording_and_no_held_out_one() -> None:
    pytest.importorskip("snmpsim_data")
    used = used_recordings(list_recordings(data_root()))
    expected = load_expected()
    assert set(expected) == {path for path in used if not path.startswith("unclassified/")}
    assert all(value.startswith("cmdb_ci_") for value in expected.values())


def test_read_identity_decodes_hex_values() -> None:
    text = "1.3.6.1.2.1.1.1.0|4x|4c696e7578\n1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.8072.3.2.10\n1.3.6.1.2.1.1.5.0|4|box\n"
    identity = read_identity("os/linux/a.snmprec", text)
    assert (identity.sys_descr, identity.sys_object_id, identity.sys_name) == (
        "Linux",
        "1.3.6.1.4.1.8072.3.2.10",
        "box",
    )


def test_each_recording_gets_its_own_address_in_order_and_a_small_network_is_refused() -> None:
    recordings = ["UPS/a.snmprec", "os/linux/z.snmprec.bz2", "os/windows/x.snmprec"]
    assert device_addresses("198.18.1.0/24", recordings) == {
        "UPS/a.snmprec": "198.18.1.1",
        "os/linux/z.snmprec.bz2": "198.18.1.2",
        "os/windows/x.snmprec": "198.18.1.3",
    }
    with pytest.raises(ConfigError, match="holds 2 addresses, the zoo needs 3"):
        device_addresses("198.18.1.0/30", recordings)


def test_each_device_has_its_own_data_folder_holding_the_public_communitys_file() -> None:
    assert served_path(0) == "0/public.snmprec"
    assert served_path(12) == "12/public.snmprec"


def _recording(root: Path, path: str, sys_descr: str) -> None:
    text = f"1.3.6.1.2.1.1.1.0|4|{sys_descr}\n1.3.6.1.4.1.9.9.1.0|2|7\n"
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    if path.endswith(".bz2"):
        (root / path).write_bytes(bz2.compress(text.encode()))
    else:
        (root / path).write_text(text)


def test_prepare_data_serves_each_recording_at_its_endpoint_and_keeps_unchanged_files(tmp_path: Path) -> None:
    root, target = tmp_path / "recordings", tmp_path / "cache" / "data"
    _recording(root, "UPS/a.snmprec", "ups a")
    _recording(root, "os/linux/z.snmprec.bz2", "linux z")
    (target / "network" / "old").mkdir(parents=True)
    (target / "network" / "old" / "left.snmprec").write_text("from an earlier layout")

    prepare_data(root, ["UPS/a.snmprec", "os/linux/z.snmprec.bz2"], target)
    served = {p.relative_to(target).as_posix(): p.read_text() for p in target.rglob("*") if p.is_file()}
    # Only the MIB-2 lines are served, decompressed; nothing from the earlier layout is left.
    assert served == {
        "0/public.snmprec": "1.3.6.1.2.1.1.1.0|4|ups a\n",
        "1/public.snmprec": "1.3.6.1.2.1.1.1.0|4|linux z\n",
    }
    assert sorted(p.name for p in target.iterdir()) == ["0", "1"]

    first = target / "0/public.snmprec"
    second = target / "1/public.snmprec"
    os.utime(first, ns=(1, 1))
    os.utime(second, ns=(1, 1))
    _recording(root, "UPS/b.snmprec", "ups b")
    # b now comes first: device 0's file is rewritten (snmpsim reindexes it), device 1's is kept.
    prepare_data(root, ["UPS/b.snmprec", "os/linux/z.snmprec.bz2"], target)
    assert first.read_text() == "1.3.6.1.2.1.1.1.0|4|ups b\n"
    assert first.stat().st_mtime_ns != 1
    assert second.stat().st_mtime_ns == 1
