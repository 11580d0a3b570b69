"""A discovery through the queue with two agents of different IP ranges and capabilities (one without Nmap).

Every output must go to a MID that selection allows for it; every answering host ends as one CI;
a second run with more credentials updates the same CIs and records what changed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from midprobe.runner.cmdb import open_cmdb
from midprobe.runner.lab import Lab
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.lab.test_discovery_lab import _credentials
from tests.support.trust import trust_every_agent

pytestmark = pytest.mark.lab

CAPABILITIES = """
[[capability]]
name = "SSH"
[[capability]]
name = "SNMP"

# Scans the whole lab; no nmap on this one.
[[mid_server]]
name = "east"
status = "Up"
validated = true
applications = ["Discovery"]
ip_ranges = ["198.18.0.0/24"]
capabilities = [{ name = "SSH" }, { name = "SNMP" }]

# Only the first 32 addresses, with nmap.
[[mid_server]]
name = "west"
status = "Up"
validated = true
applications = ["Discovery"]
ip_ranges = ["198.18.0.0/27"]
capabilities = [{ name = "SSH" }, { name = "SNMP" }]
"""

ALLOWED = {"east": ipaddress.ip_network("198.18.0.0/24"), "west": ipaddress.ip_network("198.18.0.0/27")}


def _start_agent(
    lab: Lab, name: str, url: str, workdir: Path, *, nmap: bool, extra: tuple[str, ...] = ()
) -> subprocess.Popen[str]:
    env = {**os.environ, "MIDPROBE_NMAP": "nmap" if nmap else str(workdir / "no-nmap-here")}
    argv = ["ip", "netns", "exec", lab.scanner_namespace, sys.executable, "-m", "midprobe.runner", "agent"]
    argv += ["--name", name, "--queue", url, "--lab", "--capabilities", str(workdir / "caps.toml")]
    argv += ["--credentials", str(workdir / "creds.toml"), "--poll-idle", "0.5", "--poll-busy", "0.5"]
    argv += ["--log-level", "warning", "--state", str(workdir / f"state-{name}"), *extra]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def agents(lab: Lab, tmp_path: Path) -> Iterator[str]:
    (tmp_path / "caps.toml").write_text(CAPABILITIES, encoding="utf-8")
    _credentials(lab, tmp_path / "creds.toml")
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    with open_queue(url):
        pass  # create the database before two agents race to
    processes = [
        _start_agent(lab, "east", url, tmp_path, nmap=False),
        _start_agent(lab, "west", url, tmp_path, nmap=True),
    ]
    try:
        with open_queue(url) as queue:
            for name in ("east", "west"):
                deadline = 200
                while queue.get_agent(name) is None and deadline:
                    for process in processes:
                        if process.poll() is not None:
                            pytest.fail(f"an agent exited: {process.communicate()[1][-1000:]}")
                    queue.wait_for_work("mid.server.nobody", 0.1)
                    deadline -= 1
                assert queue.get_agent(name) is not None, f"agent {name} did not register"
        yield url
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.communicate(timeout=60)


@contextmanager
def _ssh_refused(namespace: str) -> Iterator[None]:
    """Refuse TCP port 22 inside one lab host's namespace (nftables), and lift it afterwards."""
    table = "midprobe_test_block"
    rules = f"table inet {table} {{\n chain input {{\n  type filter hook input priority 0;\n  tcp dport 22 reject with tcp reset\n }}\n}}\n"
    subprocess.run(["ip", "netns", "exec", namespace, "nft", "-f", "-"], input=rules, text=True, check=True)
    try:
        yield
    finally:
        subprocess.run(
            ["ip", "netns", "exec", namespace, "nft", "delete", "table", "inet", table], check=True
        )


def _discover(lab: Lab, schedule: Path, url: str) -> str:
    done = lab.run(
        [sys.executable, "-m", "midprobe.runner", "discover", "run", str(schedule), "--queue", url],
        timeout=180,
    )
    assert "Completed" in done.stderr, done.stderr
    return done.stdout.split()[0]


def test_two_agents_each_get_only_what_selection_allows(lab: Lab, tmp_path: Path, agents: str) -> None:
    url = agents
    (tmp_path / "snmp-only.toml").write_text(
        "\n".join(
            line
            for line in (tmp_path / "creds.toml").read_text(encoding="utf-8").split("\n\n")
            if "snmpv3" in line
        ),
        encoding="utf-8",
    )
    schedule = tmp_path / "lab.toml"
    schedule.write_text(
        f'name = "two agents"\nranges = ["{lab.network}"]\nports = "22,80,161,9100"\n', encoding="utf-8"
    )
    status_id = _discover(lab, schedule, url)

    with open_queue(url) as queue:
        outputs = [
            r for r in queue.list(queue_side="output", limit=10_000) if r.agent_correlator == status_id
        ]
    by_topic: dict[str, set[str]] = {}
    for record in outputs:
        mid = record.agent.removeprefix("mid.server.")
        by_topic.setdefault(record.topic, set()).add(mid)
        for token in record.source.split():
            network = ipaddress.ip_network(token, strict=False)
            assert network.subnet_of(ALLOWED[mid]), (record.topic, record.source, mid)  # type: ignore[arg-type]
    assert by_topic["Shazzam"] == {"east"}  # only east's ranges hold the whole /24
    assert by_topic["NmapHostScan"] == {"west"}  # only west has nmap
    with open_cmdb(url) as cmdb:
        cis = {ci.ip_address: ci for ci in cmdb.list_cis()}
    for host, ci_class in (
        ("linux1", "cmdb_ci_linux_server"),
        ("switch1", "cmdb_ci_ip_switch"),
        ("printer1", "cmdb_ci_printer"),
    ):
        assert cis[lab.host(host).address].sys_class_name == ci_class
    assert lab.host("silent1").address not in cis
    linux = cis[lab.host("linux1").address]

    # Between the runs linux1 stops answering SSH (as a hardened host would): it is classified over
    # SNMP instead, identified as the same CI by name and address, and what SNMP says is recorded.
    with _ssh_refused(lab.host("linux1").namespace):
        again = _discover(lab, schedule, url)
    with open_cmdb(url) as cmdb:
        after = {ci.ip_address: ci for ci in cmdb.list_cis()}
        assert sorted(ci.sys_id for ci in after.values()) == sorted(ci.sys_id for ci in cis.values())
        assert {ci.last_discovery for ci in after.values()} == {again}
        history = cmdb.history(linux.sys_id)
    assert history
    assert all(change.discovery == again for change in history)
    changed = {change.field_name: change for change in history}
    assert changed["sys_object_id"].old_value is None
    assert changed["sys_object_id"].new_value == lab.host("linux1").sys_object_id
    assert after[linux.ip_address].attributes["os"] == linux.attributes["os"]  # kept, never blanked
    status = json.loads(
        lab.run(
            [sys.executable, "-m", "midprobe.runner", "discover", "status", again, "--queue", url, "--json"]
        ).stdout
    )
    assert status["state"] == "Completed"
