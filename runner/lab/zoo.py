"""The zoo: snmpsim-data's recordings of real devices, each answering as its own lab host.

``used_recordings`` picks the half of the recordings that rules, tests and fixtures may look at
(in each folder, sorted by name, positions 1, 3, 5, ...); the other half is held out to measure
how the rules carry over to devices they were not written from. ``read_identity`` reads a
recording's system group (pure); ``ZooAgent`` runs ``snmpsim-command-responder`` inside the
zoo host's namespace with one SNMP engine per recording, each on its own address of the network the lab
routes to that host (198.18.1.0/24), all with the community ``public``: a scan of that network sees
one real device identity per address. snmpsim's index is cached under ``~/.cache/midprobe/snmpsim``.
"""

from __future__ import annotations

import bz2
import ipaddress
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from midprobe.capabilities.errors import ConfigError
from midprobe.probes.base import ProbeContext
from midprobe.probes.credentials import CredentialStore, Secret, SNMPCommunityCredential
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.snmp.classify import SnmpClassifyProbe
from midprobe.runner.lab import netns
from midprobe.runner.lab.daemons import stop_pids
from midprobe.runner.lab.lab import Lab, LabHost
from midprobe.runner.lab.netns import NamespaceThread

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


def start_responder(command: Sequence[str], netns: str, log: Path) -> subprocess.Popen[bytes]:
    """The responder started inside the lab namespace ``netns``, logging to ``log``.

    A file, not a pipe: snmpsim logs every request, and a pipe nobody reads would stall it.
    """
    with log.open("wb") as output:
        return subprocess.Popen(
            ["ip", "netns", "exec", netns, *command],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


EXPECTED_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "classify" / "zoo_expected.toml"
ZOO_PROFILE = Path(__file__).resolve().parents[2] / "fixtures" / "lab" / "zoo.toml"


def load_expected(path: Path = EXPECTED_FILE) -> dict[str, str]:
    """``{recording path: expected CMDB class}`` from ``fixtures/classify/zoo_expected.toml``."""
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    expected: dict[str, str] = {}
    for recording, entry in document.items():
        ci_class = entry.get("class") if isinstance(entry, dict) else None
        if not isinstance(ci_class, str) or not ci_class.startswith("cmdb_ci_"):
            raise ConfigError(
                "must be a CMDB class name (cmdb_ci_...)", source=str(path), entry=recording, field="class"
            )
        expected[recording] = ci_class
    return expected


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


class ZooAgent:
    """snmpsim inside a lab namespace, each used recording answering at its own address of
    ``network`` (added to that namespace's loopback; the lab routes ``network`` to it) with the
    community ``public``."""

    def __init__(self, *, namespace: str, network: str, port: int = 161) -> None:
        self.namespace = namespace
        self.network = network
        self.port = port
        self.recordings = used_recordings(list_recordings(data_root()))
        self.devices = device_addresses(network, self.recordings)
        self._process: subprocess.Popen[bytes] | None = None
        self.log = cache_dir() / "responder.log"

    @classmethod
    def on(cls, host: LabHost) -> ZooAgent:
        """The zoo on a lab host whose profile routes a network to it (``routed_network``)."""
        if host.routed_network is None:
            raise ConfigError(f"lab host {host.name} has no routed_network for the zoo", field="zoo")
        return cls(namespace=host.namespace, network=host.routed_network)

    def start(self) -> None:
        cache = cache_dir()
        data = prepare_data(data_root(), self.recordings, cache / "data")
        index = cache / "index"
        index.mkdir(parents=True, exist_ok=True)
        prune_index(index, data)
        addresses = list(self.devices.values())
        netns.ip_batch(
            [f"addr replace {address}/32 dev lo" for address in addresses], namespace=self.namespace
        )
        command = responder_command(
            devices=[
                ((data / served_path(n)).parent, f"{address}:{self.port}")
                for n, address in enumerate(addresses)
            ],
            cache=index,
        )
        self.log = cache / "responder.log"
        self._process = start_responder(command, self.namespace, self.log)
        self.wait_ready(len(addresses))
        self.open_every_device()

    def open_every_device(self, timeout: float = 60.0) -> None:
        """Ask each device for its sysObjectID once, from inside its namespace, so snmpsim opens
        every data file now (seconds for the largest) rather than inside someone's SNMP timeout."""
        inside = ["ip", "netns", "exec", self.namespace]
        for path, address in self.devices.items():
            answered = subprocess.run(
                [
                    *inside,
                    "snmpget",
                    "-v2c",
                    "-c",
                    COMMUNITY,
                    "-t",
                    f"{timeout:.0f}",
                    "-r",
                    "0",
                    address,
                    SYS_OBJECT_ID,
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout + 10,
            )
            if answered.returncode != 0:
                raise ConfigError(
                    f"{path} at {address} did not answer: {answered.stderr.strip()}", field="zoo"
                )

    def wait_ready(self, endpoints: int, timeout: float = 900.0) -> None:
        """Return once the responder listens on all ``endpoints`` (the first run builds the
        index: slower), bounded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                error = self.log.read_text(errors="replace")
                raise ConfigError(f"snmpsim exited: {error.strip()[-300:]}", field="zoo")
            listening = subprocess.run(
                ["ip", "netns", "exec", self.namespace, "ss", "-Huln", f"sport = :{self.port}"],
                capture_output=True,
                text=True,
                check=False,
            )
            if len(listening.stdout.splitlines()) >= endpoints:
                return
            time.sleep(0.2)
        raise ConfigError(f"snmpsim did not listen within {timeout:.0f} s", field="zoo")

    def stop(self) -> None:
        if self._process is None:
            return
        stop_pids([(self._process.pid, None)], grace=10.0)
        self._process.wait(timeout=10)
        self._process = None

    def __enter__(self) -> ZooAgent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Verdict:
    """What SNMPClassify said about one recording, next to what was expected."""

    path: str
    address: str
    expected: str | None
    ci_class: str | None
    vendor: str | None
    model: str | None
    evidence: str
    confidence: float
    error: str | None = None

    @property
    def right(self) -> bool:
        return self.expected is not None and self.ci_class == self.expected


def classify_zoo(agent: ZooAgent, thread: NamespaceThread, *, timeout: float = 120.0) -> tuple[Verdict, ...]:
    """Each recording the agent serves, classified through the real SNMPClassify probe."""
    expected = load_expected()
    probe = SnmpClassifyProbe()
    # snmpsim opens a large recording slowly (its first answer can take seconds): a patient timeout.
    store = CredentialStore(
        [SNMPCommunityCredential(id="zoo", community=Secret(COMMUNITY), order=10)],
        snmp_public_fallback=False,
    )
    verdicts: list[Verdict] = []
    for path, address in agent.devices.items():
        params = probe.parse_params(
            address, {"version": "2c", "port": str(agent.port), "timeout": "10000", "retries": "1"}
        )
        context = ProbeContext(
            policy=TargetPolicy.lab(), credentials=store, deadline=time.monotonic() + timeout
        )
        try:
            result = thread.run_async(
                lambda params=params, context=context: probe.run(params, context)  # type: ignore[misc]
            )
        except Exception as error:  # one recording that fails is a row, not the end
            verdicts.append(Verdict(path, address, expected.get(path), None, None, None, "", 0.0, str(error)))
            continue
        found = result.classification
        verdicts.append(
            Verdict(
                path,
                address,
                expected.get(path),
                found.ci_class,
                found.vendor,
                result.facts.model,
                found.evidence[0] if found.evidence else "",
                found.confidence,
            )
        )
    return tuple(verdicts)


def share_right(verdicts: Iterable[Verdict]) -> tuple[int, int]:
    """``(right, scored)`` over the verdicts that have an expectation."""
    scored = [v for v in verdicts if v.expected is not None]
    return sum(v.right for v in scored), len(scored)


@contextmanager
def zoo_lab() -> Iterator[tuple[Lab, ZooAgent]]:
    """The zoo lab (``fixtures/lab/zoo.toml``) up, snmpsim serving every used recording; torn down after."""
    with Lab.up(ZOO_PROFILE) as lab, ZooAgent.on(lab.host("zoo")) as agent:
        yield lab, agent


def run_zoo() -> tuple[Verdict, ...]:
    """Bring up the zoo lab, classify every used recording from the scanner namespace, tear down."""
    with zoo_lab() as (lab, agent), lab.namespace_thread() as thread:
        return classify_zoo(agent, thread)
