"""The MID lifecycle in the queue, on SQLite and PostgreSQL: validation, pause and drain, versions,
keys and sealed credentials, issues. These queues trust no agent (no ``auto_validate``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError, CredentialError, QueueError
from midprobe.probes.credentials.sealing import MidKeyPair, open_credentials
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.instance.credentials import deliver_credentials
from midprobe.runner.queue import EccQueue, open_queue
from midprobe.runner.queue.base import AgentRegistration
from midprobe.runner.queue.lifecycle import ISSUE_VERSION, SETTING_ACCEPTED_MAJOR
from midprobe.runner.queue.url import sqlite_url

SECRET = "lifecycle-s3cret-Pa55"
DOCUMENT = {
    "credential": [{"id": "ops", "type": "ssh_password", "user": "ops", "password": SECRET, "order": 1}]
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def strict_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh queue as an instance makes it: no agent is trusted until validated."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "ecc.db")
    return str(request.getfixturevalue("postgres_database_url"))


@pytest.fixture
def queue(strict_url: str) -> Iterator[EccQueue]:
    with open_queue(strict_url) as opened:
        yield opened


def _work(queue: EccQueue, agent: str) -> str:
    return queue.enqueue(new_output_record(agent=agent, topic="HeartbeatProbe"))


def test_a_new_mid_is_up_but_not_validated_and_claims_nothing_until_validated(queue: EccQueue) -> None:
    keys = MidKeyPair.generate()
    queue.register_agent(AgentRegistration("m1", public_key=keys.public_key, validated=True))
    output = _work(queue, "m1")
    registered = queue.get_agent("m1")
    assert registered is not None
    assert (registered.status, registered.validated) == ("Up", False)  # its own "validated" is ignored
    assert queue.claim("m1", 5, 30.0) == []
    assert queue.list(queue_side="input") == []  # not even a queue.processing record
    assert queue.claim("never-registered", 5, 30.0) == []

    queue.update_agent("m1", validated=True)
    assert [record.sys_id for record in queue.claim("m1", 5, 30.0)] == [output]

    queue.register_agent(AgentRegistration("m1", public_key=keys.public_key))  # a restart keeps it
    _work(queue, "m1")
    assert len(queue.claim("m1", 5, 30.0)) == 1


def test_paused_and_draining_mids_claim_nothing_and_resume_claims_again(queue: EccQueue) -> None:
    queue.register_agent(AgentRegistration("m1"))
    queue.update_agent("m1", validated=True)
    output = _work(queue, "m1")
    queue.update_agent("m1", admin_state="paused")
    assert queue.claim("m1", 5, 30.0) == []
    queue.update_agent("m1", admin_state="draining")
    assert queue.claim("m1", 5, 30.0) == []
    broadcast = queue.enqueue(new_output_record(agent="*", topic="HeartbeatProbe"))
    assert queue.claim("m1", 5, 30.0) == []
    queue.update_agent("m1", admin_state="")
    (copy,) = queue.copies_of(broadcast)  # a paused or draining MID gets its copy of mid.server.* work
    assert sorted(record.sys_id for record in queue.claim("m1", 5, 30.0)) == sorted([output, copy.sys_id])


def test_a_mid_of_another_major_version_is_refused_work_and_an_issue_says_why(queue: EccQueue) -> None:
    accepted = queue.get_setting(SETTING_ACCEPTED_MAJOR)
    other = f"{int(accepted) + 1}.0.0"
    queue.register_agent(AgentRegistration("old", version=other))
    queue.update_agent("old", validated=True)
    _work(queue, "old")
    assert queue.claim("old", 5, 30.0) == []
    (issue,) = queue.list_issues("old")
    assert (issue.kind, issue.source, issue.state) == (ISSUE_VERSION, "instance", "New")
    assert other in issue.message

    # Registered again at an accepted version (an upgrade), it works and the issue is resolved.
    queue.register_agent(AgentRegistration("old", version=f"{accepted}.9.9"))
    assert len(queue.claim("old", 5, 30.0)) == 1
    assert queue.list_issues("old") == []
    assert [issue.state for issue in queue.list_issues("old", include_resolved=True)] == ["Resolved"]


def test_a_pinned_mid_works_only_at_its_pinned_version(queue: EccQueue) -> None:
    accepted = queue.get_setting(SETTING_ACCEPTED_MAJOR)
    queue.register_agent(AgentRegistration("pin", version=f"{accepted}.1.0"))
    queue.update_agent("pin", validated=True, pinned_version=f"{accepted}.2.0")
    _work(queue, "pin")
    assert queue.claim("pin", 5, 30.0) == []
    assert [issue.kind for issue in queue.list_issues("pin")] == [ISSUE_VERSION]
    queue.update_agent("pin", pinned_version=f"{accepted}.1.0")
    assert len(queue.claim("pin", 5, 30.0)) == 1
    assert queue.list_issues("pin") == []
    with pytest.raises(ConfigError):
        queue.update_agent("pin", pinned_version="latest")


def test_credentials_are_sealed_only_to_validated_mids_and_a_rekey_drops_them(queue: EccQueue) -> None:
    keys = MidKeyPair.generate()
    queue.register_agent(AgentRegistration("m1", public_key=keys.public_key))
    assert deliver_credentials(queue, DOCUMENT) == []  # not validated: nothing sealed
    assert queue.get_sealed_credentials("m1") is None

    queue.update_agent("m1", validated=True)
    assert deliver_credentials(queue, DOCUMENT) == ["mid.server.m1"]
    sealed = queue.get_sealed_credentials("m1")
    assert sealed is not None
    assert SECRET not in sealed
    (credential,) = open_credentials(sealed, keys).credentials
    assert credential.id == "ops"
    assert credential.password.reveal() == SECRET  # type: ignore[union-attr]
    with pytest.raises(CredentialError):
        open_credentials(sealed, MidKeyPair.generate())  # sealed to m1's key, no other

    # Rekey: asked for, then the MID registers a new key; what was sealed to the old key is gone.
    queue.update_agent("m1", rekey=True)
    asked = queue.get_agent("m1")
    assert asked is not None
    assert asked.rekey_requested
    assert queue.get_sealed_credentials("m1") is None
    new_keys = MidKeyPair.generate()
    queue.register_agent(AgentRegistration("m1", public_key=new_keys.public_key))
    rekeyed = queue.get_agent("m1")
    assert rekeyed is not None
    assert (rekeyed.validated, rekeyed.rekey_requested) == (True, False)  # the new key is trusted at once
    assert not queue.store_sealed_credentials("m1", keys.public_key, sealed)  # not to the old key
    deliver_credentials(queue, DOCUMENT)
    resealed = queue.get_sealed_credentials("m1")
    assert resealed is not None
    assert open_credentials(resealed, new_keys).credentials[0].id == "ops"
    with pytest.raises(CredentialError):
        open_credentials(resealed, keys)

    # Invalidate: no credentials, and a new key pair asked for.
    queue.update_agent("m1", validated=False)
    assert queue.get_sealed_credentials("m1") is None
    invalid = queue.get_agent("m1")
    assert invalid is not None
    assert invalid.rekey_requested


def test_issues_are_raised_counted_acknowledged_and_resolved(queue: EccQueue) -> None:
    queue.register_agent(AgentRegistration("m1"))
    first = queue.raise_issue("m1", "nmap_missing", "nmap was not found")
    again = queue.raise_issue("m1", "nmap_missing", "nmap is still not found")
    assert again.sys_id == first.sys_id
    assert (again.count, again.message, again.state) == (2, "nmap is still not found", "New")
    assert queue.set_issue_state(first.sys_id, "Acknowledged").state == "Acknowledged"
    assert queue.clear_issue("m1", "nmap_missing")
    assert queue.list_issues() == []
    assert queue.set_issue_state(first.sys_id, "Resolved").state == "Resolved"
    with pytest.raises(ConfigError):
        queue.set_issue_state(first.sys_id, "Acknowledged")
    # Raised again after it was resolved: a new issue.
    assert queue.raise_issue("m1", "nmap_missing", "gone again").sys_id != first.sys_id
    with pytest.raises(QueueError):
        queue.set_issue_state("0" * 32, "Resolved")
    with pytest.raises(QueueError):
        queue.update_agent("nobody", validated=True)


def test_auto_validate_trusts_every_agent_but_not_an_invalidated_one(queue: EccQueue) -> None:
    queue.set_setting("auto_validate", "true")
    queue.register_agent(AgentRegistration("m1"))
    _work(queue, "m1")
    found = queue.get_agent("m1")
    assert found is not None
    assert found.validated
    queue.update_agent("m1", validated=False)
    assert queue.claim("m1", 5, 30.0) == []
    with pytest.raises(ConfigError):
        queue.set_setting("auto_validate", "maybe")
