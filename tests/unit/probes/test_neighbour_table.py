"""The neighbour-table overflow counters, parsed from recorded /proc/net/stat text."""

from __future__ import annotations

from pathlib import Path

from midprobe.probes.neighbour_table import (
    OverflowCounts,
    overflowed_since,
    parse_neighbour_stat,
    read_overflows,
)

_HEADER = (
    "entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast "
    "rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls\n"
)
# Recorded on a two-CPU machine, then table_fulls set to 0x1f and 0x02 to show a full table.
_RECORDED = _HEADER + (
    "00000001 00005983 0000154b 00000002   000d9979 0009e36f 0000627e   00000000         "
    "00000000         00000000         00000008       00000000            0000001f\n"
    "00000001 0000591f 00009d56 00000005   000f00ea 000af031 000058d9   00000000         "
    "00000000         000004c0         00000007       00000000            00000002\n"
)


def test_table_fulls_are_summed_over_cpus_in_hexadecimal() -> None:
    assert parse_neighbour_stat(_RECORDED) == 0x1F + 0x02


def test_a_file_without_the_column_or_with_garbage_gives_none() -> None:
    assert parse_neighbour_stat("entries allocs\n00000001 00000002\n") is None
    assert parse_neighbour_stat(_HEADER + "zz\n") is None
    assert parse_neighbour_stat("") is None


def test_an_overflow_during_a_scan_names_the_sysctl_to_raise(tmp_path: Path) -> None:
    (tmp_path / "arp_cache").write_text(_HEADER + "0 0 0 0 0 0 0 0 0 0 0 0 00000003\n")
    before = read_overflows(tmp_path)  # ndisc_cache is missing: left out, not an error
    assert before == OverflowCounts({"arp_cache": 3})
    (tmp_path / "arp_cache").write_text(_HEADER + "0 0 0 0 0 0 0 0 0 0 0 0 00000009\n")
    assert overflowed_since(before, read_overflows(tmp_path)) == ("net.ipv4.neigh.default.gc_thresh3",)
    assert overflowed_since(before, before) == ()
