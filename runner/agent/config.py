"""Agent configuration as typed data: TOML file < ``MIDPROBE_*`` environment < CLI flags.

Validated once, here, with messages that name the file and the field.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from midprobe.capabilities.errors import ConfigError
from midprobe.capabilities.numbers import NumberRange, read_number

DEFAULT_QUEUE_URL = "sqlite:///midprobe-ecc.db"


@dataclass(frozen=True)
class AgentConfig:
    """Everything an agent needs to run; see docs/agent.md for each field."""

    name: str = "midprobe"
    queue_url: str = DEFAULT_QUEUE_URL
    #: A capabilities TOML (``[[capability]]``/``[[mid_server]]``); the entry named like the agent
    #: gives its applications, IP ranges and capabilities. None = every application, range and ``ALL``.
    capabilities_file: Path | None = None
    credentials_file: Path | None = None
    #: Total probe runs at once, split 10:20:25 over the interactive/expedited/standard pools.
    concurrency: int = 55
    poll_idle_seconds: float = 40.0
    poll_busy_seconds: float = 5.0
    lease_seconds: float = 120.0
    registry_heartbeat_seconds: float = 30.0
    #: How often the agent sends its ``queue.stats`` input (pool sizes, work in flight, results waiting).
    queue_stats_seconds: float = 300.0
    #: Most CIs one page of a multi-page result holds (a Shazzam over a big batch is sent in pages).
    page_items: int = 500
    #: How often the agent asks the instance whether every MID should be on a version
    #: (``mid upgrade --all``); an upgrade asked of this MID by name is seen at its next heartbeat.
    upgrade_check_seconds: float = 3600.0
    #: Deadline of one probe run unless the request carries a shorter one.
    probe_timeout_seconds: float = 600.0
    #: Discovery results larger than this are stored aside (docs/ecc-reference.md section 1), never cut.
    result_size_cap: int = 5_000_000
    #: Refuse every target outside the lab networks (198.18.0.0/15, 2001:db8::/32, 127.0.0.0/8, ::1).
    lab_mode: bool = False
    #: The DNS server host names in requests resolve through ("" = the system resolver). In lab
    #: mode names resolve only through it (the lab's dnsmasq) and are refused without one.
    dns_server: str = ""
    log_level: str = "info"
    #: For an ``https://`` queue: the instance user (its password only from MIDPROBE_INSTANCE_PASSWORD),
    #: the instance's CA file (None: the system's CAs) and the result spool's folder.
    instance_user: str = ""
    instance_ca_file: Path | None = None
    spool_dir: Path | None = None
    #: A client certificate the instance issued and its key (mutual TLS; then no password is needed).
    instance_cert_file: Path | None = None
    instance_key_file: Path | None = None
    #: The MID's own folder: its key pair (0600), made at first start (None: midprobe-state/NAME).
    state_dir: Path | None = None
    #: The version this MID registers ("" = the installed midprobe's); for tests of version checks.
    version: str = ""

    def __post_init__(self) -> None:
        _check(self.name.strip() != "", "name", "must not be empty")
        for field_name, limits in NUMBER_LIMITS.items():
            read_number(getattr(self, field_name), limits, field=field_name)
        if self.dns_server:
            try:
                ipaddress.ip_address(self.dns_server)
            except ValueError:
                raise ConfigError(f"{self.dns_server!r} is not an IP address", field="dns_server") from None
        _check(
            (self.instance_cert_file is None) == (self.instance_key_file is None),
            "instance_cert_file",
            "a client certificate needs its key: give instance_cert_file and instance_key_file together",
        )
        levels = ("debug", "info", "warning", "error")
        _check(self.log_level in levels, "log_level", f"must be one of {', '.join(levels)}")

    def instance_login(self) -> dict[str, Any]:
        """``open_queue``'s options for an ``https://`` queue: the instance user, CA, client certificate."""
        return {
            "user": self.instance_user or None,
            "ca_file": self.instance_ca_file,
            "cert_file": self.instance_cert_file,
            "key_file": self.instance_key_file,
        }


_DAY = 86_400.0

#: The accepted range of every numeric setting. Lower bounds keep loops from spinning (a heartbeat
#: or lease of 0 would commit thousands of times a second), upper bounds keep sleeps and deadlines
#: finite. The CLI flags of ``midprobe agent`` read their values through the same limits.
NUMBER_LIMITS: dict[str, NumberRange] = {
    "concurrency": NumberRange(3, 10_000, integer=True),
    "poll_idle_seconds": NumberRange(0.05, _DAY),
    "poll_busy_seconds": NumberRange(0.05, _DAY),
    "lease_seconds": NumberRange(1.0, _DAY),
    "registry_heartbeat_seconds": NumberRange(1.0, _DAY),
    "queue_stats_seconds": NumberRange(1.0, _DAY),
    "page_items": NumberRange(1, 1_000_000, integer=True),
    "upgrade_check_seconds": NumberRange(1.0, 7 * _DAY),
    "probe_timeout_seconds": NumberRange(1.0, 7 * _DAY),
    "result_size_cap": NumberRange(1, 2**40, integer=True),
}


def _check(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise ConfigError(message, field=field_name)


_FIELDS = {f.name: f for f in dataclasses.fields(AgentConfig)}
_ENV_PREFIX = "MIDPROBE_"


def _coerce(field_name: str, raw: Any, source: str) -> Any:
    kind = str(_FIELDS[field_name].type)
    try:
        if "Path" in kind:
            if raw is not None and not isinstance(raw, (str, Path)):
                raise ValueError(f"not a path (got a {type(raw).__name__})")
            return None if raw in (None, "") else Path(raw)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("not a boolean (true or false)")
        if field_name in NUMBER_LIMITS:
            number = read_number(raw, NUMBER_LIMITS[field_name], field=field_name, source=source)
            return number if kind == "int" else float(number)
        if not isinstance(raw, str):
            raise ValueError(f"not a string (got a {type(raw).__name__})")
        return raw
    except ValueError as error:
        raise ConfigError(str(error), source=source, field=field_name) from None


def load_agent_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> AgentConfig:
    """Build the config: defaults, then the ``[agent]`` table of ``path``, then environment, then overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        source = str(path)
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ConfigError("not UTF-8 text", source=source) from None
        except FileNotFoundError:
            raise ConfigError("file not found", source=source) from None
        except OSError as error:
            raise ConfigError(error.strerror or str(error), source=source) from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"not valid TOML: {error}", source=source) from None
        table = document.get("agent", {})
        if not isinstance(table, dict):
            raise ConfigError("must be a table", source=source, entry="agent")
        for key, raw in table.items():
            if key not in _FIELDS:
                raise ConfigError(
                    f"unknown key (known: {', '.join(sorted(_FIELDS))})",
                    source=source,
                    entry="agent",
                    field=key,
                )
            values[key] = _coerce(key, raw, source)
    env = os.environ if environ is None else environ
    for key in _FIELDS:
        env_name = _ENV_PREFIX + key.upper()
        if env_name in env:
            values[key] = _coerce(key, env[env_name], env_name)
    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        if key not in _FIELDS:
            raise ConfigError("unknown setting", field=key)
        values[key] = _coerce(key, raw, "command line")
    return AgentConfig(**values)
