"""The capability model: capabilities, their definitions, and MID servers (ServiceNow's tables as data).

Everything here is a frozen dataclass validated on construction; nothing reads files or the network.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable
from dataclasses import dataclass

from midprobe.capabilities.errors import ConfigError, NotAllowedByCapability
from midprobe.capabilities.ipranges import IPRange

#: The special capability a MID carries to serve requests no other step matched (its value is ignored).
ALL_CAPABILITY = "ALL"
#: Added automatically to a MID whose nmap works; never configured by hand; ``ALL`` does not imply it.
NMAP_CAPABILITY = "Nmap"
#: A MID capability value that matches any non-blank requested value (at the wildcard step only).
WILDCARD = "*"
#: The application name that stands for every application.
ALL_APPLICATIONS = "ALL"
#: Capability names that are always defined, whatever the configuration says.
BUILTIN_CAPABILITY_NAMES = (ALL_CAPABILITY, NMAP_CAPABILITY)
#: Applications that take Degraded MID servers as if they were Up unless configured otherwise.
ACCEPT_DEGRADED_BY_DEFAULT = frozenset({"Discovery"})


def _check_name(kind: str, name: object, *, field_name: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{kind} name must be a non-empty string, got {name!r}", field=field_name)
    if name != name.strip():
        raise ConfigError(f"{kind} name {name!r} has leading or trailing spaces", field=field_name)
    return name


@dataclass(frozen=True, order=True)
class Capability:
    """One capability record: a name and a value that is blank, a string, or ``*``.

    Shown as ``name`` when blank and ``name:value`` otherwise (``Cloud Management:us-west``).
    """

    name: str
    value: str = ""

    def __post_init__(self) -> None:
        _check_name("capability", self.name)
        if not isinstance(self.value, str):
            raise ConfigError(f"capability value must be a string, got {self.value!r}", field="value")

    @property
    def is_blank(self) -> bool:
        return self.value == ""

    @property
    def is_wildcard(self) -> bool:
        return self.value == WILDCARD

    def __str__(self) -> str:
        return self.name if self.is_blank else f"{self.name}:{self.value}"

    @classmethod
    def parse_request(cls, text: str) -> Capability:
        """Parse the command-line form ``NAME`` or ``NAME=VALUE`` (the value may itself contain ``=``)."""
        name, _, value = text.partition("=")
        try:
            return cls(name.strip(), value.strip())
        except ConfigError:
            raise ConfigError(
                f"expected NAME or NAME=VALUE with a non-empty NAME, got {text!r}", field="--capability"
            ) from None


@dataclass(frozen=True)
class CapabilityDefinition:
    """A defined capability name (a row of ServiceNow's ``ecc_agent_capability``).

    ``value_test`` names a matcher in a :class:`~midprobe.capabilities.value_tests.ValueTestRegistry`
    that replaces string equality for this capability's values (``resolve_dns`` for ``Resolve DNS``).
    """

    name: str
    value_test: str | None = None

    def __post_init__(self) -> None:
        _check_name("capability", self.name)
        if self.value_test is not None and (not isinstance(self.value_test, str) or not self.value_test):
            raise ConfigError(f"must be a non-empty string, got {self.value_test!r}", field="value_test")
        if self.name in BUILTIN_CAPABILITY_NAMES and self.value_test is not None:
            raise ConfigError(
                f"the built-in capability {self.name} cannot have a value test", field="value_test"
            )


class MidStatus(enum.StrEnum):
    """Every status a ServiceNow MID server record can show."""

    UP = "Up"
    DOWN = "Down"
    PAUSED = "Paused"
    UPGRADING = "Upgrading"
    UPGRADE_FAILED = "Upgrade Failed"
    DRAINING = "Draining"
    DRAINED = "Drained"
    DRAIN_FAILED = "Drain Failed"
    DEGRADED = "Degraded"

    @classmethod
    def parse(cls, text: object) -> MidStatus:
        """The status named ``text`` (case-insensitive, so ``up`` is ``Up``)."""
        if isinstance(text, str):
            for status in cls:
                if status.value.casefold() == text.strip().casefold():
                    return status
        choices = ", ".join(status.value for status in cls)
        raise ConfigError(f"unknown MID server status {text!r} (one of: {choices})", field="status")


@dataclass(frozen=True)
class Application:
    """An application that uses MID servers (a row of ServiceNow's ``ecc_agent_application``).

    ``default_mid_server`` is its fallback when auto-selection finds no suitable MID. A Degraded MID
    counts as Up for an application that accepts Degraded ones; ``accepts_degraded=None`` means the
    built-in rule: only Discovery does.
    """

    name: str
    default_mid_server: str | None = None
    accepts_degraded: bool | None = None

    def __post_init__(self) -> None:
        _check_name("application", self.name)
        if self.default_mid_server is not None:
            _check_name("MID server", self.default_mid_server, field_name="default_mid_server")

    @property
    def takes_degraded(self) -> bool:
        if self.accepts_degraded is None:
            return self.name in ACCEPT_DEGRADED_BY_DEFAULT
        return self.accepts_degraded


def suggest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` when a known name is close to ``name``, else an empty string."""
    known = list(known)
    folded = {candidate.casefold(): candidate for candidate in known}
    if name.casefold() in folded:
        return f" (did you mean {folded[name.casefold()]!r}?)"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class MidServer:
    """A MID server as the selector sees it (from a config file today, from the ECC agent table later).

    ``capabilities`` are the ones assigned by hand; ``Nmap`` is refused there because it comes only
    from ``nmap_installed`` (see :attr:`effective_capabilities`). There is deliberately no method to
    add or remove ``Nmap``: report a new detection by building a new record with ``nmap_installed``.
    """

    name: str
    status: MidStatus = MidStatus.UP
    validated: bool = False
    applications: tuple[str, ...] = ()
    ip_ranges: tuple[IPRange, ...] = ()
    excluded_ip_ranges: tuple[IPRange, ...] = ()
    capabilities: tuple[Capability, ...] = ()
    nmap_installed: bool = False

    def __post_init__(self) -> None:
        _check_name("MID server", self.name)
        # Lists are accepted for convenience (a queue reader builds these from rows); stored as tuples.
        for sequence in ("applications", "ip_ranges", "excluded_ip_ranges", "capabilities"):
            object.__setattr__(self, sequence, tuple(getattr(self, sequence)))
        for sequence, kind in (
            ("ip_ranges", IPRange),
            ("excluded_ip_ranges", IPRange),
            ("capabilities", Capability),
        ):
            for index, item in enumerate(getattr(self, sequence), start=1):
                if not isinstance(item, kind):
                    raise ConfigError(
                        f"must be a {kind.__name__}, got {item!r}", field=f"{sequence}[{index}]"
                    )
        if not isinstance(self.status, MidStatus):
            raise ConfigError(f"must be a MidStatus, got {self.status!r}", field="status")
        for flag in ("validated", "nmap_installed"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"must be true or false, got {getattr(self, flag)!r}", field=flag)
        for index, application in enumerate(self.applications, start=1):
            _check_name("application", application, field_name=f"applications[{index}]")
        for index, capability in enumerate(self.capabilities, start=1):
            if capability.name.casefold() == NMAP_CAPABILITY.casefold():
                raise NotAllowedByCapability(
                    f"{capability.name!r} cannot be assigned by hand: the Nmap capability is added "
                    "automatically when nmap is installed (set nmap_installed = true) and removed when it is not",
                    field=f"capabilities[{index}]",
                )

    @property
    def effective_capabilities(self) -> tuple[Capability, ...]:
        """The assigned capabilities plus ``Nmap`` exactly when nmap is installed."""
        nmap = (Capability(NMAP_CAPABILITY),) if self.nmap_installed else ()
        return (*self.capabilities, *nmap)

    @property
    def serves_all_applications(self) -> bool:
        return ALL_APPLICATIONS in self.applications

    def capability_names(self) -> frozenset[str]:
        return frozenset(capability.name for capability in self.effective_capabilities)


__all__ = [
    "ACCEPT_DEGRADED_BY_DEFAULT",
    "ALL_APPLICATIONS",
    "ALL_CAPABILITY",
    "BUILTIN_CAPABILITY_NAMES",
    "NMAP_CAPABILITY",
    "WILDCARD",
    "Application",
    "Capability",
    "CapabilityDefinition",
    "MidServer",
    "MidStatus",
    "suggest",
]
