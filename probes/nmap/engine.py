"""Runs allow-listed nmap invocations through python-nmap, bounded: a thread pool, a process kill, a deadline.

python-nmap is blocking, so each run goes to ``asyncio.to_thread`` (the loop's executor, whose threads
inherit the loop thread's network namespace, and so does the nmap process they start), at most
:data:`MAX_CONCURRENT_NMAP` at a time per event loop. nmap's own ``--host-timeout`` ends slow hosts a
little before python-nmap kills the process at the deadline. Every target is checked against the
context's ``TargetPolicy`` before anything runs. Foreign exceptions become midprobe errors here.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import nmap

from midprobe.capabilities.errors import MissingCapability, ProbeError, ProbeTimeout
from midprobe.probes.nmap.options import NmapInvocation, NmapTargets
from midprobe.probes.nmap.parse import NmapScan, parse_nmap_xml
from midprobe.probes.safety import TargetPolicy

#: nmap processes one event loop runs at the same time (the rest wait their turn).
MAX_CONCURRENT_NMAP: Final = 4
#: Extra seconds the asyncio side waits past the kill deadline before giving up on the thread.
_KILL_GRACE_S: Final = 5.0
#: Where python-nmap looks for nmap; ``MIDPROBE_NMAP`` (an operator's setting, never a request's) may
#: name another binary or a wrapper, e.g. one that runs nmap through ``ip netns exec``.
DEFAULT_NMAP_SEARCH_PATH: Final = ("nmap", "/usr/bin/nmap", "/usr/local/bin/nmap")

_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()
_limits_lock = threading.Lock()


@dataclass(frozen=True)
class NmapRun:
    """One finished nmap run: what it was (``label``) and what it found."""

    label: str
    scan: NmapScan


def nmap_search_path() -> tuple[str, ...]:
    configured = os.environ.get("MIDPROBE_NMAP")
    return (configured,) if configured else DEFAULT_NMAP_SEARCH_PATH


def check_targets(targets: NmapTargets, policy: TargetPolicy) -> None:
    """Refuse the whole request if any target address or network is outside the policy."""
    for network in targets.networks:
        if network.prefixlen == network.max_prefixlen:
            policy.check(network.network_address)
        else:
            policy.check_network(network)


def _first_line(text: object, limit: int = 160) -> str:
    lines = [line.strip() for line in str(text).replace("\\n", "\n").splitlines() if line.strip()]
    return (lines[0] if lines else "no output")[:limit]


def run_nmap_blocking(invocation: NmapInvocation, *, topic: str) -> bytes:
    """Run one invocation with python-nmap and return nmap's raw XML (blocking; call in a thread)."""
    try:
        scanner = nmap.PortScanner(nmap_search_path=nmap_search_path())
    except nmap.PortScannerError:
        raise MissingCapability(topic, "Nmap") from None
    try:
        # python-nmap adds ``-oX -`` and splits both strings with shlex; every token is allow-listed.
        scanner.scan(
            hosts=shlex.join(invocation.targets.nmap_arguments()),
            arguments=shlex.join(invocation.options),
            timeout=invocation.timeout_s,
        )
    except nmap.PortScannerTimeout:
        raise ProbeTimeout(f"nmap {invocation.label} of {invocation.targets}", invocation.timeout_s) from None
    except nmap.PortScannerError as error:
        written = scanner.get_nmap_last_output()
        if not isinstance(written, bytes) or b"</nmaprun>" not in written:  # nmap stopped: say why
            raise ProbeError(f"nmap {invocation.label} failed: {_first_line(error.value)}") from None
        # Otherwise nmap finished its XML (maybe with an error inside): our parser decides.
    except OSError as error:
        raise ProbeError(f"nmap {invocation.label} could not start: {error.strerror or error}") from None
    except Exception:  # noqa: S110 -- python-nmap's own dict builder may trip on XML ours reads fine
        pass
    output = scanner.get_nmap_last_output()
    return output if isinstance(output, bytes) else str(output).encode()


def _limit() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    with _limits_lock:
        semaphore = _limits.get(loop)
        if semaphore is None:
            semaphore = _limits[loop] = asyncio.Semaphore(MAX_CONCURRENT_NMAP)
        return semaphore


async def run_nmap(
    builds: Sequence[Callable[[float], NmapInvocation]], *, deadline: float, topic: str
) -> tuple[NmapRun, ...]:
    """Run each invocation (built with the seconds left when its turn comes) and parse its XML.

    ``deadline`` is a ``time.monotonic()`` value. The first failure is raised; runs already under way
    finish by their own deadline.
    """

    async def one(build: Callable[[float], NmapInvocation]) -> NmapRun:
        async with _limit():
            remaining = deadline - time.monotonic()
            if remaining <= 0.5:
                raise ProbeTimeout(f"{topic} (its deadline passed before nmap could start)", 0.0)
            invocation = build(remaining)
            try:
                data = await asyncio.wait_for(
                    asyncio.to_thread(run_nmap_blocking, invocation, topic=topic),
                    timeout=invocation.timeout_s + _KILL_GRACE_S,
                )
            except TimeoutError:
                raise ProbeTimeout(f"nmap {invocation.label}", invocation.timeout_s) from None
        scan = parse_nmap_xml(data)
        if scan.runstats.exit != "success":
            raise ProbeError(f"nmap {invocation.label} failed: {_first_line(scan.runstats.errormsg)}")
        return NmapRun(invocation.label, scan)

    return tuple(await asyncio.gather(*(one(build) for build in builds)))
