"""The zoo's held-out split and recording reader (pure)."""

from __future__ import annotations

import pytest

from midprobe.runner.lab.zoo import (
    community_of,
    data_root,
    list_recordings,
    load_expected,
    read_identity,
    used_recordings,
)


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


def test_read_identity_decodes_hex_values_and_community_drops_the_suffixes() -> None:
    text = "1.3.6.1.2.1.1.1.0|4x|4c696e7578\n1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.8072.3.2.10\n1.3.6.1.2.1.1.5.0|4|box\n"
    identity = read_identity("os/linux/a.snmprec", text)
    assert (identity.sys_descr, identity.sys_object_id, identity.sys_name) == (
        "Linux",
        "1.3.6.1.4.1.8072.3.2.10",
        "box",
    )
    assert community_of("network/switch/cisco-c3560.snmprec.bz2") == "network/switch/cisco-c3560"
