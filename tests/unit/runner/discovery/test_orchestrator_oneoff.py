"""The orchestrator's keys and hooks a one-off discovery (``midprobe scan``) runs on, with no network.

A real SQLite queue and status store; each output is answered by hand as an agent would.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.cmdb.database import open_database
from midprobe.runner.cmdb.store import CmdbStore
from midprobe.runner.discovery.orchestrator import UNCLASSIFIED, DeviceDone, Orchestrator, Sensed
from midprobe.runner.discovery.schedule import Schedule, schedule_from_mapping, schedule_to_mapping
from midprobe.runner.discovery.status import StatusStore
from midprobe.runner.ecc.builders import new_input_record
from midprobe.runner.ecc.payload import decode_output_payload
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.sqlite import SqliteQueue
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.support.trust import trust_every_agent

HOST = "198.18.0.10"


def _parameters(record: EccRecord) -> dict[str, str]:
    payload = decode_output_payload(record.payload)
    return {p.name: p.value for p in getattr(payload, "parameters", ())}


def _ready(queue: EccQueue) -> dict[str, EccRecord]:
    return {output.topic: output for output in queue.list(queue_side="output", state="ready")}


def _answer(queue: EccQueue, output: EccRecord, results: list[ET.Element], error: str | None = None) -> None:
    record = new_input_record(output, agent="lab1", results=results, probe_time_ms=1, error=error)
    queue.complete(output.sys_id, record)


def _shazzam_result(*ports: int, alive: bool = True, incomplete: str | None = None) -> list[ET.Element]:
    result = ET.Element("result", engine="connect", hosts_scanned="1", hosts_done="1")
    host = ET.SubElement(
        result, "host", ip=HOST, alive="true" if alive else "false", active="true", hostName="", domainName=""
    )
    if incomplete is not None:
        host.set("incomplete", incomplete)
    for port in ports:
        ET.SubElement(host, "scanner", name="GenericTCP", port=str(port), protocol="tcp", result="open")
    return [result]


class _Discovery:
    """One discovery of ``schedule`` with agent lab1, whose hooks are recorded."""

    def __init__(
        self, tmp_path: Path, schedule: Schedule, *, fed: bool = False, forget: bool = False
    ) -> None:
        url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
        self.stack = contextlib.ExitStack()
        self.queue = self.stack.enter_context(open_queue(url))
        database = open_database(url)
        cmdb = CmdbStore(database)
        self.stack.callback(cmdb.close)
        self.status = StatusStore(database)
        self.queue.register_agent(AgentRegistration("lab1"))
        self.done: list[DeviceDone] = []
        self.sensed: list[Sensed] = []
        self.orchestrator = Orchestrator(
            self.queue,
            self.status,
            cmdb,
            on_device_done=self.done.append,
            on_sensed=self.sensed.append,
            forget=cast(SqliteQueue, self.queue) if forget else None,
        )
        self.status_id = self.orchestrator.start(schedule, fed=fed)

    def passes(self, count: int = 2) -> None:
        for _ in range(count):  # a pass senses and plans; the next enqueues
            self.orchestrator.advance(self.status_id)

    def log(self) -> list[str]:
        return [e["message"] for e in self.status.device_log(self.status_id) if e["device"] == HOST]


def _schedule(**keys: object) -> Schedule:
    values: dict[str, object] = {
        "name": "t",
        "ranges": (f"{HOST}/32",),
        "depth": "classification",
        "cmdb": False,
    }
    values.update(keys)
    return Schedule(**values)  # type: ignore[arg-type]


def test_classify_all_sends_every_classifier_at_once_and_the_device_is_unclassified_once(
    tmp_path: Path,
) -> None:
    run = _Discovery(tmp_path, _schedule(behaviour=("ssh", "snmp"), classify="all"))
    with run.stack:
        _answer(run.queue, _ready(run.queue)["Shazzam"], _shazzam_result(22))
        run.passes()
        ready = _ready(run.queue)
        assert sorted(ready) == ["SNMPClassify", "SSHClassify"]  # both, not one after the other
        _answer(run.queue, ready["SSHClassify"], [], error="authentication failed for every credential")
        run.passes()
        assert run.done == []  # SNMP is still under way
        _answer(
            run.queue,
            ready["SNMPClassify"],
            [],
            error=f"SNMP request to {HOST}:161 timed out after 1 attempt(s)",
        )
        run.passes()
        (done,) = run.done
        log = run.log()
        assert log.count(UNCLASSIFIED) == 1
        # No agent there is no class, not a failure: only SSH's error is the device's.
        assert done.errors == (("SSHClassify", "authentication failed for every credential"),)
        assert done.host is not None
        assert done.host.open_ports == frozenset({22})
        assert done.engine == "connect"
        assert run.status.get(run.status_id).state == "Completed"


def test_classify_first_tries_the_next_classifier_only_after_the_first_found_no_class(tmp_path: Path) -> None:
    run = _Discovery(tmp_path, _schedule(behaviour=("ssh", "snmp")))
    with run.stack:
        _answer(run.queue, _ready(run.queue)["Shazzam"], _shazzam_result(22))
        run.passes()
        assert sorted(_ready(run.queue)) == ["SSHClassify"]


def test_probe_timeout_reaches_every_per_device_request_and_no_batch(tmp_path: Path) -> None:
    schedule = _schedule(
        behaviour=("ssh",),
        probe_timeout=7.5,
        enrichment=("banners",),
        shazzam_readers=False,
        page_wait=20,
        page_items=16,
    )
    run = _Discovery(tmp_path, schedule)
    with run.stack:
        shazzam = _ready(run.queue)["Shazzam"]
        parameters = _parameters(shazzam)
        assert "probe_timeout_ms" not in parameters
        assert parameters["scanners"] == "GenericTCP"  # the banners are BannerSniff's
        assert (parameters["page_wait_ms"], parameters["page_items"], parameters["queue_size"]) == (
            "20",
            "16",
            "16",
        )
        _answer(run.queue, shazzam, _shazzam_result(22))
        run.passes()
        ready = _ready(run.queue)
        assert sorted(ready) == ["BannerSniff", "SSHClassify"]
        assert {_parameters(record)["probe_timeout_ms"] for record in ready.values()} == {"7500"}


def test_by_default_shazzam_runs_its_readers_and_requests_keep_the_mid_s_limit(tmp_path: Path) -> None:
    run = _Discovery(tmp_path, _schedule(behaviour=("ssh",)))
    with run.stack:
        parameters = _parameters(_ready(run.queue)["Shazzam"])
        assert "scanners" not in parameters
        assert "queue_size" not in parameters


def test_a_fed_discovery_completes_only_after_its_caller_closed_the_feed(tmp_path: Path) -> None:
    run = _Discovery(tmp_path, _schedule(behaviour=(), depth="scanning"), fed=True)
    with run.stack:
        assert _ready(run.queue) == {}  # nothing planned by start
        run.passes()
        assert run.status.get(run.status_id).state == "Active"  # nothing to do, but more may come
        run.orchestrator.add_batch(run.status_id, "Shazzam", [f"{HOST}/32"], "targets")
        run.passes(1)
        (shazzam,) = _ready(run.queue).values()
        assert shazzam.source == f"{HOST}/32"
        _answer(run.queue, shazzam, _shazzam_result(80))
        run.passes()
        assert [d.ip for d in run.done] == [HOST]
        assert run.status.get(run.status_id).state == "Active"
        run.orchestrator.close_feed(run.status_id)
        run.passes(1)
        assert run.status.get(run.status_id).state == "Completed"
        assert [s.output.topic for s in run.sensed] == ["Shazzam"]
        assert run.sensed[0].whole
        assert run.sensed[0].pages == 1
        assert not run.sensed[0].error
        with pytest.raises(ConfigError, match="HostSweep or Shazzam"):
            run.orchestrator.add_batch(run.status_id, "SSHClassify", [HOST], "x")


def test_an_incomplete_host_nothing_answered_is_done_as_it_is_scanned(tmp_path: Path) -> None:
    run = _Discovery(tmp_path, _schedule(behaviour=("ssh",)))
    with run.stack:
        _answer(run.queue, _ready(run.queue)["Shazzam"], _shazzam_result(alive=False, incomplete="ENOBUFS"))
        run.passes()
        (done,) = run.done
        assert done.host is not None
        assert not done.host.alive
        assert done.host.incomplete == "ENOBUFS"
        assert _ready(run.queue) == {}  # nothing to classify


def test_the_new_schedule_keys_are_read_checked_and_written_back(tmp_path: Path) -> None:
    table = {
        "name": "t",
        "ranges": [f"{HOST}/32"],
        "classify": "all",
        "probe_timeout": 30,
        "page_wait": 20,
        "page_items": 64,
        "shazzam_readers": False,
        "nmap_syn": True,
    }
    schedule = schedule_from_mapping(table)
    assert (schedule.classify, schedule.probe_timeout, schedule.page_items) == ("all", 30.0, 64)
    assert (schedule.shazzam_readers, schedule.nmap_syn) == (False, True)
    assert schedule_from_mapping(schedule_to_mapping(schedule)) == schedule
    for key, value, said in (
        ("classify", "some", "classify must be one of first, all"),
        ("probe_timeout", 0, "probe_timeout must be between 1 and 86400"),
        ("page_items", 0, "page_items must be a whole number from 1 to 65536"),
        ("shazzam_readers", "no", "shazzam_readers must be true or false"),
    ):
        with pytest.raises(ConfigError, match=said):
            schedule_from_mapping({**table, key: value})


class _AnswersDuringThePass:
    """The queue, whose agent stores the last page of an answer just after a pass read its pages."""

    def __init__(self, queue: EccQueue, last_page: Callable[[], None]) -> None:
        self._queue = queue
        self._last_page: Callable[[], None] | None = last_page

    def results_of(self, sys_id: str) -> list[EccRecord]:
        answers = self._queue.results_of(sys_id)
        store = self._last_page
        if store is not None:
            self._last_page = None
            store()
        return answers

    def __getattr__(self, name: str) -> object:
        return getattr(self._queue, name)


def test_the_last_page_stored_while_a_pass_reads_the_pages_is_sensed_too(tmp_path: Path) -> None:
    run = _Discovery(tmp_path, _schedule(behaviour=(), page_wait=20))
    with run.stack:
        shazzam = _ready(run.queue)["Shazzam"]

        def page(ip: str, number: int, last: bool) -> None:
            result = ET.Element("result", engine="connect", hosts_scanned="2", hosts_done=str(number))
            ET.SubElement(result, "host", ip=ip, alive="true", active="true", hostName="", domainName="")
            record = new_input_record(
                shazzam, agent="lab1", results=[result], probe_time_ms=1, page=(number, last)
            )
            run.queue.complete(shazzam.sys_id, record)

        page(HOST, 1, False)
        run.orchestrator.queue = cast(
            EccQueue, _AnswersDuringThePass(run.queue, lambda: page("198.18.0.11", 2, True))
        )
        run.passes(3)
        assert sorted(d.ip for d in run.done) == [HOST, "198.18.0.11"]
        assert run.status.get(run.status_id).state == "Completed"


def test_a_private_one_off_discovery_keeps_only_what_is_under_way(tmp_path: Path) -> None:
    run = _Discovery(tmp_path, _schedule(behaviour=("ssh",), page_wait=20), forget=True)
    with run.stack:
        shazzam = _ready(run.queue)["Shazzam"]
        first = new_input_record(
            shazzam, agent="lab1", results=_shazzam_result(22), probe_time_ms=1, page=(1, False)
        )
        run.queue.complete(shazzam.sys_id, first)
        run.passes()
        # The page was sensed: its row stays (the result's pages count), what it said is gone.
        (page,) = run.queue.results_of(shazzam.sys_id)
        assert run.queue.read_payload(page) == ""
        ssh = _ready(run.queue)["SSHClassify"]
        _answer(run.queue, ssh, [], error="authentication failed for every credential")
        last = new_input_record(shazzam, agent="lab1", results=[], probe_time_ms=1, page=(2, True))
        run.queue.complete(shazzam.sys_id, last)
        run.passes()
        assert [d.ip for d in run.done] == [HOST]
        assert run.done[0].errors == (("SSHClassify", "authentication failed for every credential"),)
        assert run.status.get(run.status_id).state == "Completed"
        # Reported, the device and the whole port scan left nothing behind.
        assert run.queue.list(limit=100) == []
        assert run.log() == []
