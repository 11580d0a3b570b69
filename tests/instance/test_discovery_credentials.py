"""A discovery's credentials reach a MID only sealed to that MID's key, and only for work it holds.

The instance is the real app over a real SQLite queue; the MID is the HTTPS queue an agent uses,
and its side (``MidLifecycle.discovery_credentials``) opens them in memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.probes.credentials.sealing import MidKeyPair, open_credentials
from midprobe.runner.agent.lifecycle import MidLifecycle
from midprobe.runner.cmdb.database import Database
from midprobe.runner.ecc.builders import new_input_record
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.instance.agent_api import WireLog
from midprobe.runner.instance.api import create_app
from midprobe.runner.instance.auth import UserStore
from midprobe.runner.instance.discoveries import DiscoveryService
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.https import HttpsQueue
from tests.instance.conftest import MID, AsgiBridge, remote_queue

PASSWORD = "discovery-only-Pa55-7f3e"
COMMUNITY = "discovery-community-91ab"
CREDENTIALS = (
    '[[credential]]\nid = "disc-ssh"\ntype = "ssh_password"\nuser = "ops"\n'
    f'password = "{PASSWORD}"\n\n'
    f'[[credential]]\nid = "disc-snmp"\ntype = "snmp"\ncommunity = "{COMMUNITY}"\n'
)
SCHEDULE = {"name": "sealed", "ranges": ["198.18.0.8/30"], "ports": "22"}


@pytest.fixture
def instance_key() -> MidKeyPair:
    return MidKeyPair.generate()


@pytest.fixture
def service(queue: EccQueue, database: Database, instance_key: MidKeyPair) -> DiscoveryService:
    return DiscoveryService(queue, database, key=instance_key)


@pytest.fixture
def wire(tmp_path: Path) -> WireLog:
    return WireLog(tmp_path / "wire.log")


@pytest.fixture
def bridge(queue: EccQueue, users: UserStore, service: DiscoveryService, wire: WireLog) -> AsgiBridge:
    return AsgiBridge(create_app(queue, users, discoveries=service, wire_log=wire))


@pytest.fixture
def mid(bridge: AsgiBridge, tmp_path: Path) -> HttpsQueue:
    return remote_queue(bridge, tmp_path / "spool", MID)


def _validated_mid(queue: EccQueue, mid: HttpsQueue, name: str = "mid1") -> MidKeyPair:
    keys = MidKeyPair.generate()
    mid.register_agent(AgentRegistration(name, public_key=keys.public_key, applications=("Discovery",)))
    queue.update_agent(name, validated=True)
    return keys


def _scan_of(queue: EccQueue, status_id: str) -> EccRecord:
    (scan,) = [r for r in queue.list(queue_side="output", limit=100) if r.agent_correlator == status_id]
    return scan


def test_the_mid_holding_a_discoverys_work_gets_its_credentials_sealed_to_its_key_only(
    queue: EccQueue, mid: HttpsQueue, service: DiscoveryService, wire: WireLog, tmp_path: Path
) -> None:
    keys = _validated_mid(queue, mid)
    status_id = service.start(SCHEDULE, credentials=CREDENTIALS)
    scan = _scan_of(queue, status_id)
    assert scan.agent == "mid.server.mid1"

    sealed = mid.get_discovery_credentials("mid1", scan.sys_id)
    assert sealed is not None
    opened = open_credentials(sealed, keys)
    assert [credential.id for credential in opened.credentials] == ["disc-ssh", "disc-snmp"]
    with pytest.raises(ConfigError, match="not sealed to this MID's key"):
        open_credentials(sealed, MidKeyPair.generate())
    with pytest.raises(ConfigError, match="holds no output"):
        mid.get_discovery_credentials("mid2", scan.sys_id)  # not its work: refused, nothing sealed

    # Nowhere in clear: not in the queue's rows, not in the database file, not on the wire.
    database_bytes = b"".join(path.read_bytes() for path in tmp_path.glob("ecc.db*"))
    wire_text = wire.path.read_text(encoding="utf-8")
    for secret in (PASSWORD, COMMUNITY):
        assert all(secret not in record.payload for record in queue.list(limit=1000))
        assert secret.encode() not in database_bytes
        assert secret not in wire_text
    assert sealed in wire_text  # what crossed the wire is the sealed text

    queue.update_agent("mid1", validated=False)  # an invalidated MID gets none
    assert mid.get_discovery_credentials("mid1", scan.sys_id) is None


def test_a_discovery_without_credentials_or_ended_gives_none(
    queue: EccQueue, mid: HttpsQueue, service: DiscoveryService
) -> None:
    _validated_mid(queue, mid)
    without = _scan_of(queue, service.start(SCHEDULE))
    assert mid.get_discovery_credentials("mid1", without.sys_id) is None

    status_id = service.start({**SCHEDULE, "name": "ends"}, credentials=CREDENTIALS)
    scan = _scan_of(queue, status_id)
    queue.complete(scan.sys_id, new_input_record(scan, agent=scan.agent, results=[], probe_time_ms=1))
    service.advance_all()
    assert service.get(status_id).done
    assert mid.get_discovery_credentials("mid1", scan.sys_id) is None  # forgotten with the discovery


def test_a_restarted_instance_opens_what_it_sealed_with_its_key_and_not_with_another(
    queue: EccQueue, database: Database, service: DiscoveryService, instance_key: MidKeyPair
) -> None:
    status_id = service.start(SCHEDULE, credentials=CREDENTIALS)
    assert DiscoveryService(queue, database, key=instance_key).credentials.get(status_id) is not None
    assert DiscoveryService(queue, database, key=MidKeyPair.generate()).credentials.get(status_id) is None


def test_the_agent_opens_a_discoverys_credentials_in_memory_once_per_discovery(
    queue: EccQueue, mid: HttpsQueue, service: DiscoveryService, bridge: AsgiBridge, tmp_path: Path
) -> None:
    keys = _validated_mid(queue, mid)
    lifecycle = MidLifecycle(keys=keys, state_dir=tmp_path / "state")
    scan = _scan_of(queue, service.start(SCHEDULE, credentials=CREDENTIALS))

    store = lifecycle.discovery_credentials(mid, "mid1", scan)
    assert store is not None
    assert {credential.id for credential in store.credentials} == {"disc-ssh", "disc-snmp"}
    asked = [path for path in bridge.requests if path.endswith("/credentials")]
    assert lifecycle.discovery_credentials(mid, "mid1", scan) is store  # kept: not asked again
    assert [path for path in bridge.requests if path.endswith("/credentials")] == asked
    assert not (tmp_path / "state").exists()  # nothing of them on the MID's disk

    other = _scan_of(queue, service.start({**SCHEDULE, "name": "plain"}))
    assert lifecycle.discovery_credentials(mid, "mid1", other) is None  # that discovery brings none
