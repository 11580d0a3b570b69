"""The zoo: snmpsim-data's recordings of real devices, each answering as its own lab host.

``used_recordings`` picks the half of the recordings that rules, tests and fixtures may look at
(in each folder, sorted by name, positions 1, 3, 5, ...); the other half is held out to measure
how the rules carry over to devices they were not written from. ``read_identity`` reads a
recording's system group (pure); ``ZooAgent`` runs ``snmpsim-command-responder`` inside a lab
namespace with one endpoint per recording, its index cached under ``~/.cache/midprobe/snmpsim``.
"""

from __future__ import annotations

import bz2
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from midprobe.capabilities.errors import ConfigError
from midprobe.probes.base import ProbeContext
from midprobe.probes.credentials import CredentialStore, Secret, SNMPCommunityCredential
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.snmp.classify import SnmpClassifyProbe
from midprobe.runner.lab.daemons import stop_pids
from midprobe.runner.lab.lab import Lab
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


def community_of(path: str) -> str:
    """The community a recording answers to: its path without the suffix (snmpsim's convention)."""
    return served_name(path).removesuffix(RECORDING_SUFFIX)


def cache_dir() -> Path:
    """snmpsim's index cache, kept between runs outside the tree."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "midprobe" / "snmpsim"


def responder_command(
    *, data_dir: Path, endpoints: Sequence[str], cache: Path, process_user: str = "root"
) -> list[str]:
    """``snmpsim-command-responder`` serving ``data_dir`` on each ``host:port`` endpoint."""
    program = shutil.which("snmpsim-command-responder") or str(
        Path(sys.executable).parent / "snmpsim-command-responder"
    )
    command = [
        program,
        f"--data-dir={data_dir}",
        f"--cache-dir={cache}",
        f"--process-user={process_user}",
        f"--process-group={process_user}",
    ]
    command.extend(f"--agent-udpv4-endpoint={endpoint}" for endpoint in endpoints)
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
    """``target`` holding each recording decompressed (only those), so snmpsim serves no other.

    Files already there are left alone: snmpsim keeps its index while a file's time stays.
    """
    wanted = {served_name(path) for path in recordings}
    if target.exists():
        for stale in [
            p for p in target.rglob("*") if p.is_file() and p.relative_to(target).as_posix() not in wanted
        ]:
            stale.unlink()
    for path in recordings:
        destination = target / served_name(path)
        if destination.exists():
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(served_text(recording_text(root, path)), encoding="utf-8")
    return target


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
    """snmpsim inside a lab namespace, answering as every used recording (one community each)."""

    def __init__(self, *, namespace: str, address: str, port: int = 161) -> None:
        self.namespace = namespace
        self.address = address
        self.port = port
        self.recordings = used_recordings(list_recordings(data_root()))
        self._process: subprocess.Popen[bytes] | None = None
        self.log = cache_dir() / "responder.log"

    def start(self) -> None:
        cache = cache_dir()
        data = prepare_data(data_root(), self.recordings, cache / "data")
        index = cache / "index"
        index.mkdir(parents=True, exist_ok=True)
        command = responder_command(data_dir=data, endpoints=[f"{self.address}:{self.port}"], cache=index)
        self.log = cache / "responder.log"
        self._process = start_responder(command, self.namespace, self.log)
        self.wait_ready()

    def wait_ready(self, timeout: float = 900.0) -> None:
        """Return once the responder listens (the first run builds the index: slower), bounded."""
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
            if listening.stdout.strip():
                return
            time.sleep(0.2)
        raise ConfigError(f"snmpsim did not listen within {timeout:.0f} s", field="zoo")

    def communities(self) -> dict[str, str]:
        """``{recording path: community}``."""
        return {path: community_of(path) for path in self.recordings}

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
    params = probe.parse_params(
        agent.address, {"version": "2c", "port": str(agent.port), "timeout": "10000", "retries": "1"}
    )
    verdicts: list[Verdict] = []
    for path, community in agent.communities().items():
        store = CredentialStore(
            [SNMPCommunityCredential(id="zoo", community=Secret(community), order=10)],
            snmp_public_fallback=False,
        )
        context = ProbeContext(
            policy=TargetPolicy.lab(), credentials=store, deadline=time.monotonic() + timeout
        )
        try:
            result = thread.run_async(lambda context=context: probe.run(params, context))  # type: ignore[misc]
        except Exception as error:  # one recording that fails is a row, not the end
            verdicts.append(Verdict(path, expected.get(path), None, None, None, "", 0.0, str(error)))
            continue
        found = result.classification
        verdicts.append(
            Verdict(
                path,
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


def run_zoo() -> tuple[Verdict, ...]:
    """Bring up the zoo lab, classify every used recording from the scanner namespace, tear down."""
    with Lab.up(ZOO_PROFILE) as lab:
        host = lab.host("zoo")
        with (
            ZooAgent(namespace=host.namespace, address=host.address) as agent,
            lab.namespace_thread() as thread,
        ):
            return classify_zoo(agent, thread)
