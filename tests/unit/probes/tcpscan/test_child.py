"""A scan engine in a child process (``probes/tcpscan/child.py``), through the bridge (``scan_async``).

The stand-in engines here say in each host's name which process scanned it, so a test sees where
the engine ran; the real connect engine scans 127.0.0.1 ports this test opened.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ProbeError, ProbeTimeout
from midprobe.probes.targets import Target, parse_targets
from midprobe.probes.tcpscan.child import ChildScan, separable
from midprobe.probes.tcpscan.common import HostScan, ScanEngine, ScanOptions, StopFlag
from midprobe.probes.tcpscan.connect import ConnectScanner
from midprobe.probes.tcpscan.engine import scan_async

ROOT = Path(__file__).resolve().parents[4]


def _host(target: Target) -> HostScan:
    """A host scanned by this process (its name is the pid)."""
    return HostScan(
        address=target.address,
        host_name=str(os.getpid()),
        open_ports=(22,),
        refused_ports=(),
        unanswered=0,
        unreachable=False,
        engine="pid",
    )


class PidEngine:
    """Every target has port 22 open; after ``then`` hosts it does what ``then`` says."""

    name = "pid"
    separable = True

    def __init__(self, then: str = "", after: int = 0) -> None:
        self.then = then
        self.after = after

    def scan(
        self,
        targets: Iterable[Target],
        ports: Sequence[int],
        options: ScanOptions,
        *,
        stop: StopFlag | None = None,
    ) -> Generator[HostScan, None, None]:
        for index, target in enumerate(targets):
            if index == self.after and self.then:
                self._then()
            yield _host(target)

    def _then(self) -> None:
        if self.then == "timeout":
            raise ProbeTimeout("the port scan", 2.5, hint="the deadline")
        if self.then == "foreign":
            raise _Unpicklable(lambda: None)
        if self.then == "killed":
            os.kill(os.getpid(), signal.SIGKILL)


class _Unpicklable(Exception):
    """An error no pickle carries (it holds a function made at run time)."""


class ThreadEngine(PidEngine):
    separable = False


def _scan(engine: ScanEngine, targets: str, *, take: int | None = None) -> list[HostScan]:
    async def run() -> list[HostScan]:
        found: list[HostScan] = []
        hosts = scan_async(parse_targets(targets), (22,), engine=engine)
        try:
            async for host in hosts:
                found.append(host)
                if take is not None and len(found) == take:
                    break
        finally:
            await hosts.aclose()
        return found

    return asyncio.run(run())


def _gone(pid: int) -> bool:
    """The process is reaped, or a zombie nobody reaps (its parent died in a container without init)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_a_separable_engine_scans_in_a_child_process_and_every_host_arrives_in_order() -> None:
    hosts = _scan(PidEngine(), "198.18.0.0/26")
    assert [str(h.address) for h in hosts] == [f"198.18.0.{n}" for n in range(64)]
    scanned_by = {h.host_name for h in hosts}
    assert len(scanned_by) == 1
    assert scanned_by != {str(os.getpid())}
    child = int(str(scanned_by.pop()))
    assert _gone(child)
    with pytest.raises(ChildProcessError):  # already reaped: no zombie left behind
        os.waitpid(child, os.WNOHANG)


def test_an_engine_that_is_not_separable_scans_on_the_thread() -> None:
    assert {h.host_name for h in _scan(ThreadEngine(), "198.18.0.0/30")} == {str(os.getpid())}


def test_the_child_s_error_is_raised_as_it_was_after_the_hosts_before_it() -> None:
    found: list[HostScan] = []

    async def run() -> None:
        async for host in scan_async(parse_targets("198.18.0.0/28"), (22,), engine=PidEngine("timeout", 3)):
            found.append(host)

    with pytest.raises(ProbeTimeout) as raised:
        asyncio.run(run())
    assert len(found) == 3
    assert raised.value.timeout == 2.5
    assert raised.value.hint == "the deadline"
    assert str(raised.value) == "the port scan timed out after 2.5 s (the deadline)"


def test_an_error_no_pickle_carries_arrives_as_a_probe_error_naming_it() -> None:
    with pytest.raises(ProbeError, match="the port scan's engine failed: _Unpicklable"):
        _scan(PidEngine("foreign", 1), "198.18.0.0/28")


def test_a_child_killed_by_something_else_is_an_error_not_a_short_scan() -> None:
    with pytest.raises(ProbeError, match="engine process ended before the scan did"):
        _scan(PidEngine("killed", 2), "198.18.0.0/28")


def test_leaving_early_kills_the_child_and_reaps_it() -> None:
    # A /15: the child would go on for long; the pipe and the queue hold it back meanwhile.
    hosts = _scan(PidEngine(), "198.18.0.0/15", take=3)
    assert len(hosts) == 3
    child = int(str(hosts[0].host_name))
    assert _gone(child)
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)


def test_a_scan_ended_before_it_began_forks_nothing() -> None:
    child = ChildScan(PidEngine(), parse_targets("198.18.0.0/28"), (22,), ScanOptions())
    child.end()
    assert list(child.hosts()) == []


def test_a_process_that_cannot_fork_scans_on_its_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", refused)
    assert {h.host_name for h in _scan(PidEngine(), "198.18.0.0/30")} == {str(os.getpid())}


def test_the_child_dies_with_the_process_that_forked_it(tmp_path: Path) -> None:
    # A scan of a /15, held back by a consumer that never reads on, in a process killed mid-scan.
    script = tmp_path / "scan.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio, sys
            sys.path.insert(0, {str(ROOT)!r})
            from tests.unit.probes.tcpscan.test_child import PidEngine
            from midprobe.probes.targets import parse_targets
            from midprobe.probes.tcpscan.engine import scan_async

            async def main():
                async for host in scan_async(parse_targets("198.18.0.0/15"), (22,), engine=PidEngine(), queue_size=1):
                    print(host.host_name, flush=True)
                    await asyncio.Event().wait()

            asyncio.run(main())
            """
        )
    )
    child = 0
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            child = int(process.stdout.readline())
            assert not _gone(child)
            process.kill()
            process.wait(timeout=10)
            deadline = time.monotonic() + 10
            while not _gone(child) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert _gone(child), "the scan's child outlived the process that forked it"
        finally:
            process.kill()
            if child and not _gone(child):
                os.kill(child, signal.SIGKILL)


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    """An open port and a closed one on 127.0.0.1, both this test's."""
    with socket.socket() as listener, socket.socket() as closed:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connects to it are refused
        yield int(listener.getsockname()[1]), int(closed.getsockname()[1])


def test_the_connect_engine_finds_the_same_ports_in_a_child_as_on_the_thread(ports: tuple[int, int]) -> None:
    open_port, closed_port = ports
    options = ScanOptions(connect_wait=1.0, retries=0)

    async def run(engine: ConnectScanner) -> list[HostScan]:
        return [
            host
            async for host in scan_async(
                parse_targets("127.0.0.1"), (open_port, closed_port), options, engine=engine
            )
        ]

    apart = ConnectScanner()
    on_thread = ConnectScanner(open_socket=lambda family, kind: socket.socket(family, kind))
    assert separable(apart)
    assert not separable(on_thread)
    (in_child,) = asyncio.run(run(apart))
    (threaded,) = asyncio.run(run(on_thread))
    assert in_child.open_ports == threaded.open_ports == (open_port,)
    assert in_child.refused_ports == threaded.refused_ports == (closed_port,)
