"""A discovery through a real SQLite queue, with no network: classification, identification, exploration.

The Shazzam output is answered with a recorded Shazzam result; every later output is answered by
the real probe runner, whose SNMP probes talk to a replayed real switch (snmpsim-data's HP ProCurve
recording, an odd position of its folder) through the real client.
"""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET
from pathlib import Path

from midprobe.probes.credentials import CredentialStore, Secret, SNMPCommunityCredential
from midprobe.probes.registry import ProbeRegistry
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.snmp.classify import SnmpClassifyProbe
from midprobe.probes.snmp.explore import EXPLORE_TOPIC, IDENTITY_TOPIC, SnmpExploreProbe
from midprobe.probes.snmp.replay import ReplayAgent
from midprobe.runner.agent.probe_runner import AgentIdentity, ProbeRunner
from midprobe.runner.cmdb.database import open_database
from midprobe.runner.cmdb.model import DiscoveredDevice, NetworkInterface
from midprobe.runner.cmdb.store import CmdbStore
from midprobe.runner.discovery.orchestrator import Orchestrator
from midprobe.runner.discovery.schedule import Schedule
from midprobe.runner.discovery.status import AddressCounts, DiscoveryStatus, StatusStore
from midprobe.runner.ecc.builders import new_input_record
from midprobe.runner.ecc.payload import MultiProbePayload, ParametersPayload, decode_output_payload
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.support.recordings import recorded_varbinds
from tests.support.trust import trust_every_agent

SWITCH = "198.18.0.11"
COMMUNITY = "lab-community"
RECORDING = "network/switch/hpe-procurve-516733-b21.snmprec.bz2"
#: The neighbour the recorded switch sees on port 17 over LLDP (its chassis MAC).
NEXUS_MAC = "8c:60:4f:19:16:3a"
#: The one MAC the switch learned on port 13 (an edge port), and one of the 217 on port 17 (its uplink).
EDGE_MAC, UPLINK_MAC = "10:60:4b:b4:ff:48", "00:21:28:7e:31:a2"


def _shazzam_answer() -> list[ET.Element]:
    result = ET.Element("result")
    host = ET.SubElement(result, "host", ip=SWITCH, alive="true", active="true", hostName="", domainName="")
    ET.SubElement(host, "scanner", name="GenericTCP", port="22", protocol="tcp", result="refused")
    return [result]


def _runner() -> ProbeRunner:
    agent = ReplayAgent(recorded_varbinds(RECORDING), communities={COMMUNITY})
    registry = ProbeRegistry()
    for probe in (
        SnmpClassifyProbe(opener=agent),
        SnmpExploreProbe(topic=IDENTITY_TOPIC, opener=agent),
        SnmpExploreProbe(topic=EXPLORE_TOPIC, opener=agent),
    ):
        registry.register(probe)
    store = CredentialStore(
        [SNMPCommunityCredential(id="lab-ro", community=Secret(COMMUNITY), order=1)],
        snmp_public_fallback=False,
    )
    return ProbeRunner(registry, AgentIdentity("lab1"), policy=TargetPolicy.lab(), credentials=store)


def test_a_switch_is_identified_by_its_serial_explored_and_related_to_its_neighbour(tmp_path: Path) -> None:
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    runner = _runner()
    with contextlib.ExitStack() as stack, open_queue(url) as queue:
        database = open_database(url)
        cmdb = CmdbStore(database)
        stack.callback(cmdb.close)
        known_device = cmdb.reconcile(
            DiscoveredDevice(
                "cmdb_ci_ip_switch", "NWPU-CA-5548-01", interfaces=(NetworkInterface("mgmt0", NEXUS_MAC),)
            )
        )
        edge, behind_uplink = (
            cmdb.reconcile(
                DiscoveredDevice("cmdb_ci_linux_server", name, interfaces=(NetworkInterface("eth0", mac),))
            ).ci
            for name, mac in (("edge-server", EDGE_MAC), ("far-server", UPLINK_MAC))
        )
        status = StatusStore(database)
        queue.register_agent(AgentRegistration("lab1"))
        orchestrator = Orchestrator(queue, status, cmdb)
        status_id = orchestrator.start(Schedule("t", (f"{SWITCH}/32",), behaviour=("snmp",), batch_size=256))

        topics = _drive(queue, orchestrator, status_id, runner)
        assert topics == ["Shazzam", "SNMPClassify", "MultiProbe", "SNMPExplore"]
        _check(status_id, status, cmdb, known_device.ci or "", queue.list(limit=1000), edge or "")
        assert all(behind_uplink not in (r.parent, r.child) for r in cmdb.relations())  # not plugged in there


def _drive(queue: EccQueue, orchestrator: Orchestrator, status_id: str, runner: ProbeRunner) -> list[str]:
    """Answer every output as it is enqueued (Shazzam with the recorded switch, the rest by
    ``runner``) until the discovery ends; the topics answered, in order."""
    topics: list[str] = []
    for _ in range(10):  # scanning, classification, identification, exploration: bounded passes
        for output in queue.list(queue_side="output", state="ready"):
            topics.append(output.topic)
            if output.topic == "Shazzam":
                answer = new_input_record(
                    output, agent=output.agent, results=_shazzam_answer(), probe_time_ms=1
                )
            else:
                answer = asyncio.run(runner.answer(output))
            queue.complete(output.sys_id, answer)
        if orchestrator.advance(status_id).done:
            break
    return topics


def _check(
    status_id: str,
    status: StatusStore,
    cmdb: CmdbStore,
    known: str,
    records: list[EccRecord],
    edge: str,
) -> None:
    """What a user sees afterwards: the status counts and log, the queue's records, the CMDB."""
    (multiprobe,) = [r for r in records if r.topic == "MultiProbe" and r.queue == "output"]
    state = status.get(status_id)
    assert state.state == "Completed"
    for phase in ("scanning", "classification", "identification", "exploration"):
        assert vars(state.phases[phase]) == {"started": 1, "completed": 1, "error": 0}, phase
    assert {record.agent_correlator for record in records} == {status_id}
    request = decode_output_payload(multiprobe.payload)
    assert isinstance(request, MultiProbePayload)
    assert [probe.topic for probe in request.probes] == [IDENTITY_TOPIC]
    assert {p.name: p.value for p in request.parameters}[
        "credential_id"
    ] == "lab-ro"  # the one that classified

    (ci,) = [
        item
        for item in cmdb.list_cis()
        if item.sys_class_name == "cmdb_ci_ip_switch" and item.sys_id != known
    ]
    assert (ci.serial_number, ci.attributes["model_id"], ci.attributes["manufacturer"]) == (
        "3C421900TX",
        "516733-B21",
        "Hewlett-Packard",
    )
    assert ci.attributes["firmware_version"] == "Z.14.09"
    assert ci.interfaces
    assert all(interface.mac_address for interface in ci.interfaces if interface.ip_addresses)
    assert "222.24.210.177" in ci.ip_addresses
    assert "127.0.0.1" not in ci.ip_addresses
    # Its LLDP neighbour, and the one device on an edge port of its forwarding table.
    assert {(r.parent, r.child, r.type) for r in cmdb.relations(ci.sys_id)} == {
        (ci.sys_id, known, "Connects to::Connected by"),
        (ci.sys_id, edge, "Connects to::Connected by"),
    }
    said = [entry["message"] for entry in status.device_log(status_id) if entry["device"] == SWITCH]
    assert any(m.startswith("SNMPIdentity found serial 3C421900TX") for m in said), said
    assert f"Connects to NWPU-CA-5548-01 on port 17 (LLDP), CI {known}" in said, said
    assert any(m.endswith(": not in the CMDB") for m in said)  # the recording's other neighbours are unknown
    # The network tables the switch keeps are in the CMDB, under the CI.
    vlans = cmdb.exploration(ci.sys_id, "cmdb_ci_vlan")
    assert {"vlan_id": "1", "name": "DEFAULT_VLAN"} in vlans
    forwarding = cmdb.exploration(ci.sys_id, "discovery_switch_fwd_table")
    assert len(forwarding) == 277
    assert all(row["mac_address"] and row["port"] for row in forwarding)
    assert any(m.startswith("Connects to ") and "(FDB): not in the CMDB" in m for m in said)
    assert f"Connects to {EDGE_MAC} on 13 (FDB), CI {edge}" in said, said


def _hosts(*ips: str) -> list[ET.Element]:
    result = ET.Element("result")
    for ip in ips:
        ET.SubElement(result, "host", ip=ip, alive="true", active="true", hostName="", domainName="")
    return [result]


def _ports_scanned(
    queue: EccQueue, orchestrator: Orchestrator, status_id: str, host: str, *ports: int
) -> dict[str, EccRecord]:
    """Answer the one Shazzam output with ``host`` alive and ``ports`` open; the outputs it planned, by topic."""
    (shazzam,) = queue.list(queue_side="output", state="ready")
    result = ET.Element("result")
    element = ET.SubElement(result, "host", ip=host, alive="true", active="true", hostName="", domainName="")
    for port in ports:
        ET.SubElement(element, "scanner", name="GenericTCP", port=str(port), protocol="tcp", result="open")
    queue.complete(shazzam.sys_id, new_input_record(shazzam, agent="lab1", results=[result], probe_time_ms=1))
    orchestrator.advance(status_id)
    orchestrator.advance(status_id)  # the first pass plans, the next enqueues
    return {output.topic: output for output in queue.list(queue_side="output", state="ready")}


def _timed_out(queue: EccQueue, output: EccRecord) -> None:
    queue.complete(
        output.sys_id, new_input_record(output, agent="lab1", results=[], probe_time_ms=1, error="timeout")
    )


def _started(
    tmp_path: Path, schedule: Schedule | None = None
) -> tuple[contextlib.ExitStack[bool | None], EccQueue, Orchestrator, str]:
    """A discovery of ``schedule`` (default: SNMP over 198.18.0.0/30) started with one agent, lab1."""
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    stack = contextlib.ExitStack()
    queue = stack.enter_context(open_queue(url))
    database = open_database(url)
    cmdb = CmdbStore(database)
    stack.callback(cmdb.close)
    queue.register_agent(AgentRegistration("lab1"))
    orchestrator = Orchestrator(queue, StatusStore(database), cmdb)
    schedule = schedule or Schedule("t", ("198.18.0.0/30",), behaviour=("snmp",), batch_size=256)
    status_id = orchestrator.start(schedule)
    return stack, queue, orchestrator, status_id


def _answer_page(queue: EccQueue, output: EccRecord, ip: str, page: tuple[int, bool]) -> None:
    """Answer ``output`` (a Shazzam) with one page reporting host ``ip``."""
    record = new_input_record(output, agent="lab1", results=_hosts(ip), probe_time_ms=1, page=page)
    queue.complete(output.sys_id, record)


def test_a_paged_shazzam_result_is_sensed_once_all_its_pages_are_in(tmp_path: Path) -> None:
    stack, queue, orchestrator, status_id = _started(tmp_path)
    with stack:
        (shazzam,) = queue.list(queue_side="output", state="ready")
        _answer_page(queue, shazzam, "198.18.0.1", (1, False))
        assert orchestrator.advance(status_id).sensed == 0  # half a result is not sensed
        _answer_page(queue, shazzam, "198.18.0.2", (2, True))
        assert orchestrator.advance(status_id).sensed == 1
        orchestrator.advance(status_id)  # enqueues what the sensor planned
        planned = queue.list(queue_side="output", state="ready")
        assert sorted(output.source for output in planned) == ["198.18.0.1", "198.18.0.2"]


def test_with_page_wait_each_page_of_a_shazzam_result_is_sensed_once_as_it_comes(tmp_path: Path) -> None:
    schedule = Schedule("t", ("198.18.0.0/30",), behaviour=("snmp",), page_wait=1000)
    stack, queue, orchestrator, status_id = _started(tmp_path, schedule)
    with stack:
        (shazzam,) = queue.list(queue_side="output", state="ready")
        request = decode_output_payload(queue.read_payload(shazzam))
        assert isinstance(request, ParametersPayload)
        assert request.get("page_wait_ms") == "1000"  # its answer comes in pages as hosts are decided
        _answer_page(queue, shazzam, "198.18.0.1", (1, False))
        assert orchestrator.advance(status_id).sensed == 1  # the first page's host goes on at once
        orchestrator.advance(status_id)  # enqueues what the sensor planned
        first = queue.list(queue_side="output", state="ready")
        assert [output.source for output in first if output.topic != "Shazzam"] == ["198.18.0.1"]
        assert orchestrator.advance(status_id).sensed == 0  # no new page: nothing sensed again
        _answer_page(queue, shazzam, "198.18.0.2", (2, True))
        assert orchestrator.advance(status_id).sensed == 1
        orchestrator.advance(status_id)
        planned = queue.list(queue_side="output", state="ready")
        assert sorted(output.source for output in planned) == ["198.18.0.1", "198.18.0.2"]
        said = [
            e["message"] for e in orchestrator.status.device_log(status_id) if e["device"] == "198.18.0.1"
        ]
        assert said.count("alive, open TCP ports: none") == 1


def test_an_input_marked_skip_sensor_is_not_sensed(tmp_path: Path) -> None:
    stack, queue, orchestrator, status_id = _started(tmp_path)
    with stack:
        (shazzam,) = queue.list(queue_side="output", state="ready")
        answer = new_input_record(
            shazzam,
            agent="lab1",
            results=_hosts("198.18.0.1"),
            probe_time_ms=1,
            output_parameters={"skip_sensor": "true"},
        )
        queue.complete(shazzam.sys_id, answer)
        progress = orchestrator.advance(status_id)
        assert progress.sensed == 1
        assert progress.done  # nothing was planned from it
        assert queue.list(queue_side="output", state="ready") == []


def test_cancelling_closes_an_output_whose_result_is_half_in(tmp_path: Path) -> None:
    stack, queue, orchestrator, status_id = _started(tmp_path)
    with stack:
        (shazzam,) = queue.list(queue_side="output", state="ready")
        _answer_page(queue, shazzam, "198.18.0.1", (1, False))
        orchestrator.cancel(status_id)
        closed = queue.get(shazzam.sys_id)
        assert closed is not None
        assert closed.state == "error"
        assert [page.error_string for page in queue.results_of(shazzam.sys_id)] == ["", "discovery cancelled"]


def test_the_schedule_s_port_scan_knobs_reach_the_shazzam_probe(tmp_path: Path) -> None:
    from midprobe.probes.shazzam import parse_shazzam_params

    schedule = Schedule(
        "t", ("198.18.0.0/30",), ports="22,161", engine="connect", connect_wait=300, retries=0, rate=500
    )
    stack, queue, _, _ = _started(tmp_path, schedule)
    with stack:
        (shazzam,) = queue.list(queue_side="output", state="ready")
        payload = decode_output_payload(queue.read_payload(shazzam))
        assert isinstance(payload, ParametersPayload)
        params = parse_shazzam_params(shazzam.source, payload.as_dict())
    assert (params.engine, params.connect_wait_ms, params.retries, params.rate) == ("connect", 300, 0, 500.0)
    assert params.ports == (22, 161)


def _sweep_answer(queue: EccQueue, output: EccRecord, alive: tuple[str, ...], *, complete: bool) -> None:
    from midprobe.probes.sweep.host_sweep import AliveHost, SweepResult, encode_sweep

    result = SweepResult(
        targets=output.source,
        method="auto",
        methods_used=("icmp",),
        raw_sockets=True,
        fallback_reason=None,
        addresses=4,
        alive=tuple(AliveHost(ip, "icmp", 0.1) for ip in alive),
        unreachable=0,
        silent=4 - len(alive),
        unchecked=0,
        probes_sent=4,
        elapsed_ms=5,
        complete=complete,
    )
    queue.complete(
        output.sys_id, new_input_record(output, agent="lab1", results=[encode_sweep(result)], probe_time_ms=5)
    )


def _swept(
    tmp_path: Path, alive: tuple[str, ...], *, complete: bool = True
) -> tuple[EccRecord, list[EccRecord]]:
    """A host-discovery schedule of 198.18.0.0/30 whose sweep answered ``alive``: the sweep, and
    the outputs its sensor planned."""
    schedule = Schedule("t", ("198.18.0.0/30",), behaviour=("snmp",), host_discovery=True)
    stack, queue, orchestrator, status_id = _started(tmp_path, schedule)
    with stack:
        (sweep,) = queue.list(queue_side="output", state="ready")
        _sweep_answer(queue, sweep, alive, complete=complete)
        orchestrator.advance(status_id)  # senses the sweep
        orchestrator.advance(status_id)  # enqueues what it planned
        return sweep, queue.list(queue_side="output", state="ready")


def test_host_discovery_sweeps_each_batch_and_port_scans_only_the_addresses_that_answered(
    tmp_path: Path,
) -> None:
    sweep, planned = _swept(tmp_path, ("198.18.0.1", "198.18.0.2"))
    assert (sweep.topic, sweep.source) == ("HostSweep", "198.18.0.0/30")
    ((shazzam),) = planned
    assert (shazzam.topic, shazzam.source) == ("Shazzam", "198.18.0.1 198.18.0.2")


def test_a_sweep_cut_short_port_scans_every_address_of_the_batch(tmp_path: Path) -> None:
    _, planned = _swept(tmp_path, ("198.18.0.1",), complete=False)
    ((shazzam),) = planned
    assert (shazzam.topic, shazzam.source) == ("Shazzam", "198.18.0.0/30")


def test_a_sweep_nothing_answered_plans_no_port_scan(tmp_path: Path) -> None:
    _, planned = _swept(tmp_path, ())
    assert planned == []


def _run_switch(
    tmp_path: Path, schedule: Schedule
) -> tuple[list[str], list[tuple[str, str]], list[str], int, str]:
    """Discover the replayed switch with ``schedule`` to its end: the topics run, the devices said
    done (as they were), the switch's log, the CIs in the CMDB, the discovery's id."""
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    runner = _runner()
    done: list[tuple[str, str]] = []
    with contextlib.ExitStack() as stack, open_queue(url) as queue:
        database = open_database(url)
        cmdb = CmdbStore(database)
        stack.callback(cmdb.close)
        status = StatusStore(database)
        queue.register_agent(AgentRegistration("lab1"))
        orchestrator = Orchestrator(
            queue, status, cmdb, on_device_done=lambda d: done.append((d.status_id, d.ip))
        )
        status_id = orchestrator.start(schedule)
        topics = _drive(queue, orchestrator, status_id, runner)
        said = [e["message"] for e in status.device_log(status_id) if e["device"] == SWITCH]
        return topics, done, said, len(cmdb.list_cis()), status_id


def test_a_classification_only_discovery_that_writes_no_cmdb_says_what_it_found_and_when_done(
    tmp_path: Path,
) -> None:
    schedule = Schedule("t", (f"{SWITCH}/32",), behaviour=("snmp",), depth="classification", cmdb=False)
    topics, done, said, cis, status_id = _run_switch(tmp_path, schedule)
    assert topics == ["Shazzam", "SNMPClassify"]  # no identification, no exploration
    assert cis == 0
    assert any(m.startswith("SNMPClassify classified it cmdb_ci_ip_switch; not written") for m in said), said
    assert done == [(status_id, SWITCH)]  # once, after its last phase
    assert said[-1] == "done: nothing more runs for this device"


def test_a_discovery_to_identification_writes_the_ci_and_explores_nothing(tmp_path: Path) -> None:
    schedule = Schedule("t", (f"{SWITCH}/32",), behaviour=("snmp",), depth="identification")
    topics, done, _, cis, status_id = _run_switch(tmp_path, schedule)
    assert topics == ["Shazzam", "SNMPClassify", "MultiProbe"]
    assert cis == 1
    assert done == [(status_id, SWITCH)]


def test_a_scanning_only_discovery_classifies_nothing(tmp_path: Path) -> None:
    schedule = Schedule("t", (f"{SWITCH}/32",), behaviour=("snmp",), depth="scanning")
    topics, done, said, cis, status_id = _run_switch(tmp_path, schedule)
    assert (topics, cis) == (["Shazzam"], 0)
    assert done == [(status_id, SWITCH)]
    assert said == ["alive, open TCP ports: none", "done: nothing more runs for this device"]


def test_enrichment_reads_the_banners_of_a_host_and_skips_nmap_without_the_capability(tmp_path: Path) -> None:
    from midprobe.probes.banner import PROBE as BANNER_PROBE
    from midprobe.probes.banner.parsers import BannerResult, PortBanner

    host = "198.18.0.1"
    schedule = Schedule(
        "t",
        (f"{host}/32",),
        behaviour=("snmp",),
        depth="classification",
        cmdb=False,
        enrichment=("banners", "nmap_services"),
    )
    stack, queue, orchestrator, status_id = _started(tmp_path, schedule)
    done: list[str] = []
    orchestrator.on_device_done = lambda device: done.append(device.ip)
    with stack:
        planned = _ports_scanned(queue, orchestrator, status_id, host, 22)
        assert sorted(planned) == ["BannerSniff", "SNMPClassify"]  # nmap needs a MID with Nmap
        banner = planned["BannerSniff"]
        found = BannerResult(
            host, None, (PortBanner(22, "tcp", "BannerTCP", "open", "ssh", banner="SSH-2.0-x"),), 1
        )
        answer = new_input_record(
            banner, agent="lab1", results=list(BANNER_PROBE.encode_results(found)), probe_time_ms=1
        )
        queue.complete(banner.sys_id, answer)
        orchestrator.advance(status_id)
        assert done == []  # its classification is still out
        _timed_out(queue, planned["SNMPClassify"])
        assert orchestrator.advance(status_id).done
        said = [e["message"] for e in orchestrator.status.device_log(status_id) if e["device"] == host]
    assert done == [host]
    assert "BannerSniff found 22 SSH-2.0-x" in said
    assert any(m.startswith("NmapServiceScan skipped: no MID may run") for m in said), said


def test_the_snmp_tap_and_ptr_names_ask_even_a_host_without_open_ports(tmp_path: Path) -> None:
    host = "198.18.0.1"
    schedule = Schedule(
        "t",
        (f"{host}/32",),
        behaviour=("snmp",),
        enrichment=("banners", "snmp_public", "names"),
        dns_servers=("198.18.0.15",),
    )
    stack, queue, orchestrator, status_id = _started(tmp_path, schedule)
    with stack:
        (shazzam,) = queue.list(queue_side="output", state="ready")
        queue.complete(
            shazzam.sys_id, new_input_record(shazzam, agent="lab1", results=_hosts(host), probe_time_ms=1)
        )
        orchestrator.advance(status_id)
        orchestrator.advance(status_id)
        planned = {output.topic: output for output in queue.list(queue_side="output", state="ready")}
        asked = {}
        for topic in ("BannerSniff", "DNSNameResolver"):
            request = decode_output_payload(queue.read_payload(planned[topic]))
            assert isinstance(request, ParametersPayload)
            asked[topic] = request.as_dict()
    assert sorted(planned) == ["BannerSniff", "DNSNameResolver", "SNMPClassify"]
    assert "ports" not in asked["BannerSniff"]  # no open port to read a banner on
    assert asked["BannerSniff"]["snmp_public"] == "true"
    assert (asked["DNSNameResolver"]["ip_addresses"], asked["DNSNameResolver"]["dns_servers"]) == (
        host,
        "198.18.0.15",
    )


def test_a_device_no_classifier_classified_gets_a_ci_from_everything_its_answers_said(tmp_path: Path) -> None:
    """A printer without SNMP: its open ports, its web server's banner and its PTR name, weighed at
    once when it is done, make a printer CI named by its PTR name."""
    from midprobe.probes.banner import PROBE as BANNER_PROBE
    from midprobe.probes.banner.parsers import BannerResult, PortBanner

    host = "198.18.0.1"
    schedule = Schedule(
        "t",
        (f"{host}/32",),
        behaviour=("snmp",),
        enrichment=("banners", "names"),
        dns_servers=("198.18.0.15",),
    )
    stack, queue, orchestrator, status_id = _started(tmp_path, schedule)
    with stack:
        planned = _ports_scanned(queue, orchestrator, status_id, host, 80, 9100)
        assert sorted(planned) == ["BannerSniff", "DNSNameResolver", "SNMPClassify"]
        banner = planned["BannerSniff"]
        found = BannerResult(
            host, None, (PortBanner(80, "tcp", "BannerTCP", "open", "http", banner="HP HTTP Server"),), 1
        )
        results = list(BANNER_PROBE.encode_results(found))
        queue.complete(
            banner.sys_id, new_input_record(banner, agent="lab1", results=results, probe_time_ms=1)
        )
        names = planned["DNSNameResolver"]
        answer = ET.Element("result")
        ET.SubElement(answer, "reverse", ip=host, name="lp1.lab.example.test")
        queue.complete(names.sys_id, new_input_record(names, agent="lab1", results=[answer], probe_time_ms=1))
        _timed_out(queue, planned["SNMPClassify"])
        assert orchestrator.advance(status_id).done
        said = [e["message"] for e in orchestrator.status.device_log(status_id) if e["device"] == host]
        (ci,) = orchestrator.cmdb.list_cis()
    assert "no classifier left: the device stays unclassified" in said
    verdict = next(m for m in said if m.startswith("combined verdict: "))
    assert verdict.startswith("combined verdict: cmdb_ci_printer (1: "), verdict
    assert "HP HTTP Server" in verdict
    assert "9100" in verdict
    assert any("from the combined verdict; cmdb_ci_printer CI" in m for m in said), said
    assert (ci.sys_class_name, ci.name, ci.ip_address) == ("cmdb_ci_printer", "lp1.lab.example.test", host)
    assert said[-1] == "done: nothing more runs for this device"


def test_without_enrichment_an_unclassified_device_stays_without_a_ci(tmp_path: Path) -> None:
    """Open ports alone are not what a CI is made of: the combined verdict needs the enrichment's answers."""
    host = "198.18.0.1"
    schedule = Schedule("t", (f"{host}/32",), behaviour=("snmp",))
    stack, queue, orchestrator, status_id = _started(tmp_path, schedule)
    with stack:
        (classify,) = _ports_scanned(queue, orchestrator, status_id, host, 9100).values()
        _timed_out(queue, classify)
        assert orchestrator.advance(status_id).done
        said = [e["message"] for e in orchestrator.status.device_log(status_id) if e["device"] == host]
        assert orchestrator.cmdb.list_cis() == []
    assert not any(m.startswith("combined verdict") for m in said), said


def _counted_page(
    queue: EccQueue, output: EccRecord, page: tuple[int, bool], done: int, *hosts: tuple[str, str | None]
) -> None:
    """A Shazzam page of 198.18.0.0/30 that decided ``done`` addresses so far; ``hosts``: (ip, incomplete)."""
    result = ET.Element("result", engine="syn", ports="22", hosts_scanned="4", hosts_done=str(done))
    for ip, incomplete in hosts:
        host = ET.SubElement(result, "host", ip=ip, alive="true", active="true", hostName="", domainName="")
        if incomplete:
            host.set("incomplete", incomplete)
    record = new_input_record(output, agent="lab1", results=[result], probe_time_ms=1, page=page)
    queue.complete(output.sys_id, record)


def test_the_status_counts_the_addresses_each_port_scan_page_decided(tmp_path: Path) -> None:
    schedule = Schedule("t", ("198.18.0.0/30",), behaviour=("snmp",), page_wait=1000)
    stack, queue, orchestrator, status_id = _started(tmp_path, schedule)
    with stack:
        assert vars(orchestrator.status.get(status_id).addresses) == {
            "total": 4,
            "decided": 0,
            "alive": 0,
            "incomplete": 0,
        }
        (shazzam,) = queue.list(queue_side="output", state="ready")
        _counted_page(queue, shazzam, (1, False), 2, ("198.18.0.1", None))
        orchestrator.advance(status_id)
        assert vars(orchestrator.status.get(status_id).addresses) == {
            "total": 4,
            "decided": 2,
            "alive": 1,
            "incomplete": 0,
        }
        _counted_page(queue, shazzam, (2, True), 4, ("198.18.0.2", "ENOBUFS"))
        orchestrator.advance(status_id)
        orchestrator.advance(status_id)  # the whole result sensed: no page is counted twice
        status = orchestrator.status.get(status_id)
        assert vars(status.addresses) == {"total": 4, "decided": 4, "alive": 2, "incomplete": 1}
        assert DiscoveryStatus.from_dict(status.as_dict()) == status  # as an instance sends it


def test_host_discovery_counts_the_silent_addresses_as_decided_by_the_sweep(tmp_path: Path) -> None:
    schedule = Schedule("t", ("198.18.0.0/30",), behaviour=("snmp",), host_discovery=True)
    stack, queue, orchestrator, status_id = _started(tmp_path, schedule)
    with stack:
        (sweep,) = queue.list(queue_side="output", state="ready")
        _sweep_answer(queue, sweep, ("198.18.0.1",), complete=True)
        orchestrator.advance(status_id)
        assert orchestrator.status.get(status_id).addresses.decided == 3  # the three silent ones
        orchestrator.advance(status_id)  # enqueues the port scan of the one that answered
        (shazzam,) = [o for o in queue.list(queue_side="output", state="ready") if o.topic == "Shazzam"]
        result = ET.Element("result", engine="syn", ports="22", hosts_scanned="1")
        ET.SubElement(
            result, "host", ip="198.18.0.1", alive="true", active="true", hostName="", domainName=""
        )
        queue.complete(
            shazzam.sys_id, new_input_record(shazzam, agent="lab1", results=[result], probe_time_ms=1)
        )
        orchestrator.advance(status_id)
        assert vars(orchestrator.status.get(status_id).addresses) == {
            "total": 4,
            "decided": 4,
            "alive": 1,
            "incomplete": 0,
        }


def test_a_status_from_an_instance_without_address_counts_reads_as_none_counted() -> None:
    sent = {"sys_id": "ab", "name": "t", "state": "Active", "started": "2026-12-04 20:00:00", "phases": {}}
    assert DiscoveryStatus.from_dict(sent).addresses == AddressCounts()
