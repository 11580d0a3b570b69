"""Scoring the classifier on the zoo: each used recording classified through SNMPClassify.

``load_expected`` reads what each recording should be (``fixtures/classify/zoo_expected.toml``);
``zoo_lab`` brings up ``fixtures/lab/zoo.toml`` (its zoo daemon serves the recordings, see
``zoo.py``); ``classify_zoo`` runs the real probe against every device from the scanner namespace.
Used by ``bench/bench_classify.py`` (``make classify-report``) and ``tests/lab/test_zoo_lab.py``.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from midprobe.capabilities.errors import ConfigError
from midprobe.probes.base import ProbeContext
from midprobe.probes.credentials import CredentialStore, Secret, SNMPCommunityCredential
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.snmp.classify import SnmpClassifyProbe

from .lab import Lab
from .netns import NamespaceThread
from .zoo import COMMUNITY, PORT, zoo_devices

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


def classify_zoo(
    devices: Mapping[str, str], thread: NamespaceThread, *, timeout: float = 120.0
) -> tuple[Verdict, ...]:
    """Each device (``{recording: address}``), classified through the real SNMPClassify probe."""
    expected = load_expected()
    probe = SnmpClassifyProbe()
    # snmpsim answers one request at a time, some from large recordings: a patient timeout.
    store = CredentialStore(
        [SNMPCommunityCredential(id="zoo", community=Secret(COMMUNITY), order=10)],
        snmp_public_fallback=False,
    )
    verdicts: list[Verdict] = []
    for path, address in devices.items():
        params = probe.parse_params(
            address, {"version": "2c", "port": str(PORT), "timeout": "10000", "retries": "1"}
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
def zoo_lab() -> Iterator[tuple[Lab, dict[str, str]]]:
    """The zoo lab (``fixtures/lab/zoo.toml``) up, every used recording answering at its own
    address: ``(lab, {recording: address})``; torn down after."""
    with Lab.up(ZOO_PROFILE) as lab:
        network = lab.host("zoo").routed_network
        if network is None:
            raise ConfigError("the zoo host has no routed_network", source=str(ZOO_PROFILE), field="zoo")
        yield lab, zoo_devices(network)


def run_zoo() -> tuple[Verdict, ...]:
    """Bring up the zoo lab, classify every used recording from the scanner namespace, tear down."""
    with zoo_lab() as (lab, devices), lab.namespace_thread() as thread:
        return classify_zoo(devices, thread)
