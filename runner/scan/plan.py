"""From the words of a ``midprobe scan`` command line to checked inputs, before any packet leaves.

Each function validates one input (targets, size, DNS servers, credentials, nmap) and raises a
``MidprobeError`` whose one line names what was wrong; the CLI turns that into exit status 2. Target
host names are resolved, and every address checked against the policy, by the port scan stage's
Shazzam probe (``runner/scan/pipeline.py`` ``ScanPipeline.prepare``), not here.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from midprobe.capabilities.errors import ConfigError, CredentialError, TargetNotAllowed, TargetSpecError
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.targets import TargetSpec, parse_targets
from midprobe.probes.tcpscan.syn import raw_sockets_allowed

# The DNS, credentials and nmap packages are imported by the checks that need them: a scan with
# -n, no credentials and no --nmap loads none of them.
if TYPE_CHECKING:
    from midprobe.probes.credentials import CredentialStore
    from midprobe.probes.dns.resolver import ResolverConfig

__all__ = [
    "HUGE_RANGE",
    "CredentialSource",
    "check_host_names",
    "check_size",
    "load_credentials",
    "name_resolver",
    "read_target_list",
    "require_nmap",
    "target_spec",
]

#: More addresses than this (a /16) need ``--yes`` or ``--rate``.
HUGE_RANGE = 65_536


def read_target_list(path: str) -> list[str]:
    """The target tokens of an ``-iL`` file (``-`` = stdin); ``#`` starts a comment."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read the target list: {error.strerror or error}", source=path) from None
    except UnicodeDecodeError:
        raise ConfigError("the target list is not UTF-8 text", source=path) from None
    tokens: list[str] = []
    for line in text.splitlines():
        tokens.extend(line.split("#", 1)[0].split())
    if not tokens:
        raise ConfigError("the target list names no targets", source=path)
    return tokens


def target_spec(targets: Sequence[str], exclude: Sequence[str], input_lists: Sequence[str]) -> TargetSpec:
    """Parse the targets (arguments plus ``-iL`` files) and ``--exclude`` lists in nmap syntax."""
    words = list(targets)
    for path in input_lists:
        words.extend(read_target_list(path))
    if not words:
        raise TargetSpecError(
            "no targets given: name addresses, networks, ranges or host names, or use -iL FILE"
        )
    return parse_targets(words, exclude)


def name_resolver(
    dns_servers: Sequence[str], policy: TargetPolicy, *, resolv_conf: str = "/etc/resolv.conf"
) -> tuple[ResolverConfig | None, str | None]:
    """The resolver for PTR lookups, and a note when names will not be looked up.

    Given servers must be IP addresses inside the policy (else an error naming the server). Without
    them the system resolver's servers are used, except in lab mode (``--lab``), where names go only
    to a lab DNS server given with ``--dns-server``, and when one is outside the policy: then names
    are skipped with a note rather than asking a server outside the lab.
    """
    # Here, not at the top: ``midprobe sweep`` imports this module and needs no ECC codec.
    from midprobe.runner.discovery.probe_requests import ptr_resolver

    servers: list[str] = []
    for server in dns_servers:
        try:
            servers.append(str(ipaddress.ip_address(server.strip())))
        except ValueError:
            raise ConfigError(f"bad --dns-server {server!r}: not an IP address") from None
        if not policy.permits(servers[-1]):
            raise TargetNotAllowed(f"DNS server {servers[-1]}", _allowed(policy))
    if servers:
        return ptr_resolver(servers), None
    if policy.lab_mode:
        return None, (
            f"host names not looked up: in {policy.name} mode names are resolved only through a "
            "lab DNS server; pass --dns-server"
        )
    from midprobe.probes.dns.resolver import system_nameservers

    try:
        system = system_nameservers(resolv_conf)
    except ConfigError as error:
        return None, f"host names not looked up: {error}"
    outside = [server for server in system if not policy.permits(server)]
    if outside:
        return None, (
            f"host names not looked up: the system resolver {outside[0]} is outside the "
            f"{policy.name} networks; pass --dns-server"
        )
    return ptr_resolver(system), None


def _allowed(policy: TargetPolicy) -> str:
    networks = ", ".join(str(network) for network in policy.allowed or ())
    return f"{policy.name}: {networks}"


def check_host_names(spec: TargetSpec, policy: TargetPolicy) -> None:
    """Refuse host-name targets that cannot resolve in lab mode, naming the option that would let them.

    In lab mode names resolve only through the lab's DNS server (``--dns-server``, the policy's
    ``name_server``); the port scan stage's probe would refuse them too, without naming the option.
    """
    if spec.host_names and policy.lab_mode and policy.name_server is None:
        raise TargetSpecError(
            f"host name {spec.host_names[0]!r}: in {policy.name} mode host names are resolved only "
            "through --dns-server"
        )


def check_size(count: int, *, yes: bool, rate: float | None) -> None:
    """Refuse a huge range (more than :data:`HUGE_RANGE` addresses) unless ``--yes`` or ``--rate`` says so."""
    if count > HUGE_RANGE and not yes and rate is None:
        raise ConfigError(
            f"the targets hold {count:,} addresses, more than {HUGE_RANGE:,}: pass --yes to scan them "
            "all, or --rate N to cap the probes per second"
        )


@dataclass(frozen=True)
class CredentialSource:
    """One credentials file from the command line, and the protocols taken from it."""

    path: Path
    #: ``None`` = every protocol (``--credentials``); else only this one.
    protocol: str | None = None

    @property
    def option(self) -> str:
        if self.protocol is None:
            return "--credentials"
        return f"--{self.protocol}-credentials"


def load_credentials(sources: Iterable[CredentialSource]) -> CredentialStore | None:
    """One store from every credentials file given (``None`` when none was).

    ``--credentials`` contributes every credential of its file, ``--ssh-credentials`` only the SSH
    ones and ``--snmp-credentials`` only the SNMP ones; one file named by several options is read once.
    """
    by_path: dict[Path, set[str | None]] = {}
    for source in sources:
        by_path.setdefault(source.path.resolve(), set()).add(source.protocol)
    if not by_path:
        return None
    from midprobe.probes.credentials import PROTOCOL_SNMP, PROTOCOL_SSH, CredentialStore, load_credential_file

    credentials = []
    names = []
    public_fallback = True
    for path, protocols in by_path.items():
        loaded = load_credential_file(path)
        wanted = {PROTOCOL_SSH, PROTOCOL_SNMP} if None in protocols else {p for p in protocols if p}
        taken = [credential for credential in loaded.credentials if credential.protocol in wanted]
        if not taken:
            kinds = " or ".join(sorted(wanted)).upper()
            raise CredentialError(f"holds no {kinds} credential", source=str(path))
        credentials.extend(taken)
        names.append(loaded.source)
        if PROTOCOL_SNMP in wanted:
            public_fallback = public_fallback and loaded.snmp_public_fallback
    return CredentialStore(credentials, snmp_public_fallback=public_fallback, source=", ".join(names))


def require_nmap(*, services: bool, os_detection: bool) -> bool:
    """Check that ``--nmap``/``--os`` can run here; returns whether nmap may use raw sockets (``-sS``)."""
    raw = raw_sockets_allowed()
    if not (services or os_detection):
        return raw
    wanted = " and ".join(flag for flag, on in (("--nmap", services), ("--os", os_detection)) if on)
    from midprobe.capabilities.nmap import detect_nmap
    from midprobe.probes.nmap.engine import nmap_search_path

    detection = detect_nmap(nmap_search_path()[0])
    if not detection.found:
        raise ConfigError(f"{wanted} needs the Nmap capability (a working nmap): {detection.reason}")
    if os_detection and not raw:
        raise ConfigError(
            "--os needs raw sockets (root or CAP_NET_RAW): nmap's OS detection sends raw packets"
        )
    return raw
