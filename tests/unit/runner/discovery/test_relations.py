"""Which relations exploration's findings point to: neighbours, edge-port FDB entries, TCP dependencies."""

from __future__ import annotations

from midprobe.runner.discovery.relations import CONNECTS_TO, DEPENDS_ON, EDGE_PORT_MACS, Lookup, lookups
from midprobe.runner.discovery.sensors import Findings, Neighbour


def _tcp(
    kind: str,
    local: str,
    local_port: int,
    remote: str | None = None,
    port: int | None = None,
    process: str | None = None,
) -> dict[str, str | None]:
    return {
        "type": kind,
        "protocol": "tcp",
        "local_address": local,
        "local_port": str(local_port),
        "remote_address": remote,
        "remote_port": str(port) if port else None,
        "process": process,
    }


def test_a_connection_to_a_remote_service_makes_this_host_depend_on_the_remote_one() -> None:
    rows = (
        _tcp("listening", "198.18.0.10", 22),
        _tcp("established", "198.18.0.10", 41822, "198.18.0.12", 9100, "lab-client"),
        _tcp("established", "198.18.0.10", 41830, "198.18.0.12", 80, "curl"),  # the same pair: once
        _tcp("established", "198.18.0.10", 22, "198.18.0.1", 50000, "sshd"),
        _tcp("established", "127.0.0.1", 5000, "127.0.0.53", 53),  # loopback: no other CI
    )
    found = lookups(Findings(tables={"cmdb_tcp_connection": rows}))
    assert found == [
        Lookup(DEPENDS_ON, False, "198.18.0.12", ":9100 (TCP, lab-client)", address="198.18.0.12"),
        Lookup(DEPENDS_ON, True, "198.18.0.1", " (from port 50000 to :22, sshd)", address="198.18.0.1"),
    ]
    assert [lookup.verb for lookup in found] == ["Depends on", "Used by"]  # a client of sshd uses this host


def test_fdb_entries_on_edge_ports_only_and_lldp_neighbours_first() -> None:
    uplink = [
        {"mac_address": f"3c:ec:ef:00:00:{n:02x}", "port": "48", "interface": "Gi1/0/48"}
        for n in range(EDGE_PORT_MACS + 1)
    ]
    edge = {"mac_address": "3c:ec:ef:00:01:01", "port": "3", "interface": "Gi1/0/3"}
    findings = Findings(
        neighbours=(Neighbour("linux1", sys_name="linux1", local_port="1"),),
        tables={"discovery_switch_fwd_table": (*uplink, edge)},
    )
    assert lookups(findings) == [
        Lookup(CONNECTS_TO, False, "linux1", " on port 1 (LLDP)", name="linux1"),
        Lookup(CONNECTS_TO, False, "3c:ec:ef:00:01:01", " on Gi1/0/3 (FDB)", mac="3c:ec:ef:00:01:01"),
    ]
