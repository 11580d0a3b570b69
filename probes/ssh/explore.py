"""``SSHIdentity`` and ``SSHExplore``: what a Unix host is made of, read over one SSH login.

``SSHIdentity`` (a probe of discovery's identification MultiProbe) runs what makes the host
unique: its host name, its interfaces with their MACs (``ip -o link``), its addresses
(``ip -o addr``) and the DMI serial number. ``SSHExplore`` adds the model and manufacturer
(DMI), the CPUs, the memory, the OS release, the routes and neighbours (``ip -j``), the listening
sockets and established TCP connections with their processes (``ss``), the disks (``lsblk``),
the installed packages (dpkg or rpm) and the running processes (``ps``, without command lines:
see ``probes.ssh.host_tables``). The commands are a data table (``COMMANDS``); the serial number
is root-only on most hosts, so a plain read that fails is tried once more under sudo, and a
host that refuses both simply has no serial. Parsing is pure (``inventory``, over
``probes.ssh.parsers``). Each command answers in the ECC ``<result command=..>`` shape, followed
by one ``<result><host_exploration ..>`` holding the typed findings.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from midprobe.capabilities.errors import SudoFailed
from midprobe.probes.base import ProbeContext
from midprobe.probes.classify.ouis import mac_vendor
from midprobe.probes.ssh.channel import CommandOutput
from midprobe.probes.ssh.command import (
    SSHProbeBase,
    SSHScriptParams,
    encode_command_output,
    parse_script_params,
    run_command,
    xml_text,
)
from midprobe.probes.ssh.host_tables import (
    Disk,
    HostNeighbour,
    HostRoute,
    Package,
    Process,
    Socket,
    parse_disks,
    parse_established,
    parse_listening,
    parse_neighbours,
    parse_packages,
    parse_processes,
    parse_routes,
)
from midprobe.probes.ssh.known_hosts import KnownHostsStore
from midprobe.probes.ssh.parsers import (
    InterfaceAddress,
    Link,
    parse_addresses,
    parse_cpuinfo,
    parse_dmi_value,
    parse_hostname,
    parse_links,
    parse_meminfo,
    parse_os_release,
)
from midprobe.probes.ssh.session import ConnectionInfo

IDENTITY_TOPIC = "SSHIdentity"
EXPLORE_TOPIC = "SSHExplore"
_DMI = "/sys/class/dmi/id"
IDENTITY_COMMANDS: tuple[tuple[str, str], ...] = (
    ("hostname", "hostname"),
    ("links", "ip -o link show"),
    ("addresses", "ip -o addr show"),
    ("serial", f"cat {_DMI}/product_serial"),
)
#: (finding, command) per topic, run in this order on one connection.
COMMANDS: Mapping[str, tuple[tuple[str, str], ...]] = {
    IDENTITY_TOPIC: IDENTITY_COMMANDS,
    EXPLORE_TOPIC: (
        *IDENTITY_COMMANDS,
        ("model", f"cat {_DMI}/product_name"),
        ("manufacturer", f"cat {_DMI}/sys_vendor"),
        ("cpuinfo", "cat /proc/cpuinfo"),
        ("meminfo", "cat /proc/meminfo"),
        ("os_release", "cat /etc/os-release"),
        ("routes", "ip -j route show"),
        ("routes6", "ip -j -6 route show"),
        ("neighbours", "ip -j neigh show"),
        ("listening", "ss -Htulnp"),
        ("established", "ss -Htnp state established"),
        ("disks", "lsblk -J -b -d -o NAME,SIZE,TYPE,MODEL,SERIAL,ROTA,TRAN"),
        (
            "packages",
            "dpkg-query -W -f '${Package}\\t${Version}\\t${Architecture}\\n' 2>/dev/null"
            " || rpm -qa --qf '%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n'",
        ),
        ("processes", "ps -eo pid=,ppid=,user=,comm="),
    ),
}
#: Findings only root may read on most hosts: a plain read that fails is run again under sudo.
ROOT_ONLY: frozenset[str] = frozenset({"serial"})


@dataclass(frozen=True)
class HostInventory:
    """What the commands said (``None`` / empty where a command failed or printed nothing)."""

    hostname: str | None = None
    links: tuple[Link, ...] = ()
    addresses: tuple[InterfaceAddress, ...] = ()
    serial_number: str | None = None
    model: str | None = None
    manufacturer: str | None = None
    cpu_count: int | None = None
    cpu_model: str | None = None
    memory_mb: int | None = None
    os_name: str | None = None
    os_version: str | None = None
    routes: tuple[HostRoute, ...] = ()
    neighbours: tuple[HostNeighbour, ...] = ()
    listening: tuple[Socket, ...] = ()
    established: tuple[Socket, ...] = ()
    disks: tuple[Disk, ...] = ()
    packages: tuple[Package, ...] = ()
    processes: tuple[Process, ...] = ()


def inventory(outputs: Mapping[str, str | None]) -> HostInventory:
    """The findings in the commands' stdout, keyed as ``COMMANDS`` names them (pure)."""
    cpu = parse_cpuinfo(outputs.get("cpuinfo") or "")
    release = parse_os_release(outputs.get("os_release") or "")
    return HostInventory(
        hostname=parse_hostname(outputs.get("hostname") or ""),
        links=parse_links(outputs.get("links") or ""),
        addresses=parse_addresses(outputs.get("addresses") or ""),
        serial_number=parse_dmi_value(outputs.get("serial")),
        model=parse_dmi_value(outputs.get("model")),
        manufacturer=parse_dmi_value(outputs.get("manufacturer")),
        cpu_count=cpu.count if cpu else None,
        cpu_model=cpu.model if cpu else None,
        memory_mb=parse_meminfo(outputs.get("meminfo") or ""),
        os_name=release.name if release else None,
        os_version=release.version_id if release else None,
        routes=(*parse_routes(outputs.get("routes") or ""), *parse_routes(outputs.get("routes6") or "")),
        neighbours=parse_neighbours(outputs.get("neighbours") or ""),
        listening=parse_listening(outputs.get("listening") or ""),
        established=parse_established(outputs.get("established") or ""),
        disks=parse_disks(outputs.get("disks") or ""),
        packages=parse_packages(outputs.get("packages") or ""),
        processes=parse_processes(outputs.get("processes") or ""),
    )


@dataclass(frozen=True)
class SSHExploreResult:
    topic: str
    outputs: tuple[CommandOutput, ...]
    found: HostInventory
    connection: ConnectionInfo
    credentials_debug: bool = False


def encode_inventory(found: HostInventory, connection: ConnectionInfo) -> ET.Element:
    """``<result><host_exploration hostname=.. serial_number=..><cpu/><memory/><interfaces/><ip_addresses/>``."""
    element = ET.Element(
        "result", credential_id=connection.credential_id, host_key=connection.host_key.describe()
    )
    attributes = {
        key: xml_text(value)
        for key in ("hostname", "serial_number", "model", "manufacturer", "os_name", "os_version")
        if (value := getattr(found, key))
    }
    exploration = ET.SubElement(element, "host_exploration", attributes)

    def child(parent: ET.Element, tag: str, **values: str | int | bool | None) -> None:
        present = {
            name: "true" if value is True else "false" if value is False else xml_text(str(value))
            for name, value in values.items()
            if value is not None
        }
        if present:
            ET.SubElement(parent, tag, present)

    child(exploration, "cpu", count=found.cpu_count, model=found.cpu_model)
    child(exploration, "memory", mb=found.memory_mb)
    interfaces = ET.SubElement(exploration, "interfaces")
    for link in found.links:
        child(
            interfaces,
            "interface",
            name=link.name,
            mac=link.mac,
            vendor=mac_vendor(link.mac),
            kind=link.kind,
            state=link.state,
            mtu=link.mtu,
        )
    addresses = ET.SubElement(exploration, "ip_addresses")
    for address in found.addresses:
        child(
            addresses,
            "ip_address",
            address=address.address,
            prefix_length=address.prefix_length,
            interface=address.interface,
            scope=address.scope,
        )
    for tag, row_tag, rows, keys in (
        ("routes", "route", found.routes, ("destination", "gateway", "device", "protocol", "metric")),
        ("neighbours", "neighbour", found.neighbours, ("address", "mac", "device", "state", "vendor")),
        (
            "listening",
            "socket",
            found.listening,
            ("protocol", "local_address", "local_port", "process", "pid"),
        ),
        (
            "connections",
            "connection",
            found.established,
            ("protocol", "local_address", "local_port", "remote_address", "remote_port", "process", "pid"),
        ),
        (
            "disks",
            "disk",
            found.disks,
            ("name", "size_bytes", "model", "serial_number", "transport", "rotational"),
        ),
        ("packages", "package", found.packages, ("name", "version", "architecture")),
        ("processes", "process", found.processes, ("pid", "ppid", "user", "command")),
    ):
        table = ET.SubElement(exploration, tag)
        for row in rows:
            child(table, row_tag, **{key: getattr(row, key) for key in keys})
    return element


class SSHExploreProbe(SSHProbeBase):
    """``SSHIdentity`` or ``SSHExplore`` (``topic`` picks the commands run)."""

    def __init__(
        self, topic: str, known_hosts: KnownHostsStore | None = None, *, strict_host_keys: bool = False
    ) -> None:
        super().__init__(known_hosts, strict_host_keys=strict_host_keys)
        self.topic = topic

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> SSHScriptParams:
        return parse_script_params(source, parameters)

    async def run(self, params: SSHScriptParams, context: ProbeContext) -> SSHExploreResult:
        outputs: list[CommandOutput] = []
        stdout: dict[str, str | None] = {}
        options = params.options
        async with self._connect(options, context) as connection:

            async def run(command: str, *, must_sudo: bool = False) -> CommandOutput:
                return await run_command(
                    connection, command, options, max_output=params.max_output_bytes, must_sudo=must_sudo
                )

            for finding, command in COMMANDS[self.topic]:
                output = await run(command)
                if output.exit_status != 0 and finding in ROOT_ONLY:
                    with contextlib.suppress(SudoFailed):  # no sudo here: the host has no readable serial
                        output = await run(command, must_sudo=True)
                outputs.append(output)
                stdout[finding] = output.stdout if output.exit_status == 0 else None
            info = connection.info
        return SSHExploreResult(
            self.topic, tuple(outputs), inventory(stdout), info, options.credentials_debug
        )

    def encode_results(self, result: SSHExploreResult) -> Sequence[ET.Element]:
        elements = [
            encode_command_output(output, result.connection, credentials_debug=result.credentials_debug)
            for output in result.outputs
        ]
        elements.append(encode_inventory(result.found, result.connection))
        return elements


IDENTITY_PROBE = SSHExploreProbe(IDENTITY_TOPIC)
EXPLORE_PROBE = SSHExploreProbe(EXPLORE_TOPIC)
PROBES = (IDENTITY_PROBE, EXPLORE_PROBE)
