"""The CMDB store: CIs, their interfaces and addresses, relations, merges, conflicts and history.

``reconcile(device, discovery)`` is the one write path for what discovery found: in one
transaction (serialised between processes) it finds the candidate CIs, lets
:mod:`.identification` decide, then inserts, updates (recording each changed attribute),
merges, or flags a conflict.
"""

# ruff: noqa: S608  (f-strings only splice in constant column lists and "?" marks)

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.cmdb.database import Clock, Executor, Row, SqlStore, open_database
from midprobe.runner.cmdb.identification import Decision, identify
from midprobe.runner.cmdb.model import (
    ATTRIBUTE_FIELDS,
    CI_CLASSES,
    EXPLORATION_TABLES,
    RELATION_TYPES,
    Change,
    ConfigurationItem,
    DiscoveredDevice,
    NetworkInterface,
    Relation,
    TableRows,
)

#: The exploration tables (one step: ``CREATE TABLE IF NOT EXISTS`` adds them to an older CMDB).
EXPLORATION_SCHEMA: Final = tuple(
    statement
    for table, columns in EXPLORATION_TABLES.items()
    for statement in (
        f"CREATE TABLE IF NOT EXISTS {table} (cmdb_ci TEXT NOT NULL, seq INTEGER NOT NULL, "
        + ", ".join(f"{column} TEXT" for column in columns)
        + ", discovery TEXT, last_seen TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {table}_ci ON {table} (cmdb_ci)",
    )
)

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS cmdb_ci (
        sys_id TEXT PRIMARY KEY, sys_class_name TEXT NOT NULL, name TEXT NOT NULL,
        ip_address TEXT, mac_address TEXT, serial_number TEXT, attributes TEXT NOT NULL,
        first_discovered TEXT NOT NULL, last_discovered TEXT NOT NULL, last_discovery TEXT,
        merged_into TEXT)""",
    "CREATE INDEX IF NOT EXISTS cmdb_ci_serial ON cmdb_ci (serial_number)",
    "CREATE INDEX IF NOT EXISTS cmdb_ci_class ON cmdb_ci (sys_class_name)",
    """CREATE TABLE IF NOT EXISTS cmdb_ci_network_adapter (
        cmdb_ci TEXT NOT NULL, name TEXT NOT NULL, mac_address TEXT, PRIMARY KEY (cmdb_ci, name))""",
    "CREATE INDEX IF NOT EXISTS cmdb_adapter_mac ON cmdb_ci_network_adapter (mac_address)",
    """CREATE TABLE IF NOT EXISTS cmdb_ci_ip_address (
        cmdb_ci TEXT NOT NULL, ip_address TEXT NOT NULL, nic TEXT, PRIMARY KEY (cmdb_ci, ip_address))""",
    "CREATE INDEX IF NOT EXISTS cmdb_ip_address ON cmdb_ci_ip_address (ip_address)",
    """CREATE TABLE IF NOT EXISTS cmdb_rel_ci (
        sys_id TEXT PRIMARY KEY, parent TEXT NOT NULL, child TEXT NOT NULL, type TEXT NOT NULL,
        discovery TEXT, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, UNIQUE (parent, child, type))""",
    """CREATE TABLE IF NOT EXISTS cmdb_audit (
        seq TEXT PRIMARY KEY, ci TEXT NOT NULL, field_name TEXT NOT NULL, old_value TEXT,
        new_value TEXT, at TEXT NOT NULL, discovery TEXT)""",
    "CREATE INDEX IF NOT EXISTS cmdb_audit_ci ON cmdb_audit (ci, seq)",
    """CREATE TABLE IF NOT EXISTS cmdb_merge (
        sys_id TEXT PRIMARY KEY, kept TEXT NOT NULL, absorbed TEXT NOT NULL, rule TEXT,
        at TEXT NOT NULL, discovery TEXT)""",
    """CREATE TABLE IF NOT EXISTS cmdb_conflict (
        sys_id TEXT PRIMARY KEY, device_name TEXT NOT NULL, ip_address TEXT, cis TEXT NOT NULL,
        reason TEXT NOT NULL, at TEXT NOT NULL, discovery TEXT)""",
    *EXPLORATION_SCHEMA,
)


_CI_COLUMNS: Final = (
    "sys_id, sys_class_name, name, ip_address, mac_address, serial_number, attributes, "
    "first_discovered, last_discovered, last_discovery"
)
#: Fields recorded in the history when they change, in this order.
TRACKED_FIELDS: Final = ("sys_class_name", "name", "ip_address", "mac_address", "serial_number")


def _new_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True)
class ReconcileResult:
    """What ``reconcile`` did: ``inserted``, ``updated`` (with ``changes`` and ``merged``), or ``conflict``."""

    action: Literal["inserted", "updated", "conflict"]
    ci: str | None
    rule: str | None
    changes: tuple[Change, ...] = ()
    merged: tuple[str, ...] = ()
    reason: str = ""


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class CmdbStore(SqlStore):
    """The CMDB in the queue's database. ``clock`` is injectable for tests."""

    schema = SCHEMA

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CmdbStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------

    def _load(self, tx: Executor, rows: Sequence[Row]) -> list[ConfigurationItem]:
        if not rows:
            return []
        ids = [row[0] for row in rows]
        adapters: dict[str, list[tuple[str, str | None]]] = {}
        for ci, name, mac in tx.execute(
            f"SELECT cmdb_ci, name, mac_address FROM cmdb_ci_network_adapter WHERE cmdb_ci IN ({_marks(len(ids))}) "
            "ORDER BY cmdb_ci, name",
            ids,
        ):
            adapters.setdefault(ci, []).append((name, mac))
        addresses: dict[str, list[tuple[str, str | None]]] = {}
        for ci, address, nic in tx.execute(
            f"SELECT cmdb_ci, ip_address, nic FROM cmdb_ci_ip_address WHERE cmdb_ci IN ({_marks(len(ids))}) "
            "ORDER BY cmdb_ci, ip_address",
            ids,
        ):
            addresses.setdefault(ci, []).append((address, nic))
        items = []
        for row in rows:
            sys_id = row[0]
            on_ci = addresses.get(sys_id, [])
            interfaces = tuple(
                NetworkInterface(name, mac, tuple(a for a, nic in on_ci if nic == name))
                for name, mac in adapters.get(sys_id, [])
            )
            items.append(
                ConfigurationItem(
                    sys_id=sys_id,
                    sys_class_name=row[1],
                    name=row[2],
                    ip_address=row[3],
                    mac_address=row[4],
                    serial_number=row[5],
                    attributes=json.loads(row[6]),
                    first_discovered=row[7],
                    last_discovered=row[8],
                    last_discovery=row[9],
                    interfaces=interfaces,
                    ip_addresses=tuple(a for a, _ in on_ci),
                )
            )
        return items

    def list_cis(self, *, sys_class_name: str | None = None) -> list[ConfigurationItem]:
        """Every live CI (merged ones left out), by class then name."""
        if sys_class_name is not None and sys_class_name not in CI_CLASSES:
            raise ConfigError(f"{sys_class_name!r} is not a CMDB class", field="--class")
        where, params = "merged_into IS NULL", []
        if sys_class_name is not None:
            where += " AND sys_class_name = ?"
            params.append(sys_class_name)
        with self._db.transaction() as tx:
            rows = tx.execute(
                f"SELECT {_CI_COLUMNS} FROM cmdb_ci WHERE {where} ORDER BY sys_class_name, name, sys_id",
                params,
            )
            return self._load(tx, rows)

    def get(self, reference: str) -> ConfigurationItem:
        """A CI by sys_id, a unique sys_id prefix, its name or an address; ConfigError if none or several."""
        text = reference.strip() if isinstance(reference, str) else ""
        if not text:
            raise ConfigError("name a CI by sys_id, sys_id prefix, name or IP address", field="CI")
        with self._db.transaction() as tx:
            rows = tx.execute(f"SELECT {_CI_COLUMNS} FROM cmdb_ci WHERE sys_id = ?", [text])
            if not rows:
                prefix = text.lower().replace("%", "").replace("_", "")
                rows = tx.execute(
                    f"SELECT {_CI_COLUMNS} FROM cmdb_ci WHERE merged_into IS NULL AND "
                    "(sys_id LIKE ? OR lower(name) = ? OR ip_address = ? OR sys_id IN "
                    "(SELECT cmdb_ci FROM cmdb_ci_ip_address WHERE ip_address = ?)) ORDER BY sys_id",
                    [prefix + "%", text.lower(), text, text],
                )
            if not rows:
                raise ConfigError(f"no CI matches {text!r}", field="CI")
            if len(rows) > 1:
                names = ", ".join(f"{r[0][:8]} ({r[2]})" for r in rows[:5])
                raise ConfigError(f"{text!r} matches {len(rows)} CIs: {names}", field="CI")
            return self._load(tx, rows)[0]

    def history(self, ci: str | None = None) -> list[Change]:
        """One CI's changes in the order they were made (every CI's, without ``ci``)."""
        where, params = ("WHERE ci = ? ", [ci]) if ci is not None else ("", [])
        with self._db.transaction() as tx:
            rows = tx.execute(
                f"SELECT ci, field_name, old_value, new_value, at, discovery FROM cmdb_audit {where}ORDER BY seq",
                params,
            )
        return [Change(*row) for row in rows]

    def relations(self, ci: str | None = None) -> list[Relation]:
        where, params = "", []
        if ci is not None:
            where, params = " WHERE parent = ? OR child = ?", [ci, ci]
        with self._db.transaction() as tx:
            rows = tx.execute(
                "SELECT sys_id, parent, child, type, discovery, first_seen, last_seen FROM cmdb_rel_ci"
                f"{where} ORDER BY type, parent, child",
                params,
            )
        return [Relation(*row) for row in rows]

    def owner_of(
        self, *, mac: str | None = None, address: str | None = None, name: str | None = None
    ) -> str | None:
        """The one live CI that has adapter (or primary) MAC ``mac``, else the one holding IP
        ``address``, else the one named ``name`` (case-insensitively; a short name also matches the
        CI's fully qualified one); None when none, or several, match."""
        with self._db.transaction() as tx:
            for value, table, column in (
                (mac, "cmdb_ci_network_adapter", "mac_address"),
                (address, "cmdb_ci_ip_address", "ip_address"),
            ):
                if not value:
                    continue
                rows = tx.execute(
                    f"SELECT sys_id FROM cmdb_ci WHERE merged_into IS NULL AND ({column} = ? OR sys_id IN "
                    f"(SELECT cmdb_ci FROM {table} WHERE {column} = ?))",
                    [value, value],
                )
                if len(rows) == 1:
                    return str(rows[0][0])
            if name:
                text = name.strip().lower()
                rows = tx.execute(
                    "SELECT sys_id FROM cmdb_ci WHERE merged_into IS NULL AND "
                    "(lower(name) = ? OR substr(lower(name), 1, ?) = ?)",
                    [text, len(text) + 1, text + "."],
                )
                if len(rows) == 1:
                    return str(rows[0][0])
        return None

    def exploration(self, ci: str, table: str) -> list[dict[str, str | None]]:
        """The rows the last exploration of ``ci`` put in ``table`` (one of ``EXPLORATION_TABLES``)."""
        columns = EXPLORATION_TABLES[table]
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT {', '.join(columns)} FROM {table} WHERE cmdb_ci = ? ORDER BY seq", [ci]
            )
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def conflicts(self) -> list[dict[str, object]]:
        with self._db.transaction() as tx:
            rows = tx.execute(
                "SELECT sys_id, device_name, ip_address, cis, reason, at, discovery FROM cmdb_conflict ORDER BY at"
            )
        keys = ("sys_id", "device_name", "ip_address", "cis", "reason", "at", "discovery")
        return [dict(zip(keys, (*row[:3], json.loads(row[3]), *row[4:]), strict=True)) for row in rows]

    def merges(self) -> list[dict[str, object]]:
        with self._db.transaction() as tx:
            rows = tx.execute("SELECT kept, absorbed, rule, at, discovery FROM cmdb_merge ORDER BY at")
        return [dict(zip(("kept", "absorbed", "rule", "at", "discovery"), row, strict=True)) for row in rows]

    # -- writing ---------------------------------------------------------------------------------

    def _candidates(self, tx: Executor, device: DiscoveredDevice) -> list[ConfigurationItem]:
        ids: set[str] = set()
        if device.identity_serial:
            ids.update(
                r[0]
                for r in tx.execute(
                    "SELECT sys_id FROM cmdb_ci WHERE serial_number = ?", [device.identity_serial]
                )
            )
        # A CI is a candidate when one of its adapters (or its own field) holds a MAC or an address of the device.
        for table, column, values in (
            ("cmdb_ci_network_adapter", "mac_address", sorted(device.mac_addresses)),
            ("cmdb_ci_ip_address", "ip_address", sorted(device.ip_addresses)),
        ):
            if values:
                marks = _marks(len(values))
                query = (
                    f"SELECT cmdb_ci FROM {table} WHERE {column} IN ({marks}) "
                    f"UNION SELECT sys_id FROM cmdb_ci WHERE {column} IN ({marks})"
                )
                ids.update(r[0] for r in tx.execute(query, [*values, *values]))
        if not ids:
            return []
        rows = tx.execute(
            f"SELECT {_CI_COLUMNS} FROM cmdb_ci WHERE merged_into IS NULL AND sys_id IN ({_marks(len(ids))})",
            sorted(ids),
        )
        return self._load(tx, rows)

    def _write_interfaces(self, tx: Executor, ci: str, device: DiscoveredDevice) -> None:
        tx.execute("DELETE FROM cmdb_ci_network_adapter WHERE cmdb_ci = ?", [ci])
        tx.execute("DELETE FROM cmdb_ci_ip_address WHERE cmdb_ci = ?", [ci])
        seen: set[str] = set()
        for interface in device.interfaces:
            tx.execute(
                "INSERT INTO cmdb_ci_network_adapter (cmdb_ci, name, mac_address) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                [ci, interface.name, interface.mac_address],
            )
            for address in interface.ip_addresses:
                if address not in seen:
                    seen.add(address)
                    tx.execute(
                        "INSERT INTO cmdb_ci_ip_address (cmdb_ci, ip_address, nic) VALUES (?, ?, ?)",
                        [ci, address, interface.name],
                    )
        if device.ip_address and device.ip_address not in seen:
            tx.execute(
                "INSERT INTO cmdb_ci_ip_address (cmdb_ci, ip_address, nic) VALUES (?, ?, NULL)",
                [ci, device.ip_address],
            )

    def reconcile(self, device: DiscoveredDevice, discovery: str | None = None) -> ReconcileResult:
        """Identify ``device`` and write it: insert, update with history, merge, or flag a conflict."""
        now = self._now()
        with self._db.transaction() as tx:
            decision = identify(device, self._candidates(tx, device))
            if decision.action == "conflict":
                return self._flag(tx, device, decision, now, discovery)
            if decision.action == "insert":
                sys_id = _new_id()
                tx.execute(
                    f"INSERT INTO cmdb_ci ({_CI_COLUMNS}) VALUES ({_marks(10)})",
                    [
                        sys_id,
                        device.sys_class_name,
                        device.name,
                        device.ip_address,
                        device.primary_mac,
                        device.identity_serial,
                        json.dumps(dict(sorted(device.attributes.items()))),
                        now,
                        now,
                        discovery,
                    ],
                )
                self._write_interfaces(tx, sys_id, device)
                return ReconcileResult("inserted", sys_id, None)
            assert decision.ci is not None
            return self._update(tx, decision, device, now, discovery)

    def _flag(
        self, tx: Executor, device: DiscoveredDevice, decision: Decision, now: str, discovery: str | None
    ) -> ReconcileResult:
        tx.execute(
            "INSERT INTO cmdb_conflict (sys_id, device_name, ip_address, cis, reason, at, discovery) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                _new_id(),
                device.name,
                device.ip_address,
                json.dumps(list(decision.conflicting)),
                decision.reason,
                now,
                discovery,
            ],
        )
        return ReconcileResult("conflict", None, decision.rule, reason=decision.reason)

    def _update(
        self, tx: Executor, decision: Decision, device: DiscoveredDevice, now: str, discovery: str | None
    ) -> ReconcileResult:
        assert decision.ci is not None
        (current,) = self._load(
            tx, tx.execute(f"SELECT {_CI_COLUMNS} FROM cmdb_ci WHERE sys_id = ?", [decision.ci])
        )
        new_values: dict[str, str | None] = {
            "sys_class_name": device.sys_class_name,
            "name": device.name,
            "ip_address": device.ip_address or current.ip_address,
            "mac_address": device.primary_mac or current.mac_address,
            "serial_number": device.identity_serial or current.serial_number,
        }
        old_values: dict[str, str | None] = {f: getattr(current, f) for f in TRACKED_FIELDS}
        attributes = dict(current.attributes)
        for key in ATTRIBUTE_FIELDS:  # a value not found this time is kept, never blanked
            if key in device.attributes:
                old_values[key] = attributes.get(key)
                new_values[key] = device.attributes[key]
                attributes[key] = device.attributes[key]
        old_addresses = ",".join(sorted(current.ip_addresses)) or None
        kept = (
            set(device.ip_addresses) if device.interfaces else {*current.ip_addresses, *device.ip_addresses}
        )
        new_addresses = ",".join(sorted(kept)) or old_addresses
        old_values["ip_addresses"], new_values["ip_addresses"] = old_addresses, new_addresses
        changes = tuple(
            Change(decision.ci, name, old_values[name], new, now, discovery)
            for name, new in new_values.items()
            if new != old_values[name]
        )
        for change in changes:
            tx.execute(
                "INSERT INTO cmdb_audit (seq, ci, field_name, old_value, new_value, at, discovery) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    self._ordered_key(now),
                    change.ci,
                    change.field_name,
                    change.old_value,
                    change.new_value,
                    now,
                    discovery,
                ],
            )
        tx.execute(
            "UPDATE cmdb_ci SET sys_class_name = ?, name = ?, ip_address = ?, mac_address = ?, serial_number = ?, "
            "attributes = ?, last_discovered = ?, last_discovery = ? WHERE sys_id = ?",
            [
                new_values["sys_class_name"],
                new_values["name"],
                new_values["ip_address"],
                new_values["mac_address"],
                new_values["serial_number"],
                json.dumps(dict(sorted(attributes.items()))),
                now,
                discovery,
                decision.ci,
            ],
        )
        if device.interfaces:  # what this discovery saw replaces the adapters; none seen keeps them
            self._write_interfaces(tx, decision.ci, device)
        elif device.ip_address and device.ip_address not in current.ip_addresses:
            tx.execute(
                "INSERT INTO cmdb_ci_ip_address (cmdb_ci, ip_address, nic) VALUES (?, ?, NULL)",
                [decision.ci, device.ip_address],
            )
        for absorbed in decision.absorbed:
            self._merge(tx, decision.ci, absorbed, decision.rule, now, discovery)
        return ReconcileResult("updated", decision.ci, decision.rule, changes, decision.absorbed)

    def record_exploration(
        self, ci: str, tables: Mapping[str, TableRows], discovery: str | None = None
    ) -> dict[str, int]:
        """Replace ``ci``'s rows in each table of ``tables`` with the ones given (tables not given
        keep theirs); how many rows each table now holds."""
        unknown = sorted(set(tables) - set(EXPLORATION_TABLES))
        if unknown:
            raise ConfigError(f"{unknown[0]!r} is not an exploration table", field="table")
        now = self._now()
        written: dict[str, int] = {}
        with self._db.transaction() as tx:
            for table, rows in tables.items():
                columns = EXPLORATION_TABLES[table]
                tx.execute(f"DELETE FROM {table} WHERE cmdb_ci = ?", [ci])
                insert = (
                    f"INSERT INTO {table} (cmdb_ci, seq, {', '.join(columns)}, discovery, last_seen) "
                    f"VALUES ({_marks(len(columns) + 4)})"
                )
                for seq, row in enumerate(rows):
                    tx.execute(insert, [ci, seq, *(row.get(column) for column in columns), discovery, now])
                written[table] = len(rows)
        return written

    def _merge(
        self, tx: Executor, kept: str, absorbed: str, rule: str | None, now: str, discovery: str | None
    ) -> None:
        """``absorbed`` turned out to be ``kept``: its relations move over, and the merge is recorded."""
        tx.execute("UPDATE cmdb_ci SET merged_into = ? WHERE sys_id = ?", [kept, absorbed])
        tx.execute("DELETE FROM cmdb_ci_network_adapter WHERE cmdb_ci = ?", [absorbed])
        tx.execute("DELETE FROM cmdb_ci_ip_address WHERE cmdb_ci = ?", [absorbed])
        for table in EXPLORATION_TABLES:  # the kept CI's next exploration finds them again
            tx.execute(f"DELETE FROM {table} WHERE cmdb_ci = ?", [absorbed])
        for sys_id, parent, child, kind in tx.execute(
            "SELECT sys_id, parent, child, type FROM cmdb_rel_ci WHERE parent = ? OR child = ?",
            [absorbed, absorbed],
        ):
            tx.execute("DELETE FROM cmdb_rel_ci WHERE sys_id = ?", [sys_id])
            parent = kept if parent == absorbed else parent
            child = kept if child == absorbed else child
            if parent != child:
                self._relate(tx, parent, child, kind, now, discovery)
        tx.execute(
            "INSERT INTO cmdb_merge (sys_id, kept, absorbed, rule, at, discovery) VALUES (?, ?, ?, ?, ?, ?)",
            [_new_id(), kept, absorbed, rule, now, discovery],
        )
        tx.execute(
            "INSERT INTO cmdb_audit (seq, ci, field_name, old_value, new_value, at, discovery) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [self._ordered_key(now), kept, "merged", None, absorbed, now, discovery],
        )

    def _relate(
        self, tx: Executor, parent: str, child: str, kind: str, now: str, discovery: str | None
    ) -> str:
        found = tx.execute(
            "SELECT sys_id FROM cmdb_rel_ci WHERE parent = ? AND child = ? AND type = ?",
            [parent, child, kind],
        )
        if found:
            tx.execute(
                "UPDATE cmdb_rel_ci SET last_seen = ?, discovery = ? WHERE sys_id = ?",
                [now, discovery, found[0][0]],
            )
            return str(found[0][0])
        sys_id = _new_id()
        tx.execute(
            "INSERT INTO cmdb_rel_ci (sys_id, parent, child, type, discovery, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [sys_id, parent, child, kind, discovery, now, now],
        )
        return sys_id

    def relate(self, parent: str, child: str, kind: str, discovery: str | None = None) -> str:
        """Record ``parent -[kind]-> child`` (once; seen again, its last_seen moves on)."""
        if kind not in RELATION_TYPES:
            raise ConfigError(
                f"{kind!r} is not a relation type ({', '.join(sorted(RELATION_TYPES))})", field="type"
            )
        if parent == child:
            raise ConfigError("a CI cannot be related to itself", field="child")
        now = self._now()
        with self._db.transaction() as tx:
            live = {
                r[0]
                for r in tx.execute(
                    "SELECT sys_id FROM cmdb_ci WHERE merged_into IS NULL AND sys_id IN (?, ?)",
                    [parent, child],
                )
            }
            missing = [ci for ci in (parent, child) if ci not in live]
            if missing:
                raise ConfigError(
                    f"no CI {missing[0]!r}", field="parent" if missing[0] == parent else "child"
                )
            return self._relate(tx, parent, child, kind, now, discovery)

    # -- export ----------------------------------------------------------------------------------

    def export(self, form: Literal["json", "csv"]) -> str:
        return export_items(self.list_cis(), form)


def export_items(items: Sequence[ConfigurationItem], form: Literal["json", "csv"]) -> str:
    """CIs keyed by ServiceNow's field names, as JSON or CSV text (pure)."""
    rows = [ci.as_row() for ci in items]
    if form == "json":
        return json.dumps(rows, indent=2) + "\n"
    buffer = io.StringIO()
    fields = (
        list(rows[0])
        if rows
        else list(ConfigurationItem("", "", "", None, None, None, {}, "", "", None).as_row())
    )
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def open_cmdb(url: str, *, must_exist: bool = False, clock: Clock | None = None) -> CmdbStore:
    """The CMDB in the database a queue URL names (the same database as the queue)."""
    return CmdbStore(open_database(url, must_exist=must_exist), clock=clock)


__all__ = ["SCHEMA", "CmdbStore", "ReconcileResult", "export_items", "open_cmdb"]
