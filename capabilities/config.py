"""Loads MID servers and defined capabilities from TOML (``[[capability]]``, ``[[mid_server]]``,
``[[application]]``, ``[selection]``, ``[[cluster]]``).

Validation happens once, here; every error names the file, the entry (``mid_server[2] "mid-sandiego"``,
counting from 1) and the field.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from midprobe.capabilities.clusters import MidCluster, parse_clusters
from midprobe.capabilities.errors import ConfigError, NotAllowedByCapability
from midprobe.capabilities.ipranges import IPRange
from midprobe.capabilities.model import (
    ALL_APPLICATIONS,
    BUILTIN_CAPABILITY_NAMES,
    NMAP_CAPABILITY,
    Application,
    Capability,
    CapabilityDefinition,
    MidServer,
    MidStatus,
    suggest,
)
from midprobe.capabilities.selection import MidSelector, SelectionPolicy
from midprobe.capabilities.value_tests import ValueTestRegistry

_TOP_KEYS = ("capability", "mid_server", "application", "selection", "cluster")
_CAPABILITY_KEYS = ("name", "value_test")
_MID_KEYS = (
    "name",
    "status",
    "validated",
    "applications",
    "ip_ranges",
    "excluded_ip_ranges",
    "capabilities",
    "nmap_installed",
)
_MID_CAPABILITY_KEYS = ("name", "value")
_SELECTION_KEYS = ("default_mid_server", "include_upgrading_and_paused", "include_other_statuses")
_APPLICATION_KEYS = ("name", "default_mid_server", "accepts_degraded")

T = TypeVar("T")


@dataclass(frozen=True)
class CapabilityConfig:
    """A loaded configuration: the defined capabilities, the MID servers and the selection policy."""

    source: str
    definitions: tuple[CapabilityDefinition, ...]
    mid_servers: tuple[MidServer, ...]
    policy: SelectionPolicy = field(default_factory=SelectionPolicy)
    clusters: tuple[MidCluster, ...] = ()

    def mid_server(self, name: str) -> MidServer:
        for mid in self.mid_servers:
            if mid.name == name:
                return mid
        known = [mid.name for mid in self.mid_servers]
        raise ConfigError(
            f"no MID server named {name!r}{suggest(name, known)} (defined: {', '.join(known) or 'none'})",
            source=self.source,
        )

    def selector(
        self, *, value_tests: ValueTestRegistry | None = None, policy: SelectionPolicy | None = None
    ) -> MidSelector:
        """A selector over these definitions (``policy`` overrides the file's ``[selection]``)."""
        return MidSelector(
            self.definitions, value_tests=value_tests, policy=policy if policy is not None else self.policy
        )


def load_config(path: str | Path, *, value_tests: ValueTestRegistry | None = None) -> CapabilityConfig:
    """Read and validate a capabilities TOML file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ConfigError(f"cannot read the file: {reason}", source=source) from None
    return parse_config(text, source=source, value_tests=value_tests)


def parse_config(
    text: str, *, source: str = "<config>", value_tests: ValueTestRegistry | None = None
) -> CapabilityConfig:
    """Validate TOML text (pure). ``value_tests`` is the registry ``value_test`` names are checked against."""
    registry = value_tests if value_tests is not None else ValueTestRegistry()
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}", source=source) from None
    _check_keys(document, _TOP_KEYS, source, None)

    definitions = _parse_definitions(document.get("capability", []), source, registry)
    defined = {definition.name for definition in definitions} | set(BUILTIN_CAPABILITY_NAMES)
    mid_servers = _parse_mid_servers(document.get("mid_server", []), source, defined)
    mid_names = {mid.name for mid in mid_servers}
    applications = _parse_applications(document.get("application", []), source, mid_names)
    policy = _parse_selection(document.get("selection", {}), source, mid_names, applications)
    clusters = parse_clusters(document.get("cluster", []), source=source)
    return CapabilityConfig(source, definitions, mid_servers, policy, clusters)


# -- sections -------------------------------------------------------------------------------------------


def _named_entries(
    value: object, section: str, allowed: tuple[str, ...], source: str
) -> Iterator[tuple[str, str, Mapping[str, object]]]:
    """``(entry, name, table)`` for each ``[[section]]`` table, its keys checked and its name required."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConfigError(f"must be a list of tables, written [[{section}]]", source=source, entry=section)
    for index, table in enumerate(value, start=1):
        written = table.get("name")
        entry = f'{section}[{index}] "{written}"' if isinstance(written, str) else f"{section}[{index}]"
        _check_keys(table, allowed, source, entry)
        yield entry, _require(table, "name", str, "a string", source, entry), table


def _parse_definitions(
    value: object, source: str, registry: ValueTestRegistry
) -> tuple[CapabilityDefinition, ...]:
    definitions: dict[str, CapabilityDefinition] = {}
    seen: set[str] = set()  # built-in names are kept out of ``definitions`` but may not repeat either
    for entry, name, table in _named_entries(value, "capability", _CAPABILITY_KEYS, source):
        value_test = _optional(table, "value_test", str, "a string", source, entry)
        with _located(source, entry):
            definition = CapabilityDefinition(name, value_test)
        if name in seen:
            raise ConfigError(
                f"capability {name!r} is defined twice", source=source, entry=entry, field="name"
            )
        seen.add(name)
        if value_test is not None:
            with _located(source, entry, "value_test"):
                registry.get(value_test)
        if name not in BUILTIN_CAPABILITY_NAMES:
            definitions[name] = definition
    return tuple(definitions.values())


def _parse_mid_servers(value: object, source: str, defined: set[str]) -> tuple[MidServer, ...]:
    mid_servers: list[MidServer] = []
    for entry, name, table in _named_entries(value, "mid_server", _MID_KEYS, source):
        if "status" not in table:
            raise ConfigError("is required", source=source, entry=entry, field="status")
        with _located(source, entry, "status"):
            status = MidStatus.parse(table["status"])
        validated = _optional(table, "validated", bool, "true or false", source, entry) or False
        nmap_installed = _optional(table, "nmap_installed", bool, "true or false", source, entry) or False
        applications = tuple(_string_list(table, "applications", source, entry))
        ip_ranges = _ranges(table, "ip_ranges", source, entry)
        excluded = _ranges(table, "excluded_ip_ranges", source, entry)
        capabilities = _mid_capabilities(table, source, entry, defined)
        if any(mid.name == name for mid in mid_servers):
            raise ConfigError(
                f"MID server {name!r} is defined twice", source=source, entry=entry, field="name"
            )
        with _located(source, entry):
            mid_servers.append(
                MidServer(
                    name, status, validated, applications, ip_ranges, excluded, capabilities, nmap_installed
                )
            )
    return tuple(mid_servers)


def _mid_capabilities(
    table: Mapping[str, object], source: str, entry: str, defined: set[str]
) -> tuple[Capability, ...]:
    items = table.get("capabilities", [])
    shape = (
        'a list of inline tables such as [{ name = "SSH" }, { name = "Resolve DNS", value = "example.com" }]'
    )
    if not isinstance(items, list):
        raise ConfigError(f"must be {shape}", source=source, entry=entry, field="capabilities")
    capabilities = []
    for index, item in enumerate(items, start=1):
        where = f"capabilities[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(
                f"must be an inline table, got {_kind(item)}; expected {shape}",
                source=source,
                entry=entry,
                field=where,
            )
        _check_keys(item, _MID_CAPABILITY_KEYS, source, entry, prefix=f"{where}.")
        name = _require(item, "name", str, "a string", source, entry, prefix=f"{where}.")
        value = _optional(item, "value", str, "a string", source, entry, prefix=f"{where}.") or ""
        if name.casefold() == NMAP_CAPABILITY.casefold():
            raise NotAllowedByCapability(
                f"{name!r} cannot be assigned by hand: the Nmap capability is added automatically "
                "when nmap is installed (set nmap_installed = true) and removed when it is not",
                source=source,
                entry=entry,
                field=where,
            )
        if name not in defined:
            hint = suggest(name, defined)
            known = ", ".join(sorted(defined - {NMAP_CAPABILITY}))
            raise ConfigError(
                f"capability {name!r} is not defined{hint}; add a [[capability]] entry for it (defined: {known})",
                source=source,
                entry=entry,
                field=f"{where}.name",
            )
        with _located(source, entry, where):
            capabilities.append(Capability(name, value))
    return tuple(capabilities)


def _parse_applications(value: object, source: str, mid_names: set[str]) -> tuple[Application, ...]:
    applications: list[Application] = []
    for entry, name, table in _named_entries(value, "application", _APPLICATION_KEYS, source):
        default = _default_mid(table, source, entry, mid_names)
        accepts_degraded = _optional(table, "accepts_degraded", bool, "true or false", source, entry)
        if any(application.name == name for application in applications):
            raise ConfigError(
                f"application {name!r} is defined twice", source=source, entry=entry, field="name"
            )
        if name == ALL_APPLICATIONS and accepts_degraded is not None:
            raise ConfigError(
                "ALL stands for every application; set accepts_degraded on the application itself",
                source=source,
                entry=entry,
                field="accepts_degraded",
            )
        with _located(source, entry):
            applications.append(Application(name, default, accepts_degraded))
    return tuple(applications)


def _default_mid(table: Mapping[str, object], source: str, entry: str, mid_names: set[str]) -> str | None:
    default = _optional(table, "default_mid_server", str, "a string", source, entry)
    if default is not None and default not in mid_names:
        raise ConfigError(
            f"names no [[mid_server]]: {default!r}{suggest(default, mid_names)}",
            source=source,
            entry=entry,
            field="default_mid_server",
        )
    return default


def _parse_selection(
    value: object, source: str, mid_names: set[str], applications: tuple[Application, ...]
) -> SelectionPolicy:
    """``[selection]``; its ``default_mid_server`` is the ``ALL`` application's (one place, either spelling)."""
    if not isinstance(value, dict):
        raise ConfigError("must be a table, written [selection]", source=source, entry="selection")
    _check_keys(value, _SELECTION_KEYS, source, "selection")
    default = _default_mid(value, source, "selection", mid_names)
    for application in applications:
        if application.name != ALL_APPLICATIONS or application.default_mid_server is None:
            continue
        if default is not None and default != application.default_mid_server:
            raise ConfigError(
                "the ALL application's default MID server is also set in [[application]] "
                f"(to {application.default_mid_server!r}); keep one",
                source=source,
                entry="selection",
                field="default_mid_server",
            )
        default = application.default_mid_server
    upgrading = _optional(value, "include_upgrading_and_paused", bool, "true or false", source, "selection")
    other = _optional(value, "include_other_statuses", bool, "true or false", source, "selection")
    named = tuple(application for application in applications if application.name != ALL_APPLICATIONS)
    return SelectionPolicy(default, bool(upgrading) or bool(other), bool(other), named)


# -- field helpers ----------------------------------------------------------------------------------------


def _kind(value: object) -> str:
    """What a TOML value is, for messages that must not quote it (it may be a pasted secret)."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}
    return kinds.get(type(value), "a table")


def _check_keys(
    table: Mapping[str, object], allowed: tuple[str, ...], source: str, entry: str | None, *, prefix: str = ""
) -> None:
    for key in table:
        if key not in allowed:
            hint = suggest(key, allowed)
            # A key is named only when it is a misspelling of a known one, never pasted text.
            raise ConfigError(
                f"unknown key{hint}; allowed here: {', '.join(allowed)}",
                source=source,
                entry=entry,
                field=f"{prefix}{key}" if hint else (prefix.rstrip(".") or None),
            )


def _optional(
    table: Mapping[str, object],
    key: str,
    kind: type[T],
    described: str,
    source: str,
    entry: str | None,
    *,
    prefix: str = "",
) -> T | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, kind):
        raise ConfigError(
            f"must be {described}, got {_kind(value)}",
            source=source,
            entry=entry,
            field=prefix + key,
        )
    return value


def _require(
    table: Mapping[str, object],
    key: str,
    kind: type[T],
    described: str,
    source: str,
    entry: str | None,
    *,
    prefix: str = "",
) -> T:
    value = _optional(table, key, kind, described, source, entry, prefix=prefix)
    if value is None:
        raise ConfigError("is required", source=source, entry=entry, field=prefix + key)
    return value


def _string_list(table: Mapping[str, object], key: str, source: str, entry: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(
            f"must be a list of strings, got {_kind(value)}", source=source, entry=entry, field=key
        )
    return value


def _ranges(table: Mapping[str, object], key: str, source: str, entry: str) -> tuple[IPRange, ...]:
    ranges = []
    for index, item in enumerate(_string_list(table, key, source, entry), start=1):
        try:
            ranges.append(IPRange.parse(item))
        except ConfigError as error:  # its message quotes the text, which may be anything pasted there
            raise type(error)(
                "is not an IP range (ALL, an address, a CIDR block or first-last)",
                source=source,
                entry=entry,
                field=f"{key}[{index}]",
            ) from None
    return tuple(ranges)


@contextmanager
def _located(source: str, entry: str | None, field_name: str | None = None) -> Iterator[None]:
    """A ``ConfigError`` raised inside is re-raised naming the file, the entry and the field.

    ``field_name`` (when given) replaces the field the model named, being the more precise of the two.
    """
    try:
        yield
    except ConfigError as error:
        core = error.message.removeprefix(f"{error.field}: ") if error.field else error.message
        raise type(error)(core, source=source, entry=entry, field=field_name or error.field) from None


__all__ = ["CapabilityConfig", "load_config", "parse_config"]
