"""The zoo: snmpsim-data's recordings of real devices, each answering as its own lab host.

``used_recordings`` picks the half of the recordings that rules, tests and fixtures may look at
(in each folder, sorted by name, positions 1, 3, 5, ...); the other half is held out to measure
how the rules carry over to devices they were not written from. ``read_identity`` reads a
recording's system group (pure). ``daemon_spec`` is the lab daemon of a host whose profile says
``zoo = true``: snmpsim inside that host's namespace with one SNMP engine per recording, each on its
own address of the network the lab routes to the host (198.18.1.0/24), all with the community
``public``, so a scan of that network sees one real device identity per address. The served data
and snmpsim's index are cached under ``~/.cache/midprobe/snmpsim`` between runs.
"""

from __future__ import annotations

import bz2
import ipaddress
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from midprobe.capabilities.errors import ConfigError

from . import netns
from .daemons import DaemonSpec, ReadyCheck

RECORDING_SUFFIX = ".snmprec"
COMPRESSED_SUFFIX = ".bz2"
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"


def used_recordings(paths: Iterable[str]) -> tuple[str, ...]:
    """The recordings that may be used: in each folder, sorted by file name, the 1st, 3rd, 5th, ...

    ``paths`` are relative (``network/switch/cisco-2960.snmprec``); the others are held out.
    """
    by_folder: dict[str, list[str]] = {}
    for path in paths:
        pure = PurePosixPath(path)
        by_folder.setdefault(str(pure.parent), []).append(pure.name)
    chosen: list[str] = []
    for folder in sorted(by_folder):
        names = sorted(by_folder[folder])
        chosen.extend(str(PurePosixPath(folder) / name) for name in names[0::2])
    return tuple(sorted(chosen))


def data_root() -> Path:
    """Where snmpsim-data installed its recordings (``ConfigError`` naming the extra to install)."""
    try:
        import snmpsim_data  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            "the zoo needs the snmpsim-data package (pip install -e '.[dev]')", field="zoo"
        ) from None
    return Path(snmpsim_data.__file__).parent / "data"


def list_recordings(root: Path) -> tuple[str, ...]:
    """Every recording under ``root`` (``.snmprec``, or ``.snmprec.bz2`` as snmpsim-data ships most),
    relative, by name only: none is opened."""
    return tuple(
        sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.name.endswith(RECORDING_SUFFIX) or p.name.endswith(RECORDING_SUFFIX + COMPRESSED_SUFFIX)
        )
    )


def recording_text(root: Path, path: str) -> str:
    """The text of one recording (decompressed when it ships as ``.bz2``)."""
    raw = (root / path).read_bytes()
    if path.endswith(COMPRESSED_SUFFIX):
        raw = bz2.decompress(raw)
    return raw.decode("utf-8", "replace")


def served_name(path: str) -> str:
    """The recording's name as snmpsim serves it: without ``.bz2``."""
    return path.removesuffix(COMPRESSED_SUFFIX)


@dataclass(frozen=True)
class Identity:
    """A recording's system group: what the device says it is."""

    path: str
    sys_descr: str
    sys_object_id: str
    sys_name: str


def _decode(kind: str, value: str) -> str:
    if kind.endswith("x"):
        try:
            return bytes.fromhex(value).decode("utf-8", "replace")
        except ValueError:
            return value
    return value


def read_identity(path: str, text: str) -> Identity:
    """The system group of one recording's text (``oid|type|value`` lines)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        oid, sep, rest = line.partition("|")
        if not sep or oid not in (SYS_DESCR, SYS_OBJECT_ID, SYS_NAME):
            continue
        kind, _, value = rest.partition("|")
        found[oid] = _decode(kind, value)
    return Identity(
        path,
        found.get(SYS_DESCR, ""),
        found.get(SYS_OBJECT_ID, ""),
        found.get(SYS_NAME, ""),
    )


#: The community every zoo device answers to, as many real devices do out of the box.
COMMUNITY = "public"


def device_addresses(network: str, recordings: Sequence[str]) -> dict[str, str]:
    """``{recording: address}``: the n-th recording answers at the n-th host address of ``network``."""
    hosts = ipaddress.IPv4Network(network).hosts()
    addresses = [str(address) for address, _ in zip(hosts, recordings, strict=False)]
    if len(addresses) < len(recordings):
        raise ConfigError(
            f"{network} holds {len(addresses)} addresses, the zoo needs {len(recordings)}",
            field="routed_network",
        )
    return dict(zip(recordings, addresses, strict=True))


def served_path(index: int) -> str:
    """The ``index``-th device's data: ``COMMUNITY``'s data file in that device's own data folder."""
    return f"{index}/{COMMUNITY}{RECORDING_SUFFIX}"


def cache_dir() -> Path:
    """snmpsim's index cache, kept between runs outside the tree."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "midprobe" / "snmpsim"


def responder_command(
    *, devices: Sequence[tuple[Path, str]], cache: Path, process_user: str = "root"
) -> list[str]:
    """snmpsim's command responder with one SNMP engine per ``(data folder, host:port)`` device.

    snmpsim runs several engines in one process, each with its own engine ID, data folder and
    endpoints: a request is answered by the engine of the endpoint it came to, from that engine's
    data file for its community. (Its other way, a data file per transport endpoint under one
    engine, is not reached with the pysnmp 7 that snmpsim 1.2 runs on: the request handler it
    overrides is no longer called.)
    """
    command = [
        sys.executable,
        "-m",
        "midprobe.runner.lab.snmpsim_responder",  # snmpsim's, keeping every data file open
        f"--cache-dir={cache}",
        f"--process-user={process_user}",
        f"--process-group={process_user}",
    ]
    for data_dir, endpoint in devices:
        command += ["--v3-engine-id=auto", f"--data-dir={data_dir}", f"--agent-udpv4-endpoint={endpoint}"]
    return command


def prepare_data(root: Path, recordings: Sequence[str], target: Path) -> Path:
    """``target`` holding the n-th recording (decompressed, ``served_text``) at ``served_path(n)``.

    Only those: snmpsim serves no other. ``target``'s manifest (a file beside it) says which
    recording each file holds; a file that already holds its recording is left alone, so snmpsim
    keeps its index (it rebuilds one only when the file is newer).
    """
    manifest = target.with_name(target.name + ".manifest")
    held: dict[str, str] = {}
    if manifest.exists():
        for line in manifest.read_text(encoding="utf-8").splitlines():
            served, _, path = line.partition(" ")
            held[served] = path
    wanted = {served_path(index): path for index, path in enumerate(recordings)}
    if target.exists():
        for stale in sorted(target.rglob("*"), reverse=True):  # files before their folders
            relative = stale.relative_to(target).as_posix()
            if stale.is_file() and relative not in wanted:
                stale.unlink()
            elif stale.is_dir() and not any(stale.iterdir()):
                stale.rmdir()
    for served, path in wanted.items():
        destination = target / served
        if destination.exists() and held.get(served) == path:
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".partial")  # not a data file to snmpsim
        partial.write_text(served_text(recording_text(root, path)), encoding="utf-8")
        partial.replace(destination)
    manifest.write_text("".join(f"{served} {path}\n" for served, path in wanted.items()), encoding="utf-8")
    return target


def prune_index(index: Path, data: Path) -> None:
    """Remove the index files of data files no longer served (an earlier layout's): snmpsim names
    a data file's index after its path, ``/`` as ``_`` and ``.dbm`` for the suffix."""
    current = {str(path.with_suffix(".dbm")).replace("/", "_") for path in data.rglob("*" + RECORDING_SUFFIX)}
    for file in index.iterdir():
        stem, dot, _ = file.name.partition(".dbm")
        if file.is_file() and dot and stem + ".dbm" not in current:
            file.unlink()


#: The MIB-2 subtrees served: the system group, interfaces, ip, BRIDGE-MIB, host resources, ifXTable,
#: UPS-MIB, Printer-MIB, ENTITY-MIB. Python snmpsim answers slowly from recordings of hundreds of MB
#: (seconds per request, past any SNMP timeout); the subtrees discovery reads keep every answer fast.
SERVED_SUBTREES = tuple(
    "1.3.6.1.2.1." + branch + "." for branch in ("1", "2", "4", "17", "25", "31", "33", "43", "47")
)


def served_text(text: str) -> str:
    """The lines of a recording under ``SERVED_SUBTREES`` (snmprec lines are sorted by OID)."""
    return "".join(
        line for line in text.splitlines(keepends=True) if line.partition("|")[0].startswith(SERVED_SUBTREES)
    )


PORT = 161
#: The first run builds snmpsim's index of every recording (minutes); later runs start in seconds.
READY_WITHIN = 900.0


def zoo_devices(network: str) -> dict[str, str]:
    """``{recording: address}`` of every used recording served on ``network``."""
    return device_addresses(network, used_recordings(list_recordings(data_root())))


def daemon_spec(*, host: str, namespace: str, address: str, network: str, host_dir: Path) -> DaemonSpec:
    """The zoo as a lab daemon on ``host``: each used recording answers at its own address of
    ``network`` (added to the host's loopback; the lab routes ``network`` to the host) with the
    community ``public``.

    Prepares the served data first (decompressed once, kept in ``cache_dir()``). Ready once every
    device answered a GET, which also makes snmpsim open each data file now (seconds for the
    largest) rather than inside somebody's SNMP timeout.
    """
    del address  # the host's own address (every lab daemon gets it) serves nothing of the zoo
    recordings = used_recordings(list_recordings(data_root()))
    devices = device_addresses(network, recordings)
    cache = cache_dir()
    data = prepare_data(data_root(), recordings, cache / "data")
    index = cache / "index"
    index.mkdir(parents=True, exist_ok=True)
    prune_index(index, data)
    netns.ip_batch([f"addr replace {device}/32 dev lo" for device in devices.values()], namespace=namespace)
    endpoints = [
        ((data / served_path(n)).parent, f"{device}:{PORT}") for n, device in enumerate(devices.values())
    ]
    return DaemonSpec(
        name=f"snmpsim@{host}",
        host=host,
        namespace=namespace,
        argv=tuple(responder_command(devices=endpoints, cache=index)),
        log=host_dir / "snmpsim.log",
        checks=tuple(ReadyCheck("snmp", device, PORT, COMMUNITY) for device in devices.values()),
        env={"HOME": str(host_dir)},  # snmpsim looks for its own folders there
        ready_within=READY_WITHIN,
    )
