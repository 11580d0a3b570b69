"""The lifecycle endpoints through the HTTPS queue, the way ``midprobe mid`` and a MID call them:
an admin validates, pauses and pins; a mid_server user may not; a MID gets credentials only sealed
to its key, from the instance's own credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError, QueueError
from midprobe.probes.credentials.sealing import MidKeyPair, open_credentials
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.instance.agent_api import WireLog
from midprobe.runner.instance.api import create_app
from midprobe.runner.instance.auth import UserStore
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.lifecycle import SETTING_AUTO_VALIDATE
from tests.instance.conftest import ADMIN, MID, AsgiBridge, bridged_client

SECRET = "instance-held-Pa55-0c1d"
DOCUMENT = {"credential": [{"id": "ops", "type": "snmp", "community": SECRET}]}


@pytest.fixture
def wire(tmp_path: Path) -> WireLog:
    return WireLog(tmp_path / "wire.log")


@pytest.fixture
def bridge(queue: EccQueue, users: UserStore, wire: WireLog) -> AsgiBridge:
    queue.set_setting(SETTING_AUTO_VALIDATE, "false")  # as an instance starts: no agent trusted
    return AsgiBridge(create_app(queue, users, credentials=DOCUMENT, wire_log=wire))


def test_a_mid_over_https_works_only_once_an_admin_validated_it(bridge: AsgiBridge, queue: EccQueue) -> None:
    keys = MidKeyPair.generate()
    mid, admin = bridged_client(bridge, MID), bridged_client(bridge, ADMIN)
    mid.register_agent(AgentRegistration("mid1", public_key=keys.public_key, validated=True))
    queue.enqueue(new_output_record(agent="mid1", topic="HeartbeatProbe"))
    assert mid.claim("mid1", 5, 30.0) == []
    assert mid.get_sealed_credentials("mid1") is None
    with pytest.raises(QueueError, match="may not do this"):
        mid.update_agent("mid1", validated=True)  # a MID cannot validate itself

    changed = admin.update_agent("mid1", validated=True)
    assert changed.validated
    assert len(mid.claim("mid1", 5, 30.0)) == 1
    admin.update_agent("mid1", admin_state="paused")
    queue.enqueue(new_output_record(agent="mid1", topic="HeartbeatProbe"))
    assert mid.claim("mid1", 5, 30.0) == []
    admin.update_agent("mid1", admin_state="")
    assert len(mid.claim("mid1", 5, 30.0)) == 1
    with pytest.raises(ConfigError, match="No Record found"):
        admin.update_agent("nobody", validated=True)
    with pytest.raises(ConfigError):
        admin.update_agent("mid1", admin_state="asleep")  # type: ignore[arg-type]


def test_the_instance_seals_its_credentials_to_the_asking_mid_only(
    bridge: AsgiBridge, queue: EccQueue, wire: WireLog
) -> None:
    keys = MidKeyPair.generate()
    mid, admin = bridged_client(bridge, MID), bridged_client(bridge, ADMIN)
    mid.register_agent(AgentRegistration("mid1", public_key=keys.public_key))
    admin.update_agent("mid1", validated=True)
    sealed = mid.get_sealed_credentials("mid1")
    assert sealed is not None
    assert open_credentials(sealed, keys).credentials[0].id == "ops"
    assert SECRET not in wire.path.read_text()
    assert sealed in wire.path.read_text()  # what crossed the wire is the sealed text
    admin.update_agent("mid1", validated=False)
    assert mid.get_sealed_credentials("mid1") is None


def test_issues_over_https(bridge: AsgiBridge) -> None:
    mid, admin = bridged_client(bridge, MID), bridged_client(bridge, ADMIN)
    mid.register_agent(AgentRegistration("mid1"))
    raised = mid.raise_issue("mid1", "nmap_missing", "nmap was not found")
    assert [issue.sys_id for issue in admin.list_issues("mid1")] == [raised.sys_id]
    with pytest.raises(QueueError, match="may not do this"):
        mid.set_issue_state(raised.sys_id, "Resolved")
    assert admin.set_issue_state(raised.sys_id, "Acknowledged").state == "Acknowledged"
    assert mid.clear_issue("mid1", "nmap_missing")
    assert admin.list_issues() == []
    assert [issue.state for issue in admin.list_issues(include_resolved=True)] == ["Resolved"]
    with pytest.raises(ConfigError, match="No Record found"):
        admin.set_issue_state("0" * 32, "Resolved")
