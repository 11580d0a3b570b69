"""The orchestrator selects MIDs with the capabilities file's rules: the Discovery default MID."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from midprobe.capabilities.model import Application
from midprobe.capabilities.selection import SelectionPolicy
from midprobe.runner.cmdb.database import open_database
from midprobe.runner.cmdb.store import CmdbStore
from midprobe.runner.discovery.orchestrator import NoSuitableMid, Orchestrator
from midprobe.runner.discovery.schedule import Schedule
from midprobe.runner.discovery.status import StatusStore
from midprobe.runner.queue.base import AgentRegistration
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.support.trust import trust_every_agent

SCHEDULE = Schedule("t", ("198.18.0.0/28",), behaviour=("snmp",), batch_size=256)


@contextlib.contextmanager
def orchestrator(tmp_path: Path, policy: SelectionPolicy | None) -> Iterator[Orchestrator]:
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    with open_queue(url) as queue:
        database = open_database(url)
        cmdb = CmdbStore(database)
        try:
            # Neither MID holds 198.18.0.0/28 in its IP ranges.
            queue.register_agent(AgentRegistration("mid-east", ip_ranges=("198.18.1.0/24",)))
            queue.register_agent(AgentRegistration("mid-hq", ip_ranges=("198.18.2.0/24",)))
            yield Orchestrator(queue, StatusStore(database), cmdb, policy=policy)
        finally:
            cmdb.close()


def test_no_mid_for_the_range_without_a_default(tmp_path: Path) -> None:
    with orchestrator(tmp_path, None) as chosen, pytest.raises(NoSuitableMid, match=r"198\.18\.0\.1"):
        chosen.choose_mid(SCHEDULE, "Shazzam", ["198.18.0.1"])


def test_the_discovery_default_mid_takes_what_no_mid_covers(tmp_path: Path) -> None:
    policy = SelectionPolicy(applications=(Application("Discovery", default_mid_server="mid-hq"),))
    with orchestrator(tmp_path, policy) as chosen:
        assert chosen.choose_mid(SCHEDULE, "Shazzam", ["198.18.0.1", "198.18.0.2"]) == "mid-hq"


def test_a_default_for_another_application_does_not_serve_discovery(tmp_path: Path) -> None:
    policy = SelectionPolicy(applications=(Application("Orchestration", default_mid_server="mid-hq"),))
    with orchestrator(tmp_path, policy) as chosen, pytest.raises(NoSuitableMid):
        chosen.choose_mid(SCHEDULE, "Shazzam", ["198.18.0.1"])


def test_auto_spreads_the_batches_over_every_suitable_mid(tmp_path: Path) -> None:
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    with open_queue(url) as queue:
        database = open_database(url)
        cmdb = CmdbStore(database)
        try:
            for name in ("mid-a", "mid-b"):
                queue.register_agent(AgentRegistration(name, ip_ranges=("198.18.0.0/22",)))
            orchestrator = Orchestrator(queue, StatusStore(database), cmdb)
            # Four batches of 256 addresses, each of which either MID may scan.
            orchestrator.start(Schedule("t", ("198.18.0.0/22",), behaviour=("snmp",), batch_size=256))
            shazzams = [record.agent for record in queue.list(topic="Shazzam")]
        finally:
            cmdb.close()
    assert sorted(shazzams) == ["mid.server.mid-a"] * 2 + ["mid.server.mid-b"] * 2


def test_a_host_name_is_scanned_by_the_mid_whose_resolve_dns_covers_its_domain(tmp_path: Path) -> None:
    """Resolve DNS routing: each named host is a Shazzam of its own, sent to the MID that may
    resolve its domain; a name no MID covers is logged, not sent."""
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    with open_queue(url) as queue:
        database = open_database(url)
        cmdb = CmdbStore(database)
        try:
            for name, domain in (("mid-east", "sandiego.example.test"), ("mid-west", "sanjose.example.test")):
                queue.register_agent(
                    AgentRegistration(
                        name, ip_ranges=("198.18.0.0/24",), capabilities=(("Resolve DNS", domain),)
                    )
                )
            orchestrator = Orchestrator(queue, StatusStore(database), cmdb)
            names = ("linux1.sandiego.example.test", "web1.sanjose.example.test", "db1.elsewhere.test")
            status_id = orchestrator.start(Schedule("t", (*names, "198.18.0.1"), behaviour=("snmp",)))
            shazzams = {record.source: record.agent for record in queue.list(topic="Shazzam")}
            log = [e["message"] for e in orchestrator.status.device_log(status_id) if e["device"] == names[2]]
        finally:
            cmdb.close()
    assert shazzams["linux1.sandiego.example.test"] == "mid.server.mid-east"
    assert shazzams["web1.sanjose.example.test"] == "mid.server.mid-west"
    assert "198.18.0.1" in shazzams  # an address goes by the IP ranges, either MID may take it
    assert "db1.elsewhere.test" not in shazzams
    assert any(m.startswith("host db1.elsewhere.test not scanned: no MID may run Shazzam") for m in log), log
