"""SSHIdentity / SSHExplore: the commands' recorded stdout read into a host inventory (pure)."""

from __future__ import annotations

import json
from pathlib import Path

from midprobe.probes.ssh.explore import (
    COMMANDS,
    EXPLORE_TOPIC,
    IDENTITY_TOPIC,
    ROOT_ONLY,
    encode_inventory,
    inventory,
)
from midprobe.probes.ssh.parsers import Link, parse_dmi_value, parse_links
from tests.unit.probes.ssh.test_command import connection_info

RECORDED = Path(__file__).resolve().parents[4] / "fixtures" / "ssh" / "debian12-explore"


def _recorded() -> dict[str, str | None]:
    """Each exploration command's recorded stdout; None where the test bed could not read it (no DMI)."""
    names = [name for name, _ in COMMANDS[EXPLORE_TOPIC]]
    return {
        name: (RECORDED / f"{name}.txt").read_text() if (RECORDED / f"{name}.txt").exists() else None
        for name in names
    }


def test_identity_runs_a_subset_of_exploration_and_only_the_serial_needs_root() -> None:
    identity = dict(COMMANDS[IDENTITY_TOPIC])
    explore = dict(COMMANDS[EXPLORE_TOPIC])
    assert identity.items() <= explore.items()
    assert {"hostname", "links", "addresses", "serial"} == set(identity)
    assert set(identity) >= ROOT_ONLY


def test_the_recorded_host_gives_its_links_with_macs_addresses_cpus_and_memory() -> None:
    found = inventory(_recorded())
    assert found.hostname == "sshtest"
    assert [(link.name, link.kind, link.state) for link in found.links] == [
        ("lo", "loopback", "UNKNOWN"),
        ("eth0peer", "ether", "UP"),
        ("eth0", "ether", "UP"),
    ]
    eth0 = next(link for link in found.links if link.name == "eth0")
    assert eth0.mac == "a2:82:3e:e8:c4:b3"
    assert eth0.mtu == 1500
    assert next(link for link in found.links if link.name == "lo").loopback
    assert ("198.18.0.10", 24, "eth0") in {(a.address, a.prefix_length, a.interface) for a in found.addresses}
    assert found.cpu_count is not None
    assert found.cpu_count >= 1
    assert found.memory_mb is not None
    assert found.memory_mb > 0
    assert (found.serial_number, found.model, found.manufacturer) == (None, None, None)  # no DMI there


def test_dmi_files_are_read_trimmed_and_blank_ones_are_nothing() -> None:
    assert parse_dmi_value("VMware-56 4d 2a 1b\n") == "VMware-56 4d 2a 1b"
    assert parse_dmi_value("\n") is None
    assert parse_dmi_value(None) is None
    assert parse_dmi_value("bad\x07") is None
    found = inventory({"serial": "PF2ABCDE\n", "model": "ThinkSystem SR630\n", "manufacturer": "Lenovo\n"})
    assert (found.serial_number, found.model, found.manufacturer) == (
        "PF2ABCDE",
        "ThinkSystem SR630",
        "Lenovo",
    )


def test_links_without_a_mac_and_odd_lines() -> None:
    text = (
        "4: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc noqueue state UNKNOWN mode DEFAULT\\    link/none \n"
        "not a link line\n"
        "5: bond0: <BROADCAST,MULTICAST,MASTER> mtu 1500 state DOWN\\    link/ether 02:00:00:00:00:05 brd ff:ff:ff:ff:ff:ff\n"
    )
    assert parse_links(text) == (
        Link("wg0", None, "none", "UNKNOWN", 1420),
        Link("bond0", "02:00:00:00:00:05", "ether", "DOWN", 1500),
    )


def test_the_recorded_host_gives_os_release_routes_sockets_disks_packages_and_processes() -> None:
    found = inventory(_recorded())
    assert (found.os_name, found.os_version) == ("Debian GNU/Linux", "12")
    assert (found.routes[0].destination, found.routes[0].gateway, found.routes[0].device) == (
        "198.18.0.0/24",
        None,
        "eth0",
    )
    assert any(r.destination == "fe80::/64" for r in found.routes)  # IPv6 routes too
    assert found.neighbours == ()
    assert [(s.protocol, s.local_address, s.local_port) for s in found.listening] == [
        ("tcp", "127.0.0.1", 22)
    ]
    # The probe's own SSH session, seen from both ends.
    assert {(s.local_port, s.remote_port) for s in found.established} >= {
        (22, found.established[0].remote_port)
    }
    assert any(s.remote_port == 22 for s in found.established)
    assert [(d.name, d.size_bytes, d.rotational) for d in found.disks] == [("vda", 274877906944, True)]
    names = {p.name for p in found.packages}
    assert {"openssh-server", "sudo"} <= names
    assert len(found.packages) > 100
    assert any(p.command == "sshd" for p in found.processes)
    assert found.processes[0].pid == 1


LAB_SESSION = RECORDED.parent / "lab" / "linux1-explore.json"


def test_the_lab_host_shows_its_connection_to_the_printer_its_neighbours_and_lldpd() -> None:
    """SSHExplore's commands as recorded on the lab's linux1 (fixtures/record.py)."""
    session = json.loads(LAB_SESSION.read_text())
    by_command = {c["command"]: c["stdout"] if c["exit_status"] == 0 else None for c in session["commands"]}
    found = inventory({name: by_command.get(command) for name, command in COMMANDS[EXPLORE_TOPIC]})
    assert found.hostname == "linux1"
    to_printer = [s for s in found.established if (s.remote_address, s.remote_port) == ("198.18.0.12", 9100)]
    assert len(to_printer) == 1
    assert to_printer[0].local_address == "198.18.0.10"
    assert to_printer[0].process  # the connector runs as the login's user: ss names it
    assert {(s.local_port, s.protocol) for s in found.listening} >= {(22, "tcp"), (80, "tcp"), (161, "udp")}
    assert "198.18.0.12" in {n.address for n in found.neighbours}
    assert any(p.command == "lldpd" for p in found.processes)
    assert (found.os_name, found.os_version) == ("Debian GNU/Linux", "12")


def test_the_encoded_inventory_carries_the_tables_the_cmdb_reads() -> None:
    element = encode_inventory(inventory(_recorded()), connection_info())
    found = element.find("host_exploration")
    assert found is not None
    assert found.get("os_name") == "Debian GNU/Linux"
    assert [(d.get("name"), d.get("rotational")) for d in found.iterfind("disks/disk")] == [("vda", "true")]
    assert found.find("listening/socket") is not None
    assert len(found.findall("packages/package")) > 100
