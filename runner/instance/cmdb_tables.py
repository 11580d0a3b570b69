"""The CMDB in the Table API, read-only, with ServiceNow's table and field names.

``cmdb_ci`` (every live CI, its class in ``sys_class_name``), ``cmdb_ci_network_adapter``,
``cmdb_ip_address``, ``cmdb_rel_ci``, ``sys_audit`` (the per-attribute history) and each of the
exploration tables (``EXPLORATION_TABLES``: ARP entries, forwarding table, VLANs, routes, TCP
services and connections, disks, packages, processes; one row per entry, ``cmdb_ci`` its CI). Each is a view
of :class:`~midprobe.runner.cmdb.store.CmdbStore`'s reads, so the instance shows exactly what
``midprobe cmdb`` shows on the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from midprobe.runner.cmdb.model import CI_CLASSES, EXPLORATION_TABLES, ConfigurationItem
from midprobe.runner.cmdb.store import CmdbStore
from midprobe.runner.instance.query import FieldKind, Row
from midprobe.runner.instance.tables import SnapshotTable, derived_sys_id

_TIMES: Final = ("first_discovered", "last_discovered")

CMDB_CI_FIELDS: Final[dict[str, FieldKind]] = {
    name: ("datetime" if name in _TIMES else "string")
    for name in ConfigurationItem("", "", "", None, None, None, {}, "", "", None).as_row()
}
ADAPTER_FIELDS: Final[dict[str, FieldKind]] = dict.fromkeys(
    ("sys_id", "cmdb_ci", "name", "mac_address", "ip_address"), "string"
)
ADDRESS_FIELDS: Final[dict[str, FieldKind]] = dict.fromkeys(
    ("sys_id", "cmdb_ci", "ip_address", "nic"), "string"
)
RELATION_FIELDS: Final[dict[str, FieldKind]] = {
    **dict.fromkeys(("sys_id", "parent", "child", "type", "discovery"), "string"),
    "first_seen": "datetime",
    "last_seen": "datetime",
}
AUDIT_FIELDS: Final[dict[str, FieldKind]] = {
    **dict.fromkeys(
        ("sys_id", "tablename", "documentkey", "fieldname", "oldvalue", "newvalue", "discovery"), "string"
    ),
    "sys_created_on": "datetime",
}


def exploration_fields(table: str) -> dict[str, FieldKind]:
    """The Table API fields of exploration table ``table``: its columns, keyed by CI."""
    return dict.fromkeys(("sys_id", "cmdb_ci", *EXPLORATION_TABLES[table]), "string")


def shown_time(text: str | None) -> str:
    """A stored time (``YYYY-MM-DD HH:MM:SS.ffffff`` UTC) as the Table API shows times."""
    return (text or "")[:19]


def _text(value: object) -> str:
    return "" if value is None else str(value)


def ci_row(item: ConfigurationItem) -> Row:
    row = {name: _text(value) for name, value in item.as_row().items()}
    for name in _TIMES:
        row[name] = shown_time(row[name])
    return row


def adapter_sys_id(ci: str, name: str) -> str:
    return derived_sys_id("cmdb_ci_network_adapter", ci, name)


def adapter_rows(items: Sequence[ConfigurationItem]) -> list[Row]:
    return [
        {
            "sys_id": adapter_sys_id(item.sys_id, interface.name),
            "cmdb_ci": item.sys_id,
            "name": interface.name,
            "mac_address": _text(interface.mac_address),
            "ip_address": interface.ip_addresses[0] if interface.ip_addresses else "",
        }
        for item in items
        for interface in item.interfaces
    ]


def address_rows(items: Sequence[ConfigurationItem]) -> list[Row]:
    """Every address of every CI; ``nic`` is the adapter holding it (its sys_id), ``""`` for none."""
    rows: list[Row] = []
    for item in items:
        holder = {address: i.name for i in item.interfaces for address in i.ip_addresses}
        for address in item.ip_addresses:
            nic = holder.get(address)
            rows.append(
                {
                    "sys_id": derived_sys_id("cmdb_ip_address", item.sys_id, address),
                    "cmdb_ci": item.sys_id,
                    "ip_address": address,
                    "nic": adapter_sys_id(item.sys_id, nic) if nic is not None else "",
                }
            )
    return rows


def cmdb_tables(cmdb: CmdbStore) -> list[SnapshotTable]:
    """The CMDB tables over ``cmdb`` (each request reads the store afresh)."""

    def cis(equal: Mapping[str, str]) -> list[Row]:
        wanted = equal.get("sys_class_name")
        if wanted is not None and wanted not in CI_CLASSES:
            return []
        return [ci_row(item) for item in cmdb.list_cis(sys_class_name=wanted)]

    def relations(equal: Mapping[str, str]) -> list[Row]:
        return [
            {
                "sys_id": relation.sys_id,
                "parent": relation.parent,
                "child": relation.child,
                "type": relation.type,
                "discovery": _text(relation.discovery),
                "first_seen": shown_time(relation.first_seen),
                "last_seen": shown_time(relation.last_seen),
            }
            for relation in cmdb.relations()
        ]

    def audit(equal: Mapping[str, str]) -> list[Row]:
        changes = cmdb.history(equal.get("documentkey"))
        return [
            {
                "sys_id": derived_sys_id("sys_audit", change.ci, change.at, change.field_name, str(index)),
                "tablename": "cmdb_ci",
                "documentkey": change.ci,
                "fieldname": change.field_name,
                "oldvalue": _text(change.old_value),
                "newvalue": _text(change.new_value),
                "sys_created_on": shown_time(change.at),
                "discovery": _text(change.discovery),
            }
            for index, change in enumerate(changes)
        ]

    def explored(table: str) -> SnapshotTable:
        def rows(equal: Mapping[str, str]) -> list[Row]:
            wanted = equal.get("cmdb_ci")
            cis = [wanted] if wanted is not None else [item.sys_id for item in cmdb.list_cis()]
            return [
                {
                    "sys_id": derived_sys_id(table, ci, str(index)),
                    "cmdb_ci": ci,
                    **{key: _text(value) for key, value in row.items()},
                }
                for ci in cis
                for index, row in enumerate(cmdb.exploration(ci, table))
            ]

        return SnapshotTable(table, exploration_fields(table), rows)

    return [
        SnapshotTable("cmdb_ci", CMDB_CI_FIELDS, cis),
        SnapshotTable("cmdb_ci_network_adapter", ADAPTER_FIELDS, lambda _: adapter_rows(cmdb.list_cis())),
        SnapshotTable("cmdb_ip_address", ADDRESS_FIELDS, lambda _: address_rows(cmdb.list_cis())),
        SnapshotTable("cmdb_rel_ci", RELATION_FIELDS, relations),
        SnapshotTable("sys_audit", AUDIT_FIELDS, audit),
        *(explored(table) for table in EXPLORATION_TABLES),
    ]


__all__ = [
    "ADAPTER_FIELDS",
    "ADDRESS_FIELDS",
    "AUDIT_FIELDS",
    "CMDB_CI_FIELDS",
    "RELATION_FIELDS",
    "adapter_rows",
    "adapter_sys_id",
    "address_rows",
    "ci_row",
    "cmdb_tables",
    "exploration_fields",
    "shown_time",
]
