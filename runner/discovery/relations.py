"""Which relations an exploration's findings point to: the CIs to look up and how each relates (pure).

Three sources, one shape (a :class:`Lookup`: find the CI by MAC, address or name, then record the
relation):

- LLDP and CDP neighbours: this CI ``Connects to`` the neighbour.
- The forwarding database of a switch: this switch ``Connects to`` the owner of a MAC learned on
  an *edge* port, one where the switch learned at most ``EDGE_PORT_MACS`` MACs (an uplink carries
  the MACs of every device behind it, which are not plugged in there).
- TCP connections (``cmdb_tcp_connection``), as application dependency mapping does: an
  established connection whose local port is one this CI listens on is a client using this CI's
  service (the client ``Depends on`` this CI); any other is this CI using a remote service (this
  CI ``Depends on`` the CI holding the remote address). One lookup per remote address and way.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass
from typing import Final

from midprobe.runner.discovery.sensors import Findings

CONNECTS_TO: Final = "Connects to::Connected by"
DEPENDS_ON: Final = "Depends on::Used by"
#: A switch port on which at most this many MACs were learned is taken as an edge port.
EDGE_PORT_MACS: Final = 4


@dataclass(frozen=True)
class Lookup:
    """A CI to find (by ``mac``, else ``address``, else ``name``) and the relation to record with it."""

    type: str
    #: True: the CI found is the parent (it depends on this one); False: this CI is the parent.
    found_is_parent: bool
    #: What the log calls the other end, and how it was seen (`` on port 3 (LLDP)``).
    seen: str
    how: str
    mac: str | None = None
    address: str | None = None
    name: str | None = None

    @property
    def verb(self) -> str:
        """How the log says this CI relates to the other: ``Connects to``, ``Depends on``, ``Used by``."""
        parent, child = self.type.split("::", 1)
        return child if self.found_is_parent else parent


def _neighbour_lookups(findings: Findings) -> list[Lookup]:
    lookups = []
    for neighbour in findings.neighbours:
        where = "ifIndex" if neighbour.protocol == "cdp" else "port"
        how = f" on {where} {neighbour.local_port}" if neighbour.local_port else ""
        lookups.append(
            Lookup(
                CONNECTS_TO,
                False,
                neighbour.sys_name or neighbour.chassis_id,
                f"{how} ({neighbour.protocol.upper()})",
                mac=neighbour.chassis_mac,
                address=neighbour.address,
                name=neighbour.sys_name,
            )
        )
    return lookups


def _fdb_lookups(findings: Findings) -> list[Lookup]:
    rows = findings.tables.get("discovery_switch_fwd_table", ())
    per_port = Counter(row.get("port") for row in rows)
    lookups = []
    for row in rows:
        mac, port = row.get("mac_address"), row.get("port")
        if mac and port and per_port[port] <= EDGE_PORT_MACS:
            lookups.append(
                Lookup(CONNECTS_TO, False, mac, f" on {row.get('interface') or port} (FDB)", mac=mac)
            )
    return lookups


def _is_remote(text: str | None) -> bool:
    try:
        address = ipaddress.ip_address(text or "")
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


def _dependency_lookups(findings: Findings) -> list[Lookup]:
    rows = findings.tables.get("cmdb_tcp_connection", ())
    listening = {
        row.get("local_port")
        for row in rows
        if row.get("type") == "listening" and row.get("protocol") == "tcp"
    }
    own = {row.get("local_address") for row in rows}
    lookups: dict[tuple[bool, str], Lookup] = {}
    for row in rows:
        remote = row.get("remote_address")
        if row.get("type") != "established" or not _is_remote(remote) or remote in own or remote is None:
            continue
        serving = row.get("local_port") in listening
        if (serving, remote) in lookups:
            continue
        process = f", {row['process']}" if row.get("process") else ""
        how = (
            f" (from port {row.get('remote_port')} to :{row.get('local_port')}{process})"
            if serving
            else f":{row.get('remote_port')} (TCP{process})"
        )
        lookups[serving, remote] = Lookup(DEPENDS_ON, serving, remote, how, address=remote)
    return list(lookups.values())


def lookups(findings: Findings) -> list[Lookup]:
    """Every relation the findings point to, neighbours first, then the FDB, then TCP connections."""
    return [*_neighbour_lookups(findings), *_fdb_lookups(findings), *_dependency_lookups(findings)]


__all__ = ["CONNECTS_TO", "DEPENDS_ON", "EDGE_PORT_MACS", "Lookup", "lookups"]
