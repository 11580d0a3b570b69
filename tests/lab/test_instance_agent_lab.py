"""Agents on an ``https://`` queue: ``midprobe instance serve`` on a lab address, ``midprobe agent`` processes
talking to it from the lab, and the result spool carrying results across an instance killed mid-run.

Everything runs inside the lab's scanner namespace (the instance on 198.18.0.1, the agents beside it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.instance.auth import open_users
from midprobe.runner.lab import Lab, NamespaceThread
from midprobe.runner.queue.spool import ResultSpool
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.lab.instance_support import serve_instance
from tests.support.trust import trust_every_agent

pytestmark = pytest.mark.lab

PASSWORD = "lab-agent-password-5c1e"
RUNNER = [sys.executable, "-m", "midprobe.runner"]


def _in_lab(lab: Lab, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", lab.scanner_namespace, *argv]


def _agent(
    lab: Lab, name: str, base: str, ca: Path | None, spool: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    argv = [*RUNNER, "agent", "--name", name, "--queue", base, "--user", "mid", "--once", "--lab"]
    argv += ["--poll-busy", "0.2", "--spool", str(spool), "--state", str(spool.parent / f"state-{name}")]
    argv += ["--ca", str(ca)] if ca is not None else []
    env = {**os.environ, "MIDPROBE_INSTANCE_PASSWORD": PASSWORD, **(env or {})}
    return subprocess.Popen(
        _in_lab(lab, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=60)[1]


def _results(url: str, outputs: list[EccRecord]) -> dict[str, list[EccRecord]]:
    with open_queue(url) as queue:
        return {o.sys_id: queue.list(queue_side="input", response_to=o.sys_id) for o in outputs}


@pytest.fixture
def instance_queue(tmp_path: Path) -> str:
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    with open_users(url) as users:
        users.add("mid", PASSWORD, ("mid_server",))
    return url


def test_two_agents_run_heartbeats_and_shazzam_through_the_instance(
    lab: Lab, instance_queue: str, tmp_path: Path
) -> None:
    target = lab.host("linux1")
    outputs = [new_output_record(agent=f"mid{n}", topic="HeartbeatProbe") for n in (1, 2, 1, 2)]
    outputs += [
        new_output_record(
            agent=f"mid{n}", topic="Shazzam", source=target.address, parameters=[("ports", "22")]
        )
        for n in (1, 2)
    ]
    with open_queue(instance_queue) as queue:
        queue.enqueue_many(outputs)

    instance, base, ca = serve_instance(lab, instance_queue, "198.18.0.1:0")
    try:
        agents = [_agent(lab, f"mid{n}", base, ca, tmp_path / f"spool{n}") for n in (1, 2)]
        finished = [agent.communicate(timeout=100) for agent in agents]
        # Without the instance's CA the agent does not trust it, and says so in one line.
        untrusting = _agent(lab, "mid3", base, None, tmp_path / "spool3")
        _, untrusted = untrusting.communicate(timeout=100)
    finally:
        instance_errors = _stop(instance)

    for agent, (stdout, stderr) in zip(agents, finished, strict=True):
        assert agent.returncode == 0, stderr
        assert json.loads(stdout)["answered"] == 3
        assert PASSWORD not in stderr
    assert untrusting.returncode == 2
    assert untrusted.strip().endswith(
        "the instance's certificate is not trusted (give --ca with the instance's CA file)"
    )
    assert untrusted.count("\n") == 1
    assert PASSWORD not in instance_errors
    results = _results(instance_queue, outputs)
    assert all(len(found) == 1 for found in results.values()), results
    shazzam = [results[o.sys_id][0] for o in outputs if o.topic == "Shazzam"]
    assert all(not result.error_string and target.address in result.payload for result in shazzam)


@pytest.mark.timeout(300)
def test_the_spool_delivers_each_result_once_across_an_instance_killed_mid_run(
    lab: Lab, instance_queue: str, tmp_path: Path
) -> None:
    silent = lab.host("silent1")
    # A scan of a host that drops every packet runs for its whole connect wait: long enough to
    # kill the instance after the claim and before these results are sent.
    outputs = [
        new_output_record(
            agent="mid1",
            topic="Shazzam",
            source=silent.address,
            parameters=[("ports", "22,80"), ("connect_wait", "5000"), ("retries", "0")],
        )
        for _ in range(2)
    ]
    with open_queue(instance_queue) as queue:
        queue.enqueue_many(outputs)
    spool = tmp_path / "spool"

    instance, base, ca = serve_instance(lab, instance_queue, "198.18.0.1:0")
    agent = _agent(lab, "mid1", base, ca, spool)
    restarted: subprocess.Popen[str] | None = None
    try:
        assert agent.stderr is not None
        gave_up = 0
        lines: list[str] = []
        deadline = time.monotonic() + 200
        for line in agent.stderr:
            lines.append(line)
            event = json.loads(line).get("event", "") if line.startswith("{") else ""
            if event == "claimed" and instance.poll() is None:
                instance.send_signal(signal.SIGKILL)
                instance.communicate(timeout=30)
            if event == "could not write result":
                gave_up += 1
                if gave_up == 2:  # both scans ended with the instance gone: their results are spooled
                    break
            assert time.monotonic() < deadline, "".join(lines[-20:])
        assert len(ResultSpool(spool).pending()) == 2
        restarted, _, _ = serve_instance(lab, instance_queue, base.removeprefix("https://"))
        _stdout, stderr = agent.communicate(timeout=150)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.communicate(timeout=30)  # closes its pipes too
        if instance.poll() is None:
            instance.kill()
            instance.communicate(timeout=30)
        if restarted is not None:
            _stop(restarted)

    assert agent.returncode == 0, "".join(lines) + stderr
    assert PASSWORD not in "".join(lines) + stderr
    assert list(spool.iterdir()) == []
    results = _results(instance_queue, outputs)
    assert all(len(found) == 1 for found in results.values()), results
    with open_queue(instance_queue) as queue:
        states = [queue.get(o.sys_id) for o in outputs]
    assert all(record is not None and record.state in ("processed", "error") for record in states)


class ConnectProxy:
    """A small HTTP CONNECT proxy on 127.0.0.1 inside the lab namespace; remembers every tunnel asked for.

    Both its listening socket and its upstream connections are made on the namespace's thread,
    so nothing it opens belongs to the root namespace.
    """

    def __init__(self, thread: NamespaceThread) -> None:
        self._thread = thread
        self._listener = thread.call(lambda: socket.create_server(("127.0.0.1", 0)))
        self.port = self._listener.getsockname()[1]
        self.tunnels: list[str] = []
        self._workers: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # the listener was closed: the proxy stops
            while True:
                client, _ = self._listener.accept()
                worker = threading.Thread(target=self._tunnel, args=(client,), daemon=True)
                self._workers.append(worker)
                worker.start()

    def _tunnel(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 8192:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target, _ = head.split(b"\r\n", 1)[0].decode("ascii").split(" ", 2)
            self.tunnels.append(f"{method} {target}")
            host, _, port = target.rpartition(":")
            upstream = self._thread.call(lambda: socket.create_connection((host, int(port)), timeout=30))
            with upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
                back.start()
                _pipe(client, upstream)
                back.join(60)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (close alone does not)
        self._listener.close()
        self._accepting.join(30)
        for worker in self._workers:
            worker.join(30)


def _pipe(source: socket.socket, destination: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            destination.sendall(chunk)
    with contextlib.suppress(OSError):
        destination.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxy(lab_thread: NamespaceThread) -> Iterator[ConnectProxy]:
    running = ConnectProxy(lab_thread)
    try:
        yield running
    finally:
        running.close()


def test_an_agent_reaches_the_instance_through_the_proxy_its_environment_names(
    lab: Lab, instance_queue: str, tmp_path: Path, proxy: ConnectProxy
) -> None:
    output = new_output_record(agent="mid1", topic="HeartbeatProbe")
    with open_queue(instance_queue) as queue:
        queue.enqueue(output)
    instance, base, ca = serve_instance(lab, instance_queue, "198.18.0.1:0")
    try:
        through_proxy = {"HTTPS_PROXY": f"http://127.0.0.1:{proxy.port}", "NO_PROXY": ""}
        agent = _agent(lab, "mid1", base, ca, tmp_path / "spool", env=through_proxy)
        stdout, stderr = agent.communicate(timeout=100)
    finally:
        _stop(instance)
    assert agent.returncode == 0, stderr
    assert json.loads(stdout)["answered"] == 1
    assert set(proxy.tunnels) == {f"CONNECT {base.removeprefix('https://')}"}
    assert len(_results(instance_queue, [output])[output.sys_id]) == 1
