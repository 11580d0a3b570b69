"""The SNMP and SNMPClassify probes end to end on recorded walks, replayed through the real client.

No socket: ``ReplayAgent`` is injected as the sessions' opener, so credential choice, bulk
walking, encoding and classification all run as they do against a live agent.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from midprobe.probes.base import ProbeContext
from midprobe.probes.credentials import CredentialStore, Secret, SNMPCommunityCredential
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.snmp.classify import SnmpClassifyProbe
from midprobe.probes.snmp.codec import GET_BULK_REQUEST, GET_NEXT_REQUEST
from midprobe.probes.snmp.facts import LINUX_SERVER, PRINTER, SWITCH
from midprobe.probes.snmp.query import SnmpProbe
from midprobe.probes.snmp.replay import ReplayAgent
from midprobe.probes.snmp.walkfile import parse_walk

WALKS = Path(__file__).resolve().parents[4] / "fixtures" / "snmp" / "lab"
COMMUNITY = "lab-community"
SYSTEM = (1, 3, 6, 1, 2, 1, 1)
ADDRESSES = {"linux1": "198.18.0.10", "switch1": "198.18.0.11", "printer1": "198.18.0.12"}


def _store(*communities: tuple[str, str]) -> CredentialStore:
    return CredentialStore(
        [
            SNMPCommunityCredential(id=credential_id, community=Secret(community), order=order)
            for order, (credential_id, community) in enumerate(communities, start=1)
        ],
        snmp_public_fallback=False,
    )


def _context(store: CredentialStore) -> ProbeContext:
    return ProbeContext(policy=TargetPolicy.lab(), credentials=store, deadline=time.monotonic() + 30)


def _agent(host: str) -> ReplayAgent:
    return ReplayAgent.from_walk_file(WALKS / f"{host}-v2c.walk", communities={COMMUNITY})


@pytest.mark.parametrize("use_getbulk", ["true", "false"])
def test_snmp_walk_of_the_system_group_returns_the_recorded_varbinds(use_getbulk: str) -> None:
    agent = _agent("switch1")
    probe = SnmpProbe(opener=agent)
    params = probe.parse_params(
        ADDRESSES["switch1"], {"oid_spec_list": "walk system", "version": "v2c", "use_getbulk": use_getbulk}
    )
    result = asyncio.run(probe.run(params, _context(_store(("lab-ro", COMMUNITY)))))
    recorded = [vb for vb in parse_walk((WALKS / "switch1-v2c.walk").read_text()) if vb[0][:7] == SYSTEM]
    assert list(result.varbinds) == recorded
    assert result.credential_id == "lab-ro"
    asked = {pdu for session in agent.sessions for pdu, _, _ in session.requests[1:]}  # after the proof GET
    assert asked == ({GET_BULK_REQUEST} if use_getbulk == "true" else {GET_NEXT_REQUEST})
    xml = ET.tostring(probe.encode_results(result)[0], encoding="unicode")
    assert "switch1" in xml
    assert COMMUNITY not in xml


def test_a_wrong_community_is_passed_over_for_one_the_agent_answers() -> None:
    probe = SnmpProbe(opener=_agent("linux1"))
    params = probe.parse_params(
        ADDRESSES["linux1"], {"oid_spec_list": "walk 1.3.6.1.2.1.1.5.0", "retries": "0"}
    )
    store = _store(("wrong", "not-the-community"), ("lab-ro", COMMUNITY))
    result = asyncio.run(probe.run(params, _context(store)))
    assert result.credential_id == "lab-ro"
    assert [value.value for _, value in result.varbinds] == [b"linux1"]


@pytest.mark.parametrize(
    ("host", "ci_class", "vendor"),
    [("linux1", LINUX_SERVER, "net-snmp"), ("switch1", SWITCH, "Cisco"), ("printer1", PRINTER, "HP")],
)
def test_classify_on_a_replayed_walk(host: str, ci_class: str, vendor: str) -> None:
    probe = SnmpClassifyProbe(opener=_agent(host))
    params = probe.parse_params(ADDRESSES[host], {"version": "v2c"})
    result = asyncio.run(probe.run(params, _context(_store(("lab-ro", COMMUNITY)))))
    assert result.classification.ci_class == ci_class
    assert result.classification.vendor == vendor
    assert result.facts.sys_name == host
    assert result.credential_id == "lab-ro"
    assert ADDRESSES[host] in [entry.address for entry in result.ip_addresses]
    xml = ET.tostring(probe.encode_results(result)[0], encoding="unicode")
    assert COMMUNITY not in xml


def test_classify_reads_the_switch_interfaces_from_the_walk() -> None:
    probe = SnmpClassifyProbe(opener=_agent("switch1"))
    result = asyncio.run(
        probe.run(probe.parse_params(ADDRESSES["switch1"], {}), _context(_store(("ro", COMMUNITY))))
    )
    assert {f"Gi1-0-{n}" for n in range(1, 9)} | {"Vlan1", "lo"} <= {i.name for i in result.interfaces}
    assert "switching" in result.capabilities
