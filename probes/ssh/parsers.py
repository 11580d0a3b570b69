"""Pure parsers for what a Unix-like host prints: ``uname -a``, os-release, links, addresses, CPU, memory.

Each takes the text a command printed and returns typed facts (``None`` where the
text does not say). The CMDB class comes from the shared classifier (``midprobe.probes.classify``),
whose ``uname`` rules turn the first word of ``uname -a`` into a class (docs/ecc-reference.md section 4).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from midprobe.probes.classify import Classification, Classifier, Observations, default_classifier

# Machine names uname prints; on Linux they stand just before "GNU/Linux" (or at the end).
_MACHINES = frozenset(
    {
        "x86_64", "i386", "i486", "i586", "i686", "aarch64", "arm64", "armv7l", "armv6l", "ppc64le",
        "ppc64", "ppc", "s390x", "riscv64", "mips", "mips64", "sparc64", "sun4u", "sun4v", "i86pc",
        "ia64", "loongarch64", "amd64",
    }
)  # fmt: skip


@dataclass(frozen=True)
class UnameInfo:
    kernel_name: str  # "Linux", "SunOS", "AIX", "HP-UX", "Darwin", ...
    nodename: str | None
    kernel_release: str | None
    machine: str | None


@dataclass(frozen=True)
class OsRelease:
    """The fields of /etc/os-release that discovery uses (all of them in ``fields``)."""

    name: str | None
    version_id: str | None
    id: str | None
    pretty_name: str | None
    fields: Mapping[str, str]


@dataclass(frozen=True)
class InterfaceAddress:
    address: str
    prefix_length: int | None = None
    interface: str | None = None
    scope: str | None = None

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version


@dataclass(frozen=True)
class Link:
    """One network interface as ``ip -o link`` lists it."""

    name: str
    mac: str | None = None
    kind: str | None = None  # "ether", "loopback", "none" (tunnels), ...
    state: str | None = None  # "UP", "DOWN", "UNKNOWN"
    mtu: int | None = None

    @property
    def loopback(self) -> bool:
        return self.kind == "loopback"


@dataclass(frozen=True)
class CpuInfo:
    count: int
    model: str | None


@dataclass(frozen=True)
class UnixFacts:
    """What the classify run learned about a host."""

    #: The shared classifier's verdict (None only with a rules table that has no SSH fallback).
    ci_class: str | None
    kernel_name: str | None = None
    kernel_release: str | None = None
    machine: str | None = None
    os_name: str | None = None
    os_version: str | None = None
    os_id: str | None = None
    os_pretty_name: str | None = None
    hostname: str | None = None
    addresses: tuple[InterfaceAddress, ...] = ()
    cpu_count: int | None = None
    cpu_model: str | None = None
    memory_mb: int | None = None
    #: Why the classifier chose ``ci_class``.
    evidence: tuple[str, ...] = ()


def _first_line(text: str | None) -> str | None:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), None)


def classify_uname(
    uname: str | None, *, address: str = "", classifier: Classifier | None = None
) -> Classification:
    """The verdict on a host we logged in to over SSH, from what ``uname -a`` printed (or None)."""
    seen = Observations(address=address, uname=_first_line(uname), logged_in=frozenset({"ssh"}))
    return (classifier or default_classifier()).classify(seen)


def ci_class_for_kernel(kernel_name: str | None) -> str | None:
    """The CMDB class for the first word of ``uname -a`` (the shipped table always gives one)."""
    return classify_uname(kernel_name).ci_class


def parse_uname(text: str) -> UnameInfo | None:
    """``uname -a`` -> kernel name, node name, release and (when recognisable) machine."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    tokens = line.split()
    if not tokens or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_/.-]*", tokens[0]):
        return None
    machine = None
    if tokens[0] == "Linux" or tokens[0].endswith("BSD"):
        body = tokens[:-1] if tokens[-1] in ("GNU/Linux", "Linux", "Android") else tokens
        # "... x86_64 x86_64 x86_64 GNU/Linux" (-m -p -i) or "... x86_64 GNU/Linux"
        machine = next((token for token in reversed(body[3:]) if token in _MACHINES), None)
    elif tokens[0] in ("SunOS", "HP-UX") and len(tokens) >= 5:
        machine = tokens[4]
    elif tokens[0] == "Darwin":
        machine = tokens[-1] if tokens[-1] in _MACHINES else None
    return UnameInfo(
        kernel_name=tokens[0],
        nodename=tokens[1] if len(tokens) > 1 else None,
        kernel_release=tokens[2] if len(tokens) > 2 else None,
        machine=machine,
    )


def parse_os_release(text: str) -> OsRelease | None:
    """os-release(5): ``KEY=value`` lines, values optionally quoted with shell quoting rules."""
    fields: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", key):
            continue
        try:
            words = shlex.split(value, comments=False, posix=True)
        except ValueError:  # unbalanced quotes: keep the text as it is
            words = [value.strip("\"'")]
        fields[key] = " ".join(words)
    if not fields:
        return None
    return OsRelease(
        name=fields.get("NAME"),
        version_id=fields.get("VERSION_ID"),
        id=fields.get("ID"),
        pretty_name=fields.get("PRETTY_NAME"),
        fields=fields,
    )


def parse_hostname(text: str) -> str | None:
    """The first word of the first non-empty line of ``hostname``."""
    for line in text.splitlines():
        if line.strip():
            return line.split()[0]
    return None


def parse_addresses(text: str) -> tuple[InterfaceAddress, ...]:
    """``ip -o addr`` lines, or the plain list ``hostname -I`` prints; loopback included."""
    found: list[InterfaceAddress] = []
    for line in text.splitlines():
        tokens = line.split()
        if not tokens:
            continue
        if "inet" in tokens or "inet6" in tokens:
            found.extend(_ip_o_addr_line(tokens))
        else:
            for token in tokens:
                address = _address(token)
                if address is not None:
                    found.append(InterfaceAddress(address))
    return tuple(dict.fromkeys(found))


def _ip_o_addr_line(tokens: list[str]) -> list[InterfaceAddress]:
    # "2: eth0    inet 198.18.0.10/24 brd 198.18.0.255 scope global eth0\       valid_lft ..."
    family_at = tokens.index("inet") if "inet" in tokens else tokens.index("inet6")
    if family_at + 1 >= len(tokens):
        return []
    interface = (
        tokens[1].rstrip(":").split("@", 1)[0] if len(tokens) > 1 and tokens[0].endswith(":") else None
    )
    cidr = tokens[family_at + 1]
    address_text, _, prefix = cidr.partition("/")
    address = _address(address_text)
    if address is None:
        return []
    scope = tokens[tokens.index("scope") + 1] if "scope" in tokens[:-1] else None
    return [InterfaceAddress(address, int(prefix) if prefix.isdigit() else None, interface, scope)]


def _address(token: str) -> str | None:
    try:
        return str(ipaddress.ip_address(token.split("%", 1)[0]))
    except ValueError:
        return None


_MAC_TEXT = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def parse_links(text: str) -> tuple[Link, ...]:
    """``ip -o link`` lines: ``2: eth0@if7: <...> mtu 1500 ... state UP ...\\    link/ether aa:.. brd ..``."""
    found: dict[str, Link] = {}
    for line in text.splitlines():
        tokens = line.replace("\\", " ").split()
        if len(tokens) < 2 or not tokens[0].endswith(":") or not tokens[0][:-1].isdigit():
            continue
        name = tokens[1].rstrip(":").split("@", 1)[0]
        if not name:
            continue
        kind = mac = state = None
        mtu: int | None = None
        for index, word in enumerate(tokens):
            following = tokens[index + 1] if index + 1 < len(tokens) else ""
            if word.startswith("link/") and kind is None:
                kind = word.removeprefix("link/")
                mac = following.lower() if _MAC_TEXT.match(following) else None
            elif word == "state":
                state = following
            elif word == "mtu" and following.isdigit():
                mtu = int(following)
        found.setdefault(name, Link(name, mac, kind, state, mtu))
    return tuple(found.values())


def parse_dmi_value(text: str | None) -> str | None:
    """One /sys/class/dmi/id file (``product_serial``, ``product_name``, ``sys_vendor``): its text, or None."""
    value = " ".join((text or "").split())
    return value if value and value.isprintable() else None


def parse_cpuinfo(text: str) -> CpuInfo | None:
    """/proc/cpuinfo: one ``processor`` block per logical CPU and the model name of the first."""
    count = 0
    model: str | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "processor" and value.isdigit():
            count += 1
        elif model is None and value and key in ("model name", "cpu model", "cpu", "hardware"):
            model = value  # x86 "model name", MIPS "cpu model", POWER "cpu", old ARM "Hardware"
    if count == 0:
        return None
    return CpuInfo(count=count, model=model)


def parse_meminfo(text: str) -> int | None:
    """/proc/meminfo ``MemTotal`` in MiB."""
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) // 1024 if match else None


def unix_facts(
    outputs: Mapping[str, str | None], *, address: str = "", classifier: Classifier | None = None
) -> UnixFacts:
    """Facts from the classify commands' stdout, keyed as ``CLASSIFY_COMMANDS`` names them."""
    verdict = classify_uname(outputs.get("uname"), address=address, classifier=classifier)
    uname = parse_uname(outputs.get("uname") or "")
    os_release = parse_os_release(outputs.get("os_release") or "")
    cpu = parse_cpuinfo(outputs.get("cpuinfo") or "")
    hostname = parse_hostname(outputs.get("hostname") or "") or (uname.nodename if uname else None)
    return UnixFacts(
        ci_class=verdict.ci_class,
        kernel_name=uname.kernel_name if uname else None,
        kernel_release=uname.kernel_release if uname else None,
        machine=uname.machine if uname else None,
        os_name=os_release.name if os_release else None,
        os_version=os_release.version_id if os_release else None,
        os_id=os_release.id if os_release else None,
        os_pretty_name=os_release.pretty_name if os_release else None,
        hostname=hostname,
        addresses=parse_addresses(outputs.get("addresses") or ""),
        cpu_count=cpu.count if cpu else None,
        cpu_model=cpu.model if cpu else None,
        memory_mb=parse_meminfo(outputs.get("meminfo") or ""),
        evidence=verdict.evidence,
    )
