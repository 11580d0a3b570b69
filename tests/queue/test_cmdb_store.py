"""The CMDB store on real SQLite and PostgreSQL: one CI per device across re-discoveries, history, merges."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from midprobe.capabilities.errors import ConfigError, QueueError
from midprobe.runner.cmdb import CmdbStore, DiscoveredDevice, NetworkInterface, open_cmdb
from midprobe.runner.queue.url import open_queue


class StepClock:
    """A clock that moves one second per reading, so timestamps order the writes."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def cmdb(queue_url: str) -> Iterator[CmdbStore]:
    store = open_cmdb(queue_url, clock=StepClock())
    yield store
    store.close()


def linux(
    *, ip: str = "198.18.0.10", os_version: str = "12", serial: str | None = "VMW-1234"
) -> DiscoveredDevice:
    return DiscoveredDevice(
        "cmdb_ci_linux_server",
        "linux1",
        ip_address=ip,
        serial_number=serial,
        interfaces=(
            NetworkInterface("eth0", "02:42:c6:12:00:0a", (ip, "2001:db8::10")),
            NetworkInterface("lo"),
        ),
        attributes={"os": "Linux", "os_version": os_version, "manufacturer": "VMware"},
    )


def test_first_discovery_inserts_with_interfaces_and_addresses(cmdb: CmdbStore) -> None:
    result = cmdb.reconcile(linux(), discovery="d1")
    assert result.action == "inserted"
    ci = cmdb.get(result.ci or "")
    assert (ci.name, ci.sys_class_name, ci.serial_number, ci.mac_address) == (
        "linux1",
        "cmdb_ci_linux_server",
        "VMW-1234",
        "02:42:c6:12:00:0a",
    )
    assert sorted(ci.ip_addresses) == ["198.18.0.10", "2001:db8::10"]
    assert [(i.name, i.mac_address, i.ip_addresses) for i in ci.interfaces] == [
        ("eth0", "02:42:c6:12:00:0a", ("198.18.0.10", "2001:db8::10")),
        ("lo", None, ()),
    ]
    assert ci.first_discovered == ci.last_discovered
    assert ci.last_discovery == "d1"


def test_rediscovery_updates_the_same_ci_and_records_each_change(cmdb: CmdbStore) -> None:
    first = cmdb.reconcile(linux(), discovery="d1")
    again = cmdb.reconcile(linux(), discovery="d2")
    assert (again.action, again.ci, again.changes) == ("updated", first.ci, ())
    changed = cmdb.reconcile(linux(os_version="13"), discovery="d3")
    assert changed.ci == first.ci
    assert [(c.field_name, c.old_value, c.new_value, c.discovery) for c in changed.changes] == [
        ("os_version", "12", "13", "d3")
    ]
    assert len(cmdb.list_cis()) == 1
    history = cmdb.history(first.ci or "")
    assert [(c.field_name, c.new_value) for c in history] == [("os_version", "13")]
    ci = cmdb.get(first.ci or "")
    assert ci.first_discovered < ci.last_discovered
    assert ci.last_discovery == "d3"


def test_a_device_that_moved_address_stays_one_ci(cmdb: CmdbStore) -> None:
    first = cmdb.reconcile(linux(), discovery="d1")
    moved = cmdb.reconcile(linux(ip="198.18.0.77", serial=None), discovery="d2")
    assert (moved.ci, moved.rule) == (first.ci, "mac_address")
    assert {c.field_name for c in moved.changes} == {"ip_address", "ip_addresses"}
    assert cmdb.get("198.18.0.77").sys_id == first.ci
    with pytest.raises(ConfigError, match="no CI"):
        cmdb.get("198.18.0.10")  # the old address no longer names it


def test_two_cis_that_are_one_device_are_merged_and_the_merge_recorded(cmdb: CmdbStore) -> None:
    by_name = cmdb.reconcile(DiscoveredDevice("cmdb_ci_netgear", "sw1", ip_address="198.18.0.11"), "d1")
    by_mac = cmdb.reconcile(
        DiscoveredDevice(
            "cmdb_ci_ip_switch", "sw1-mgmt", interfaces=(NetworkInterface("vlan1", "02:00:00:00:01:01"),)
        ),
        "d1",
    )
    other = cmdb.reconcile(DiscoveredDevice("cmdb_ci_linux_server", "linux1", ip_address="198.18.0.10"), "d1")
    cmdb.relate(other.ci or "", by_name.ci or "", "Connects to::Connected by", "d1")
    whole = DiscoveredDevice(
        "cmdb_ci_ip_switch",
        "sw1",
        ip_address="198.18.0.11",
        interfaces=(NetworkInterface("vlan1", "02:00:00:00:01:01", ("198.18.0.11",)),),
    )
    result = cmdb.reconcile(whole, "d2")
    assert result.action == "updated"
    kept = result.ci
    (absorbed,) = result.merged
    assert {kept, absorbed} == {by_name.ci, by_mac.ci}
    assert {ci.sys_id for ci in cmdb.list_cis()} == {kept, other.ci}
    assert cmdb.merges()[0]["kept"] == kept
    (relation,) = cmdb.relations(kept)
    assert (relation.parent, relation.child) == (other.ci, kept)  # moved over from the absorbed CI


def test_a_conflicting_identity_is_flagged_and_nothing_written(cmdb: CmdbStore) -> None:
    cmdb.reconcile(linux(), "d1")
    clash = linux(serial="OTHER-SERIAL")
    result = cmdb.reconcile(clash, "d2")
    assert result.action == "conflict"
    assert "VMW-1234" in result.reason
    (only,) = cmdb.list_cis()
    assert only.serial_number == "VMW-1234"
    (flag,) = cmdb.conflicts()
    assert flag["device_name"] == "linux1"
    assert flag["cis"] == [only.sys_id]


def test_relations_are_recorded_once_and_validated(cmdb: CmdbStore) -> None:
    a = cmdb.reconcile(linux(), "d1").ci or ""
    b = cmdb.reconcile(DiscoveredDevice("cmdb_ci_ip_switch", "sw1", ip_address="198.18.0.11"), "d1").ci or ""
    first = cmdb.relate(a, b, "Connects to::Connected by", "d1")
    assert cmdb.relate(a, b, "Connects to::Connected by", "d2") == first
    (relation,) = cmdb.relations()
    assert relation.discovery == "d2"
    assert relation.first_seen < relation.last_seen
    with pytest.raises(ConfigError, match="relation type"):
        cmdb.relate(a, b, "Likes::Liked by")
    with pytest.raises(ConfigError, match="no CI"):
        cmdb.relate(a, "f" * 32, "Depends on::Used by")


def test_the_owner_of_a_neighbour_is_found_by_mac_else_by_its_one_name(cmdb: CmdbStore) -> None:
    sys_id = cmdb.reconcile(linux(), "d1").ci or ""
    fqdn = cmdb.reconcile(
        DiscoveredDevice("cmdb_ci_ip_switch", "sw1.lab.example.test", ip_address="198.18.0.11")
    )
    assert cmdb.owner_of(mac="02:42:c6:12:00:0a") == sys_id
    assert cmdb.owner_of(mac="02:00:00:00:00:99", name="LINUX1") == sys_id  # unknown MAC: the name decides
    assert cmdb.owner_of(name="sw1") == fqdn.ci  # a short name matches its fully qualified CI
    assert cmdb.owner_of(address="2001:db8::10", name="sw1") == sys_id  # an address outranks a name
    assert cmdb.owner_of(address="198.18.0.11") == fqdn.ci
    assert cmdb.owner_of(name="sw") is None
    assert cmdb.owner_of(name="s_1") is None  # no pattern characters in names
    cmdb.reconcile(DiscoveredDevice("cmdb_ci_linux_server", "linux1", ip_address="198.18.0.99"))
    assert cmdb.owner_of(name="linux1") is None  # two CIs of that name: nobody to relate to
    assert cmdb.owner_of() is None


def test_ci_lookup_by_prefix_name_and_address(cmdb: CmdbStore) -> None:
    sys_id = cmdb.reconcile(linux(), "d1").ci or ""
    for reference in (sys_id, sys_id[:6], "LINUX1", "2001:db8::10"):
        assert cmdb.get(reference).sys_id == sys_id
    with pytest.raises(ConfigError, match="no CI"):
        cmdb.get("nothing-like-it")
    with pytest.raises(ConfigError, match="--class"):
        cmdb.list_cis(sys_class_name="cmdb_ci_toaster")


def test_export_uses_servicenow_field_names(cmdb: CmdbStore) -> None:
    cmdb.reconcile(linux(), "d1")
    (row,) = json.loads(cmdb.export("json"))
    for key in (
        "sys_id",
        "sys_class_name",
        "name",
        "ip_address",
        "mac_address",
        "serial_number",
        "manufacturer",
        "model_id",
        "os",
        "os_version",
        "first_discovered",
        "last_discovered",
    ):
        assert key in row
    assert row["os"] == "Linux"
    header, line = cmdb.export("csv").splitlines()
    assert header.startswith("sys_id,sys_class_name,name,ip_address")
    assert "linux1" in line


def test_the_cmdb_shares_the_queue_database(queue_url: str) -> None:
    queue = open_queue(queue_url)
    try:
        with open_cmdb(queue_url) as cmdb:
            cmdb.reconcile(linux(), "d1")
        with open_cmdb(queue_url) as again:
            assert len(again.list_cis()) == 1
    finally:
        queue.close()


def test_a_read_of_a_missing_sqlite_database_is_refused(tmp_path: object) -> None:
    with pytest.raises(QueueError, match="no database"):
        open_cmdb(f"sqlite:///{tmp_path}/typo.db", must_exist=True)


def test_exploration_rows_are_kept_in_order_and_replaced_per_table(
    cmdb: CmdbStore,
) -> None:
    ci = cmdb.reconcile(linux(), "d1").ci or ""
    routes = tuple(
        {"destination": f"10.0.{n}.0/24", "next_hop": "198.18.0.1", "metric": str(n)} for n in range(12)
    )
    cmdb.record_exploration(
        ci,
        {
            "cmdb_ci_ip_route": routes,
            "cmdb_running_process": ({"pid": "1", "ppid": "0", "user_name": "root", "command": "init"},),
        },
        "d1",
    )
    assert [row["destination"] for row in cmdb.exploration(ci, "cmdb_ci_ip_route")] == [
        f"10.0.{n}.0/24" for n in range(12)
    ]  # in the order found
    assert cmdb.exploration(ci, "cmdb_ci_ip_route")[0]["interface"] is None  # a column not found
    cmdb.record_exploration(ci, {"cmdb_ci_ip_route": routes[:1]}, "d2")
    assert len(cmdb.exploration(ci, "cmdb_ci_ip_route")) == 1
    assert cmdb.exploration(ci, "cmdb_running_process")[0]["user_name"] == "root"  # not read again: kept
    with pytest.raises(ConfigError, match="not an exploration table"):
        cmdb.record_exploration(ci, {"cmdb_ci": ()})
