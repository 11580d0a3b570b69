"""The SNMP probes against the default lab's real snmpd hosts (linux1, switch1, printer1)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import pytest

from midprobe.probes.base import ProbeContext
from midprobe.probes.credentials import CredentialStore, Secret, SNMPCommunityCredential, SNMPv3Credential
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.snmp.auth import UsmAuth, auth_from_credential
from midprobe.probes.snmp.classify import SnmpClassifyProbe
from midprobe.probes.snmp.client import ClientOptions, SnmpClient
from midprobe.probes.snmp.errors import SnmpTimeout, SnmpUnreachable, SnmpWrongDigest
from midprobe.probes.snmp.facts import LINUX_SERVER, PRINTER, SWITCH
from midprobe.probes.snmp.query import SnmpProbe
from midprobe.runner.lab import Lab, NamespaceThread

pytestmark = pytest.mark.lab

SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)


def _store(lab: Lab) -> CredentialStore:
    c = lab.credentials
    return CredentialStore(
        [
            SNMPCommunityCredential(id="lab-ro", community=Secret(c.snmp_community), order=10),
            SNMPv3Credential(
                id="lab-v3",
                user=c.snmpv3_user,
                auth_protocol=c.snmpv3_auth_protocol,
                auth_key=Secret(c.snmpv3_auth_key),
                priv_protocol=c.snmpv3_priv_protocol,
                priv_key=Secret(c.snmpv3_priv_key),
                order=20,
            ),
        ],
        snmp_public_fallback=False,
    )


@pytest.mark.parametrize(
    ("host", "version", "ci_class", "vendor"),
    [
        ("linux1", "2c", LINUX_SERVER, "net-snmp"),
        ("switch1", "3", SWITCH, "Cisco"),
        ("printer1", "2c", PRINTER, "HP"),
    ],
)
def test_classify_lab_devices(
    lab: Lab, lab_thread: NamespaceThread, host: str, version: str, ci_class: str, vendor: str
) -> None:
    target = lab.host(host)
    probe = SnmpClassifyProbe()
    params = probe.parse_params(target.address, {"version": version})
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=_store(lab), deadline=time.monotonic() + 60)
    result = lab_thread.run_async(lambda: probe.run(params, context))
    assert result.classification.ci_class == ci_class
    assert result.classification.vendor == vendor
    assert result.classification.evidence[0].startswith(f"SNMP sysObjectID {target.sys_object_id} ")
    assert result.facts.sys_name == host
    assert result.facts.sys_descr == target.sys_descr
    assert result.credential_id == ("lab-v3" if version == "3" else "lab-ro")
    assert target.address in [entry.address for entry in result.ip_addresses]
    xml = ET.tostring(probe.encode_results(result)[0], encoding="unicode")
    assert all(secret not in xml for secret in lab.credentials.secrets())


def test_switch_interfaces(lab: Lab, lab_thread: NamespaceThread) -> None:
    probe = SnmpClassifyProbe()
    params = probe.parse_params(lab.host("switch1").address, {})
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=_store(lab))
    result = lab_thread.run_async(lambda: probe.run(params, context))
    names = {interface.name for interface in result.interfaces}
    assert {f"Gi1-0-{n}" for n in range(1, 9)} | {"Vlan1", "lo"} <= names
    assert "switching" in result.capabilities


def test_snmp_probe_over_v3_with_a_filtered_table(lab: Lab, lab_thread: NamespaceThread) -> None:
    probe = SnmpProbe()
    params = probe.parse_params(
        "198.18.0.11",
        {"oid_spec_list": "walk sysName\ntable ifTable ifIndex,ifDescr(#Gi1-0),ifOperStatus", "version": "3"},
    )
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=_store(lab))
    result = lab_thread.run_async(lambda: probe.run(params, context))
    root = ET.fromstring(ET.tostring(probe.encode_results(result)[0]))
    assert root.findtext("snmp/system/sysName") == "switch1"
    assert sorted(
        row.findtext("ifDescr") or "" for row in root.findall("snmp/interfaces/ifTable/ifEntry")
    ) == [f"Gi1-0-{n}" for n in range(1, 9)]
    snmp = root.find("snmp")
    assert snmp is not None
    assert snmp.get("version") == "3"
    assert snmp.get("credential_id") == "lab-v3"


def test_wrong_v3_key_against_a_lab_host(lab: Lab, lab_thread: NamespaceThread) -> None:
    c = lab.credentials
    auth = UsmAuth(c.snmpv3_user, "SHA", Secret("mpa-wrong-key-here"), "AES", Secret(c.snmpv3_priv_key))

    async def go() -> None:
        async with SnmpClient(
            lab.host("linux1").address, auth, options=ClientOptions(timeout=0.5, retries=1)
        ) as client:
            await client.get([SYS_NAME])

    with pytest.raises(SnmpWrongDigest):
        lab_thread.run_async(go)


@pytest.mark.parametrize(("host", "error"), [("silent1", SnmpTimeout), ("web1", SnmpUnreachable)])
def test_hosts_without_an_agent(
    lab: Lab, lab_thread: NamespaceThread, host: str, error: type[Exception]
) -> None:
    auth = auth_from_credential(_store(lab).get("lab-ro"))

    async def go() -> None:
        async with SnmpClient(
            lab.host(host).address, auth, options=ClientOptions(timeout=0.3, retries=1)
        ) as client:
            await client.get([SYS_NAME])

    started = time.monotonic()
    with pytest.raises(error):
        lab_thread.run_async(go)
    assert time.monotonic() - started < 3
