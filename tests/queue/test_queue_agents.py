"""Agent registry and credential affinity, on both backends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from midprobe.capabilities.errors import ConfigError, QueueError
from midprobe.runner.queue import AgentRegistration, EccQueue, open_queue


@pytest.fixture
def queue(queue_url: str) -> Iterator[EccQueue]:
    with open_queue(queue_url) as opened:
        yield opened


def _registration(name: str, **changes: object) -> AgentRegistration:
    values: dict[str, object] = {
        "name": name,
        "applications": ("Discovery",),
        "ip_ranges": ("198.18.0.0/24", "198.18.1.1-198.18.1.9"),
        "excluded_ip_ranges": ("198.18.0.1",),
        "capabilities": (("SSH", ""), ("Cloud Management", "us-west"), ("Nmap", "")),
        "nmap_installed": True,
        "host": "lab-host",
        "pid": 4242,
        "started_at": datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC),
        "public_key": "a-public-key",
        "validated": True,  # this suite's queues validate every agent as it registers
    }
    values.update(changes)
    return AgentRegistration(**values)  # type: ignore[arg-type]


def test_register_and_read_back_every_field(queue: EccQueue) -> None:
    before = datetime.now(UTC)
    queue.register_agent(_registration("lab1"))
    stored = queue.get_agent("lab1")
    assert stored is not None
    assert stored.last_heartbeat is not None
    assert abs((stored.last_heartbeat - before).total_seconds()) < 5
    assert stored == _registration("mid.server.lab1", last_heartbeat=stored.last_heartbeat)
    assert stored.short_name == "lab1"
    assert queue.get_agent("mid.server.nobody") is None


def test_registering_again_replaces(queue: EccQueue) -> None:
    queue.register_agent(_registration("lab1"))
    queue.register_agent(_registration("lab1", status="Paused", capabilities=(), nmap_installed=False, pid=7))
    (only,) = queue.list_agents()
    assert (only.status, only.capabilities, only.nmap_installed, only.pid) == ("Paused", (), False, 7)


def test_heartbeat_and_liveness(queue: EccQueue) -> None:
    queue.register_agent(_registration("old"))
    queue.register_agent(_registration("fresh"))
    time.sleep(0.5)
    first = queue.get_agent("fresh")
    queue.heartbeat_agent("fresh")
    second = queue.get_agent("fresh")
    assert first is not None
    assert second is not None
    assert first.last_heartbeat is not None
    assert second.last_heartbeat is not None
    assert second.last_heartbeat > first.last_heartbeat
    assert [a.name for a in queue.list_agents()] == ["mid.server.fresh", "mid.server.old"]
    assert [a.name for a in queue.list_agents(live_within_seconds=0.4)] == ["mid.server.fresh"]
    assert [a.name for a in queue.list_agents(live_within_seconds=60)] == [
        "mid.server.fresh",
        "mid.server.old",
    ]
    with pytest.raises(QueueError, match=r"agent mid.server.ghost is not registered"):
        queue.heartbeat_agent("ghost")


def test_status_changes(queue: EccQueue) -> None:
    queue.register_agent(_registration("lab1"))
    queue.set_agent_status("mid.server.lab1", "Down")
    stored = queue.get_agent("lab1")
    assert stored is not None
    assert stored.status == "Down"
    with pytest.raises(ConfigError, match=r"^status: 'Sleeping' is not an agent status"):
        queue.set_agent_status("lab1", "Sleeping")
    with pytest.raises(QueueError, match=r"not registered"):
        queue.set_agent_status("ghost", "Up")


def test_registration_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"^agent: "):
        AgentRegistration(name="bad name")
    with pytest.raises(ConfigError, match=r"^name: an agent cannot register as mid.server.\*"):
        AgentRegistration(name="*")
    with pytest.raises(ConfigError, match=r"^status: "):
        AgentRegistration(name="lab1", status="up")
    with pytest.raises(ConfigError, match=r"^started_at: "):
        AgentRegistration(name="lab1", started_at=datetime(2024, 1, 1))


def test_credential_affinity(queue: EccQueue) -> None:
    assert queue.get_affinity("198.18.0.10", "ssh") is None
    queue.set_affinity("198.18.0.10", "ssh", "cred-a")
    queue.set_affinity("198.18.0.10", "snmp", "cred-s")
    first = queue.get_affinity("198.18.0.10", "ssh")
    assert first is not None
    assert first.credential_id == "cred-a"
    queue.set_affinity("198.18.0.10", "ssh", "cred-b")
    second = queue.get_affinity("198.18.0.10", "ssh")
    assert second is not None
    assert second.credential_id == "cred-b"
    assert second.updated_at >= first.updated_at
    snmp = queue.get_affinity("198.18.0.10", "snmp")
    assert snmp is not None
    assert snmp.credential_id == "cred-s"
    with pytest.raises(ConfigError, match=r"^credential_id: "):
        queue.set_affinity("198.18.0.10", "ssh", " ")
