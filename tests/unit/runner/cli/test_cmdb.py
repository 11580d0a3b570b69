"""``midprobe cmdb list/show/history/export`` on a CMDB filled through the store."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from midprobe.runner.cli.main import main
from midprobe.runner.cmdb import DiscoveredDevice, NetworkInterface, open_cmdb
from midprobe.runner.queue.url import sqlite_url


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = sqlite_url(tmp_path / "ecc.db")
    with open_cmdb(url) as store:
        linux = store.reconcile(
            DiscoveredDevice(
                "cmdb_ci_linux_server",
                "linux1",
                ip_address="198.18.0.10",
                serial_number="VMW-1",
                interfaces=(NetworkInterface("eth0", "02:cd:00:00:00:0a", ("198.18.0.10",)),),
                attributes={"os": "Linux", "os_version": "12"},
            ),
            "d1",
        )
        switch = store.reconcile(
            DiscoveredDevice("cmdb_ci_ip_switch", "sw\x1b[31m[b]1", ip_address="198.18.0.11"), "d1"
        )
        store.relate(linux.ci or "", switch.ci or "", "Connects to::Connected by", "d1")
        store.reconcile(
            DiscoveredDevice(
                "cmdb_ci_linux_server",
                "linux1",
                ip_address="198.18.0.10",
                serial_number="VMW-1",
                attributes={"os_version": "13"},
            ),
            "d2",
        )
    return url


def test_list_json_is_keyed_by_servicenow_fields(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, _ = run(capsys, "cmdb", "list", "--queue", url, "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["name"], r["sys_class_name"]) for r in rows] == [
        ("sw\x1b[31m[b]1", "cmdb_ci_ip_switch"),
        ("linux1", "cmdb_ci_linux_server"),
    ]
    assert rows[1]["os_version"] == "13"
    assert rows[1]["interfaces"] == [
        {"name": "eth0", "mac_address": "02:cd:00:00:00:0a", "ip_addresses": ["198.18.0.10"]}
    ]
    assert rows[1]["ip_addresses"] == ["198.18.0.10"]
    assert (rows[0]["interfaces"], rows[0]["ip_addresses"]) == ([], ["198.18.0.11"])
    code, out, _ = run(capsys, "cmdb", "list", "--queue", url, "--class", "cmdb_ci_ip_switch", "--json")
    assert [r["name"] for r in json.loads(out)] == ["sw\x1b[31m[b]1"]


def test_table_output_escapes_terminal_sequences(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, err = run(capsys, "cmdb", "list", "--queue", url)
    assert code == 0
    assert "\x1b" not in out
    assert "sw\\x1b[31m[b]1" in out
    assert "2 CIs" in err
    assert "02:cd:00:00:00:0a" in out  # no emoji codes (":cd:") or markup read into device data


def test_show_and_history(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, _ = run(capsys, "cmdb", "show", "linux1", "--queue", url)
    assert code == 0
    assert "serial_number: VMW-1" in out
    assert "eth0  02:cd:00:00:00:0a  198.18.0.10" in out
    assert "Connects to sw\\x1b[31m[b]1" in out
    code, out, _ = run(capsys, "cmdb", "history", "198.18.0.10", "--queue", url)
    assert code == 0
    assert "os_version: 12 -> 13  [d2]" in out


def test_export_csv_to_a_file(capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path) -> None:
    target = tmp_path / "cis.csv"
    code, _, _ = run(capsys, "cmdb", "export", "--queue", url, "--format", "csv", "-o", str(target))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert {r["name"] for r in rows} == {"linux1", "sw\x1b[31m[b]1"}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("cmdb", "show", "nothing"), "no CI"),
        (("cmdb", "show", "linux1", "--queue", "sqlite:///{tmp}/typo.db"), "no database"),
        (("cmdb", "export", "-o", "/proc/version"), "--output"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path, args: tuple[str, ...], named: str
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--queue" not in argv:
        argv += ["--queue", url]
    code, _out, err = run(capsys, *argv)
    assert code == 2
    assert named in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert (tmp_path / "typo.db").exists() is False


def test_map_draws_related_cis_as_text_dot_and_json(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "cmdb", "map", "--queue", url)
    assert code == 0
    assert out.splitlines() == [
        "group 1: 2 CIs",
        "  linux1 (linux_server, 198.18.0.10)",
        "    Connects to sw\\x1b[31m[b]1 (ip_switch, 198.18.0.11)",
        "  sw\\x1b[31m[b]1 (ip_switch, 198.18.0.11)",
    ]
    code, out, _ = run(capsys, "cmdb", "map", "--queue", url, "--format", "json")
    document = json.loads(out)
    assert sorted(node["name"] for node in document["nodes"]) == ["linux1", "sw\x1b[31m[b]1"]
    assert [edge["type"] for edge in document["edges"]] == ["Connects to::Connected by"]
    target = tmp_path / "map.dot"
    code, out, _ = run(capsys, "cmdb", "map", "--queue", url, "--format", "dot", "-o", str(target))
    assert (code, out) == (0, "")
    assert target.read_text(encoding="utf-8").startswith("digraph cmdb {")


def test_map_around_one_ci_and_by_relation_type(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, _ = run(capsys, "cmdb", "map", "--queue", url, "--around", "linux1", "--depth", "0")
    assert code == 0
    assert out.splitlines() == ["related to no other CI: 1", "  linux1 (linux_server, 198.18.0.10)"]
    code, out, _ = run(capsys, "cmdb", "map", "--queue", url, "--type", "Runs on::Runs")
    assert out.splitlines()[0] == "related to no other CI: 2"
    code, _, err = run(capsys, "cmdb", "map", "--queue", url, "--around", "nosuchci")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "nosuchci" in err


def test_map_is_drawn_as_svg_and_png_by_graphviz(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    target = tmp_path / "map.svg"
    code, _, err = run(capsys, "cmdb", "map", "--queue", url, "--format", "svg", "-o", str(target))
    assert code == 0, err
    svg = target.read_text(encoding="utf-8")
    assert "<svg" in svg
    assert ">linux1<" in svg  # the CI's name drawn as text in its node
    assert ">Connects to<" in svg  # the relation's label on its arrow
    assert "\x1b" not in svg
    picture = tmp_path / "map.png"
    code, _, err = run(capsys, "cmdb", "map", "--queue", url, "--format", "png", "-o", str(picture))
    assert code == 0, err
    assert picture.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_show_lists_what_exploration_stored_and_a_new_exploration_replaces_it(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    with open_cmdb(url) as store:
        linux, switch = store.get("linux1").sys_id, store.get("198.18.0.11").sys_id
        packages = tuple({"name": f"pkg{n:03d}", "version": "1.0"} for n in range(25))
        store.record_exploration(
            linux,
            {
                "cmdb_sam_sw_install": packages,
                "cmdb_tcp_connection": (
                    {
                        "type": "listening",
                        "protocol": "tcp",
                        "local_address": "*",
                        "local_port": "22",
                        "process": "sshd",
                    },
                ),
            },
            "d3",
        )
        store.relate(linux, switch, "Depends on::Used by", "d3")
        assert store.record_exploration(linux, {"cmdb_sam_sw_install": packages[:12]}, "d4") == {
            "cmdb_sam_sw_install": 12
        }  # the packages are replaced; the sockets, not read this time, are kept
    code, out, _ = run(capsys, "cmdb", "show", "linux1", "--queue", url)
    assert code == 0
    assert "Depends on sw\\x1b[31m[b]1" in out
    assert "cmdb_sam_sw_install: 12 rows" in out
    assert "  name=pkg000  version=1.0" in out
    assert "... 2 more (--json shows all)" in out
    assert "  type=listening  protocol=tcp  local_address=*  local_port=22  process=sshd" in out
    code, out, _ = run(capsys, "cmdb", "show", "linux1", "--queue", url, "--json")
    explored = json.loads(out)["exploration"]
    assert len(explored["cmdb_sam_sw_install"]) == 12
    assert explored["cmdb_ci_disk"] == []
    code, out, _ = run(capsys, "cmdb", "show", "198.18.0.11", "--queue", url)
    assert "Used by linux1" in out
