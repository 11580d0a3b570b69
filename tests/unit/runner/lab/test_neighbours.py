"""Reading the kernel's neighbour tables for ``lab status``: pure parsing of ``ip -s ntable show``."""

from __future__ import annotations

from pathlib import Path

from midprobe.runner.lab.neighbours import NeighbourTable, neighbour_report, parse_ntables

#: ``ip -s ntable show`` as iproute2 prints it (recorded on a Debian 12 host).
RECORDED = (Path(__file__).resolve().parents[4] / "fixtures/lab/ntable/ip-s-ntable-show.txt").read_text()


def test_the_table_blocks_are_read_and_the_device_blocks_skipped() -> None:
    assert parse_ntables(RECORDED) == (
        NeighbourTable("arp_cache", entries=6, limit=1024, overflows=0),
        NeighbourTable("ndisc_cache", entries=5, limit=1024, overflows=0),
    )


def test_a_healthy_table_is_reported_without_a_warning() -> None:
    assert neighbour_report(parse_ntables(RECORDED)) == [
        "neighbour tables (shared by every lab): arp_cache 6 of 1024 entries, ndisc_cache 5 of 1024 entries"
    ]


def test_an_overflow_is_reported_with_the_sysctl_to_raise() -> None:
    overflowed = RECORDED.replace("table_fulls 0", "table_fulls 17", 1)
    lines = neighbour_report(parse_ntables(overflowed))
    assert len(lines) == 2
    assert lines[1].startswith("warning: the kernel's arp_cache overflowed 17 time(s) since boot ")
    assert "net.ipv4.neigh.default.gc_thresh3 = 1024" in lines[1]
    assert "ENOBUFS" in lines[1]


def test_a_nearly_full_table_is_a_warning_too() -> None:
    crowded = RECORDED.replace("entry_size 344 entries 5", "entry_size 344 entries 1000")
    lines = neighbour_report(parse_ntables(crowded))
    assert lines[1] == (
        "warning: the kernel's ndisc_cache is nearly full (1000 of net.ipv6.neigh.default.gc_thresh3 = 1024): "
        "a larger scan in any lab will see live hosts as down"
    )


def test_ip_failing_is_said_not_hidden() -> None:
    assert neighbour_report(None) == ["neighbour tables: unknown (`ip -s ntable show` failed)"]
