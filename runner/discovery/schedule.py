"""Discovery schedules: a TOML file naming what to discover, with what, and how fast.

The minimal schedule is three keys::

    name = "lab"
    ranges = ["198.18.0.0/24"]
    credentials = "creds.toml"     # relative to the schedule file

``ranges`` holds addresses, networks and nmap-style ranges, and host names: each name is
port-scanned on its own, by a MID whose ``Resolve DNS`` capability covers its domain (or one that
takes any: ``ALL``), whose Shazzam resolves it under its safety policy. Everything else is
optional: ``exclude`` (addresses only), ``mid`` (``"auto"``, a MID name, or ``"cluster:NAME"``),
``behaviour`` (which protocols classification may use), ``credential_tags``, ``ports`` (for
Shazzam), ``batch_size`` (addresses per Shazzam batch: default 1,000, at least 256, as
ServiceNow has it), ``max_run_time`` (seconds), ``rate`` (packets per second), and Shazzam's
port-scan knobs as ``midprobe scan`` has them: ``engine`` (``auto``, ``syn`` or ``connect``),
``connect_wait`` (ms one port's answer is waited for) and ``retries``; ``host_discovery``
(``true``: each batch is first swept with ``HostSweep``, ARP/ICMP or TCP connect, and only the
addresses that answer are port-scanned, as ``midprobe scan`` does unless ``-Pn``); ``depth``,
the last phase that runs (``scanning``, ``classification``, ``identification`` or
``exploration``, the default), and ``cmdb`` (``false``: what is found is logged, nothing is
written to the CMDB); ``enrichment``, probes run on every host that answered beside its
classification (``banners``: ``BannerSniff`` on its open ports; ``nmap_services``: nmap ``-sV``;
``nmap_os``: nmap ``-O``; the nmap ones on a MID with the Nmap capability; ``names``: a PTR
lookup at ``dns_servers``; ``snmp_public``: BannerSniff's SNMP tap, sysObjectID and sysDescr with
the community ``public``), their findings in the device log; ``page_wait`` (ms: each batch's Shazzam answer comes in pages as hosts are decided, a
page at most that long after its first host, and each page's hosts are classified at once;
default: one answer per batch) and ``page_items`` (at most that many hosts a page, and the port
scan decides at most that many hosts ahead of the pages it gave);
``classify`` (``"first"``, the default: the classifiers are tried one after another in port
priority until one classifies the device; ``"all"``: every classifier that applies runs at once,
as ``midprobe scan`` does, and each one's findings are kept); ``probe_timeout`` (seconds each
classification, enrichment, identification and exploration request may run before the MID cuts it;
default: the MID's own limit); ``shazzam_readers`` (``false``: Shazzam runs its port scan alone,
without its banner readers, for a schedule whose banners come from ``BannerSniff``); ``nmap_syn``
(``true``: nmap ``-sV`` enrichment scans with ``-sS``, raw sockets, instead of ``-sT``). Every
problem is a ``ConfigError`` naming the file and the key.
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from midprobe.capabilities.errors import ConfigError, MidprobeError
from midprobe.probes.ports import PortSpec, parse_ports
from midprobe.probes.targets import TargetSpec, parse_targets

#: Protocols classification may use, in ServiceNow's port priority (Windows is noted and skipped).
PROTOCOLS: Final = ("ssh", "snmp", "http", "nmap")
DEFAULT_BATCH_SIZE: Final = 1000
MIN_BATCH_SIZE: Final = 256
#: The ports Shazzam scans when a schedule names none: the ones classification acts on.
DEFAULT_PORTS: Final = "22,80,135,161,443,5985,5986,9100"
#: The longest run a schedule may ask for (a week), so a typo cannot mean "forever".
MAX_RUN_TIME_LIMIT: Final = 7 * 24 * 3600.0
#: At most this many addresses in one schedule (a /12): a larger range is surely a mistake.
MAX_ADDRESSES: Final = 1 << 20

_KEYS: Final = frozenset(
    {
        "name",
        "ranges",
        "exclude",
        "credentials",
        "mid",
        "behaviour",
        "credential_tags",
        "ports",
        "batch_size",
        "max_run_time",
        "rate",
        "engine",
        "connect_wait",
        "retries",
        "host_discovery",
        "depth",
        "cmdb",
        "enrichment",
        "page_wait",
        "dns_servers",
        "page_items",
        "classify",
        "probe_timeout",
        "shazzam_readers",
        "nmap_syn",
    }
)

#: Shazzam's port-scan engines (``probes/tcpscan/engine.py`` ``ENGINE_CHOICES``, not imported:
#: reading a schedule loads no scanner).
ENGINES: Final = ("auto", "syn", "connect")
#: Shazzam's defaults and bounds for ``connect_wait`` (ms) and ``retries``.
DEFAULT_CONNECT_WAIT: Final = 1000
MAX_CONNECT_WAIT: Final = 60_000
DEFAULT_RETRIES: Final = 2
MAX_RETRIES: Final = 10

#: The phases a discovery may stop after (``depth``), in order.
DEPTHS: Final = ("scanning", "classification", "identification", "exploration")

#: How classification runs its classifiers (``classify``): in turn until one classifies, or all at once.
CLASSIFY: Final = ("first", "all")
#: The longest ``probe_timeout`` a schedule may give (seconds: a day).
MAX_PROBE_TIMEOUT: Final = 86_400.0
#: The most hosts a page of a Shazzam answer may hold (``page_items``).
MAX_PAGE_ITEMS: Final = 65_536

#: What ``enrichment`` may ask for.
ENRICHMENTS: Final = ("banners", "nmap_services", "nmap_os", "names", "snmp_public")

MidChoice = Literal["auto", "named", "cluster"]


@dataclass(frozen=True)
class Schedule:
    """A checked discovery schedule (see the module docstring for each key)."""

    name: str
    ranges: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    credentials: Path | None = None
    mid_choice: MidChoice = "auto"
    mid: str | None = None
    behaviour: tuple[str, ...] = PROTOCOLS
    credential_tags: tuple[str, ...] = ()
    ports: str = DEFAULT_PORTS
    batch_size: int = DEFAULT_BATCH_SIZE
    max_run_time: float | None = None
    rate: float | None = None
    engine: str = "auto"
    connect_wait: int = DEFAULT_CONNECT_WAIT
    retries: int = DEFAULT_RETRIES
    host_discovery: bool = False
    depth: str = "exploration"
    cmdb: bool = True
    enrichment: tuple[str, ...] = ()
    page_wait: int | None = None
    #: Where ``names`` enrichment asks for PTR names (IP addresses).
    dns_servers: tuple[str, ...] = ()
    #: Most hosts one page of a Shazzam answer holds (with ``page_wait``; ``None``: Shazzam's own).
    page_items: int | None = None
    #: ``first``: classifiers in turn until one classifies; ``all``: every one that applies at once.
    classify: str = "first"
    #: Seconds a per-device request may run (``None``: the MID's own limit).
    probe_timeout: float | None = None
    #: Shazzam runs its banner readers (``False``: the port scan alone, GenericTCP).
    shazzam_readers: bool = True
    #: nmap ``-sV`` enrichment with ``-sS`` (raw sockets) instead of ``-sT``.
    nmap_syn: bool = False

    def runs(self, phase: str) -> bool:
        """Whether ``phase`` runs (it is not past the schedule's ``depth``)."""
        return DEPTHS.index(phase) <= DEPTHS.index(self.depth)

    @property
    def targets(self) -> TargetSpec:
        """The ranges' addresses (host names left out: :attr:`host_names`) less the exclusions."""
        return parse_targets(self.ranges, self.exclude).addresses_only()

    @property
    def host_names(self) -> tuple[str, ...]:
        """The hosts the ranges name: each is port-scanned on its own, by the MID whose ``Resolve DNS``
        covers its domain (the MID's Shazzam resolves it under its safety policy)."""
        names: dict[str, str] = {}  # DNS names are case-blind: the first spelling of each
        for name in parse_targets(self.ranges, self.exclude).named_targets:
            names.setdefault(name.lower(), name)
        return tuple(names.values())

    @property
    def port_spec(self) -> PortSpec:
        return parse_ports(self.ports)

    def batches(self) -> Iterator[tuple[str, ...]]:
        """The schedule's addresses in Shazzam batches of at most ``batch_size``, each as CIDR blocks."""
        yield from batch_addresses(self.targets, self.batch_size)


def batch_addresses(targets: TargetSpec, size: int) -> Iterator[tuple[str, ...]]:
    """Split ``targets`` into batches of at most ``size`` addresses, each written as CIDR blocks
    (:meth:`TargetSpec.batches`: in address order, one address family per batch, no expansion)."""
    return targets.batches(size)


def _fail(path: Path | str, key: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message}", field=key)


def _strings(path: Path | str, key: str, value: Any, *, allow_one: bool = True) -> tuple[str, ...]:
    if allow_one and isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(path, key, f"{key} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _whole(path: Path | str, key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(path, key, f"{key} must be a whole number from {low} to {high}")
    return value


def _flag(path: Path | str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, key, f"{key} must be true or false")
    return value


def _number(path: Path | str, key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, key, f"{key} must be a number")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise _fail(path, key, f"{key} must be between {low:g} and {high:g}")
    return number


def schedule_from_mapping(data: Mapping[str, Any], *, source: Path | str = "<schedule>") -> Schedule:
    """Check a parsed schedule table; paths in it are relative to ``source``'s folder."""
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise _fail(source, unknown[0], f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    for required in ("name", "ranges"):
        if required not in data:
            raise _fail(source, required, f"the schedule needs {required!r}")
    name = data["name"]
    if not isinstance(name, str) or not name.strip() or not name.isprintable() or len(name) > 100:
        raise _fail(source, "name", "name must be a printable string of 1 to 100 characters")
    ranges = _strings(source, "ranges", data["ranges"])
    exclude = _strings(source, "exclude", data.get("exclude", []))
    try:
        targets = parse_targets(ranges, exclude)
    except MidprobeError as error:
        raise _fail(source, "ranges", f"bad range: {error}") from None
    prefixed = [name for name in targets.named_targets if "/" in name]
    if prefixed:
        raise _fail(
            source, "ranges", f"a host name takes no prefix length ({prefixed[0]!r}): give the network"
        )
    if len(targets.host_names) > len(targets.named_targets):  # an exclusion is a host name
        raise _fail(source, "exclude", "exclude takes addresses, not host names")
    if targets.count() > MAX_ADDRESSES:
        raise _fail(
            source, "ranges", f"the ranges hold {targets.count():,} addresses, more than {MAX_ADDRESSES:,}"
        )
    credentials: Path | None = None
    if "credentials" in data:
        raw = data["credentials"]
        if not isinstance(raw, str) or not raw.strip():
            raise _fail(source, "credentials", "credentials must be the path of a credentials file")
        base = Path(source).parent if isinstance(source, Path) else Path.cwd()
        credentials = (base / raw).resolve()
        if not credentials.is_file():
            raise _fail(source, "credentials", f"no credentials file at {credentials}")
    mid_choice: MidChoice = "auto"
    mid: str | None = None
    raw_mid = data.get("mid", "auto")
    if not isinstance(raw_mid, str) or not raw_mid.strip() or not raw_mid.isprintable():
        raise _fail(source, "mid", 'mid must be "auto", a MID name or "cluster:NAME"')
    if raw_mid.startswith("cluster:"):
        mid_choice, mid = "cluster", raw_mid.removeprefix("cluster:").strip()
        if not mid:
            raise _fail(source, "mid", "cluster: needs the cluster's name")
    elif raw_mid != "auto":
        mid_choice, mid = "named", raw_mid.strip().removeprefix("mid.server.")
    behaviour = tuple(
        p.lower() for p in _strings(source, "behaviour", data.get("behaviour", list(PROTOCOLS)))
    )
    bad = [p for p in behaviour if p not in PROTOCOLS]
    if bad or not behaviour:
        raise _fail(source, "behaviour", f"behaviour takes protocols among {', '.join(PROTOCOLS)}")
    tags = _strings(source, "credential_tags", data.get("credential_tags", []))
    ports = data.get("ports", DEFAULT_PORTS)
    if isinstance(ports, list) and all(isinstance(p, int) and not isinstance(p, bool) for p in ports):
        ports = ",".join(str(p) for p in ports)
    if not isinstance(ports, str):
        raise _fail(source, "ports", 'ports must be a port list such as "22,80,161"')
    try:
        parse_ports(ports)
    except MidprobeError as error:
        raise _fail(source, "ports", f"bad port list: {error}") from None
    batch_size = data.get("batch_size", DEFAULT_BATCH_SIZE)
    _whole(source, "batch_size", batch_size, MIN_BATCH_SIZE, MAX_ADDRESSES)
    engine = data.get("engine", "auto")
    if engine not in ENGINES:
        raise _fail(source, "engine", f"engine must be one of {', '.join(ENGINES)}")
    connect_wait = _whole(
        source, "connect_wait", data.get("connect_wait", DEFAULT_CONNECT_WAIT), 1, MAX_CONNECT_WAIT
    )
    retries = _whole(source, "retries", data.get("retries", DEFAULT_RETRIES), 0, MAX_RETRIES)
    host_discovery, cmdb, shazzam_readers, nmap_syn = (
        _flag(source, key, data.get(key, default))
        for key, default in (
            ("host_discovery", False),
            ("cmdb", True),
            ("shazzam_readers", True),
            ("nmap_syn", False),
        )
    )
    classify = data.get("classify", "first")
    if classify not in CLASSIFY:
        raise _fail(source, "classify", f"classify must be one of {', '.join(CLASSIFY)}")
    probe_timeout = (
        _number(source, "probe_timeout", data["probe_timeout"], 1, MAX_PROBE_TIMEOUT)
        if "probe_timeout" in data
        else None
    )
    page_items = (
        _whole(source, "page_items", data["page_items"], 1, MAX_PAGE_ITEMS) if "page_items" in data else None
    )
    enrichment = _strings(source, "enrichment", data.get("enrichment", []))
    if any(e not in ENRICHMENTS for e in enrichment):
        raise _fail(source, "enrichment", f"enrichment takes {', '.join(ENRICHMENTS)}")
    dns_servers = _strings(source, "dns_servers", data.get("dns_servers", []))
    try:
        dns_servers = tuple(str(ipaddress.ip_address(server)) for server in dns_servers)
    except ValueError:
        raise _fail(source, "dns_servers", "dns_servers must be IP addresses") from None
    if "names" in enrichment and not dns_servers:
        raise _fail(source, "enrichment", "enrichment names needs dns_servers to ask")
    page_wait = (
        _whole(source, "page_wait", data["page_wait"], 1, MAX_CONNECT_WAIT) if "page_wait" in data else None
    )
    depth = data.get("depth", "exploration")
    if depth not in DEPTHS:
        raise _fail(source, "depth", f"depth must be one of {', '.join(DEPTHS)}")
    max_run_time = (
        _number(source, "max_run_time", data["max_run_time"], 1, MAX_RUN_TIME_LIMIT)
        if "max_run_time" in data
        else None
    )
    rate = _number(source, "rate", data["rate"], 1, 1_000_000) if "rate" in data else None
    return Schedule(
        name=name.strip(),
        ranges=ranges,
        exclude=exclude,
        credentials=credentials,
        mid_choice=mid_choice,
        mid=mid,
        behaviour=tuple(dict.fromkeys(behaviour)),
        credential_tags=tags,
        ports=ports,
        batch_size=batch_size,
        max_run_time=max_run_time,
        rate=rate,
        engine=str(engine),
        connect_wait=connect_wait,
        retries=retries,
        host_discovery=host_discovery,
        depth=str(depth),
        cmdb=cmdb,
        enrichment=tuple(dict.fromkeys(enrichment)),
        page_wait=page_wait,
        dns_servers=dns_servers,
        page_items=page_items,
        classify=str(classify),
        probe_timeout=probe_timeout,
        shazzam_readers=shazzam_readers,
        nmap_syn=nmap_syn,
    )


def schedule_to_mapping(schedule: Schedule) -> dict[str, object]:
    """The schedule's keys as a table ``schedule_from_mapping`` reads back (pure), without ``credentials``.

    A schedule sent to an instance travels this way: its credentials file goes beside it, read by
    the sender, since a path on the sender's disk means nothing to the instance.
    """
    table: dict[str, object] = {
        "name": schedule.name,
        "ranges": list(schedule.ranges),
        "exclude": list(schedule.exclude),
        "mid": {"auto": "auto", "named": schedule.mid, "cluster": f"cluster:{schedule.mid}"}[
            schedule.mid_choice
        ],
        "behaviour": list(schedule.behaviour),
        "credential_tags": list(schedule.credential_tags),
        "ports": schedule.ports,
        "batch_size": schedule.batch_size,
        "engine": schedule.engine,
        "connect_wait": schedule.connect_wait,
        "retries": schedule.retries,
        "host_discovery": schedule.host_discovery,
        "depth": schedule.depth,
        "cmdb": schedule.cmdb,
        "enrichment": list(schedule.enrichment),
        "classify": schedule.classify,
        "shazzam_readers": schedule.shazzam_readers,
        "nmap_syn": schedule.nmap_syn,
    }
    if schedule.probe_timeout is not None:
        table["probe_timeout"] = schedule.probe_timeout
    if schedule.page_items is not None:
        table["page_items"] = schedule.page_items
    if schedule.max_run_time is not None:
        table["max_run_time"] = schedule.max_run_time
    if schedule.rate is not None:
        table["rate"] = schedule.rate
    if schedule.page_wait is not None:
        table["page_wait"] = schedule.page_wait
    if schedule.dns_servers:
        table["dns_servers"] = list(schedule.dns_servers)
    return table


def load_schedule(path: str | Path) -> Schedule:
    """Read and check a schedule file; ``ConfigError`` (one line naming the file and key) if bad."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no schedule file at {file}", field="SCHEDULE") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else "not UTF-8 text"
        raise ConfigError(f"cannot read schedule {file}: {reason}", field="SCHEDULE") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{file}: not valid TOML ({error})", field="SCHEDULE") from None
    return schedule_from_mapping(data, source=file.resolve())


__all__ = [
    "CLASSIFY",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_PORTS",
    "DEPTHS",
    "ENGINES",
    "ENRICHMENTS",
    "MIN_BATCH_SIZE",
    "PROTOCOLS",
    "Schedule",
    "batch_addresses",
    "load_schedule",
    "schedule_from_mapping",
    "schedule_to_mapping",
]
