"""The CMDB and MID tables in the Table API, and the CMDB read back through them as ``cmdb --queue https://`` reads it."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from midprobe.capabilities.config import parse_config
from midprobe.runner.cmdb.database import Database
from midprobe.runner.cmdb.model import (
    EXPLORATION_TABLES,
    ConfigurationItem,
    DiscoveredDevice,
    NetworkInterface,
)
from midprobe.runner.cmdb.store import CmdbStore
from midprobe.runner.instance.api import create_app
from midprobe.runner.instance.auth import UserStore
from midprobe.runner.instance.client import InstanceClient
from midprobe.runner.instance.cmdb_client import InstanceCmdb
from midprobe.runner.instance.cmdb_tables import cmdb_tables
from midprobe.runner.instance.mid_tables import mid_tables
from midprobe.runner.queue.base import AgentRegistration, EccQueue
from midprobe.runner.queue.https import HttpsQueue
from tests.instance.conftest import MID, AsgiBridge, Client

CLUSTERS = """
[[cluster]]
name = "east"
type = "Failover"
members = [{ name = "mid1", order = 1 }, { name = "mid2", order = 2 }]
"""


@pytest.fixture
def cmdb(database: Database) -> CmdbStore:
    store = CmdbStore(database)
    linux = store.reconcile(
        DiscoveredDevice(
            "cmdb_ci_linux_server",
            "linux1",
            ip_address="198.18.0.10",
            serial_number="SN-1",
            interfaces=(NetworkInterface("eth0", "02:00:00:00:00:10", ("198.18.0.10", "2001:db8::10")),),
            attributes={"os": "Linux", "cpu_count": "2"},
        ),
        discovery="d1",
    )
    switch = store.reconcile(
        DiscoveredDevice("cmdb_ci_ip_switch", "switch1", ip_address="198.18.0.11"), discovery="d1"
    )
    store.reconcile(
        DiscoveredDevice(
            "cmdb_ci_linux_server", "linux1.lab", ip_address="198.18.0.10", serial_number="SN-1"
        ),
        discovery="d2",
    )
    assert linux.ci is not None
    assert switch.ci is not None
    store.relate(linux.ci, switch.ci, "Connects to::Connected by", discovery="d2")
    store.record_exploration(
        linux.ci,
        {
            "cmdb_ci_ip_route": (
                {"destination": "0.0.0.0/0", "next_hop": "198.18.0.1", "interface": "eth0"},
                {"destination": "198.18.0.0/24", "next_hop": None, "interface": "eth0"},
            ),
            "cmdb_sam_sw_install": ({"name": "openssh-server", "version": "1:9.2p1-2"},),
        },
        discovery="d2",
    )
    return store


@pytest.fixture
def app_client(queue: EccQueue, users: UserStore, database: Database, cmdb: CmdbStore) -> Client:
    queue.register_agent(
        AgentRegistration(
            name="mid1",
            applications=("Discovery",),
            ip_ranges=("198.18.0.0/24",),
            excluded_ip_ranges=("198.18.0.1",),
            capabilities=(("SSH", ""), ("SNMP", "")),
        )
    )
    tables = [*cmdb_tables(cmdb), *mid_tables(queue, database, parse_config(CLUSTERS))]
    return Client(create_app(queue, users, tables=tables))


def _seconds(item: ConfigurationItem) -> ConfigurationItem:
    return dataclasses.replace(
        item, first_discovered=item.first_discovered[:19], last_discovered=item.last_discovered[:19]
    )


def test_the_cmdb_read_through_the_instance_is_the_cmdb_in_the_database(
    app_client: Client, cmdb: CmdbStore
) -> None:
    transport = HttpsQueue(
        "https://instance.test",
        user=MID[0],
        password=MID[1],
        client=httpx.Client(transport=AsgiBridge(app_client.app), base_url="https://instance.test"),
    )
    with InstanceCmdb(InstanceClient(transport)) as remote:
        assert remote.list_cis() == [_seconds(item) for item in cmdb.list_cis()]
        assert [ci.name for ci in remote.list_cis(sys_class_name="cmdb_ci_ip_switch")] == ["switch1"]
        linux = remote.get("2001:db8::10")
        assert linux.name == "linux1.lab"
        assert linux.interfaces[0].ip_addresses == (
            "198.18.0.10",
            "2001:db8::10",
        )
        assert remote.get(linux.sys_id[:6]).sys_id == linux.sys_id
        assert remote.relations(linux.sys_id) == [
            dataclasses.replace(r, first_seen=r.first_seen[:19], last_seen=r.last_seen[:19])
            for r in cmdb.relations(linux.sys_id)
        ]
        assert [(c.field_name, c.old_value, c.new_value) for c in remote.history(linux.sys_id)] == [
            (c.field_name, c.old_value, c.new_value) for c in cmdb.history(linux.sys_id)
        ]
        for table in EXPLORATION_TABLES:
            assert remote.exploration(linux.sys_id, table) == cmdb.exploration(linux.sys_id, table)
        assert [row["destination"] for row in remote.exploration(linux.sys_id, "cmdb_ci_ip_route")] == [
            "0.0.0.0/0",
            "198.18.0.0/24",
        ]
        assert remote.export("csv").splitlines()[0] == cmdb.export("csv").splitlines()[0]
        with pytest.raises(Exception, match="no CI matches"):
            remote.get("nothing-here")


def test_the_cmdb_tables_take_queries_and_fields_and_refuse_writes(app_client: Client) -> None:
    found = app_client.get(
        "/api/now/table/cmdb_ci",
        sysparm_query="sys_class_name=cmdb_ci_linux_server",
        sysparm_fields="name,serial_number,os",
    )
    assert found.status_code == 200, found.text
    assert found.json()["result"] == [{"name": "linux1.lab", "serial_number": "SN-1", "os": "Linux"}]
    addresses = app_client.get("/api/now/table/cmdb_ip_address", sysparm_query="ip_addressSTARTSWITH2001:")
    assert [row["ip_address"] for row in addresses.json()["result"]] == ["2001:db8::10"]
    audit = app_client.get("/api/now/table/sys_audit", sysparm_query="fieldname=name").json()["result"]
    assert [(row["oldvalue"], row["newvalue"]) for row in audit] == [("linux1", "linux1.lab")]
    refused = app_client.post("/api/now/table/cmdb_ci", {"name": "x"})
    assert refused.status_code == 405
    assert app_client.get("/api/now/table/cmdb_ci", sysparm_query="colour=red").status_code == 400


def test_the_mid_tables_show_what_each_agent_registered_and_the_instances_clusters(
    app_client: Client,
) -> None:
    def rows(table: str, **params: str) -> list[dict[str, str]]:
        answer = app_client.as_user(MID).get(f"/api/now/table/{table}", **params)
        assert answer.status_code == 200, answer.text
        result: list[dict[str, str]] = answer.json()["result"]
        return result

    (agent,) = rows("ecc_agent")
    m2m = rows("ecc_agent_capability_m2m", sysparm_query="agent_name=mid1^ORDERBYcapability_name")
    assert [(row["capability_name"], row["agent"]) for row in m2m] == [
        ("SNMP", agent["sys_id"]),
        ("SSH", agent["sys_id"]),
    ]
    assert {row["capability"] for row in rows("ecc_agent_capability")} == {"SSH", "SNMP"}
    ranges = rows("ecc_agent_ip_range_m2m")
    assert [(row["ip_range"], row["type"]) for row in ranges] == [
        ("198.18.0.0/24", "include"),
        ("198.18.0.1", "exclude"),
    ]
    assert [row["application"] for row in rows("ecc_agent_application_m2m")] == ["Discovery"]
    (cluster,) = rows("ecc_agent_cluster")
    assert (cluster["name"], cluster["type"]) == ("east", "Failover")
    members = rows("ecc_agent_cluster_member_m2m", sysparm_query="order>1")
    assert [(row["agent_name"], row["cluster"]) for row in members] == [("mid2", cluster["sys_id"])]
    assert rows("ecc_agent_issue") == []


def test_the_upgrade_history_is_a_table_with_queries(app_client: Client, queue: EccQueue) -> None:
    first = queue.start_upgrade("mid1", "0.1.1", "0.1.2")
    queue.end_upgrade(first.sys_id, succeeded=False, reason="the self-test failed: boom")
    queue.request_upgrade("mid1", "0.1.3")
    answer = app_client.as_user(MID).get(
        "/api/now/table/ecc_agent_upgrade", sysparm_query="state=Failed", sysparm_fields="to_version,reason"
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == [{"to_version": "0.1.2", "reason": "the self-test failed: boom"}]
    every = app_client.as_user(MID).get("/api/now/table/ecc_agent_upgrade").json()["result"]
    assert [(row["agent_name"], row["state"]) for row in every] == [("mid1", "Failed"), ("mid1", "Requested")]
    assert every[1]["ended"] == ""
