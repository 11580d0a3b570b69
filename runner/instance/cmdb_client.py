"""The CMDB read through an instance's Table API: what ``midprobe cmdb ... --queue https://...`` reads.

``InstanceCmdb`` answers the reads ``CmdbStore`` answers (``list_cis``, ``get``, ``relations``,
``history``, ``exploration``, ``export``) from the tables of :mod:`.cmdb_tables`, rebuilding the same CIs, so the
``cmdb`` commands print the same thing whichever way they reach the CMDB (times to the second).
"""

from __future__ import annotations

import builtins
from typing import Literal

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.cmdb.model import (
    ATTRIBUTE_FIELDS,
    CI_CLASSES,
    EXPLORATION_TABLES,
    Change,
    ConfigurationItem,
    NetworkInterface,
    Relation,
)
from midprobe.runner.cmdb.store import export_items
from midprobe.runner.instance.client import Closing, InstanceClient


def _optional(value: str) -> str | None:
    return value or None


def _check_id(text: str) -> str:
    """A CI sys_id put into a query: hex only, so it cannot change the query."""
    if not text or not all(c in "0123456789abcdef" for c in text):
        raise ConfigError(f"{text!r} is not a CI sys_id", field="CI")
    return text


class InstanceCmdb(Closing):
    """The instance's CMDB, read-only, through ``client``."""

    def __init__(self, client: InstanceClient) -> None:
        self._client = client

    def list_cis(self, *, sys_class_name: str | None = None) -> builtins.list[ConfigurationItem]:
        """Every live CI, by class then name (the instance's order)."""
        if sys_class_name is not None and sys_class_name not in CI_CLASSES:
            raise ConfigError(f"{sys_class_name!r} is not a CMDB class", field="--class")
        rows = self._client.table("cmdb_ci", f"sys_class_name={sys_class_name}" if sys_class_name else "")
        adapters: dict[str, builtins.list[dict[str, str]]] = {}
        for adapter in self._client.table("cmdb_ci_network_adapter"):
            adapters.setdefault(adapter["cmdb_ci"], []).append(adapter)
        addresses: dict[str, builtins.list[dict[str, str]]] = {}
        for address in self._client.table("cmdb_ip_address"):
            addresses.setdefault(address["cmdb_ci"], []).append(address)
        items = []
        for row in rows:
            on_ci = addresses.get(row["sys_id"], [])
            interfaces = tuple(
                NetworkInterface(
                    adapter["name"],
                    _optional(adapter["mac_address"]),
                    tuple(a["ip_address"] for a in on_ci if a["nic"] == adapter["sys_id"]),
                )
                for adapter in adapters.get(row["sys_id"], [])
            )
            items.append(
                ConfigurationItem(
                    sys_id=row["sys_id"],
                    sys_class_name=row["sys_class_name"],
                    name=row["name"],
                    ip_address=_optional(row["ip_address"]),
                    mac_address=_optional(row["mac_address"]),
                    serial_number=_optional(row["serial_number"]),
                    attributes={key: row[key] for key in ATTRIBUTE_FIELDS if row.get(key)},
                    first_discovered=row["first_discovered"],
                    last_discovered=row["last_discovered"],
                    last_discovery=_optional(row["last_discovery"]),
                    interfaces=interfaces,
                    ip_addresses=tuple(a["ip_address"] for a in on_ci),
                )
            )
        return items

    def get(self, reference: str) -> ConfigurationItem:
        """A CI by sys_id, a unique sys_id prefix, its name or an address; ConfigError if none or several."""
        text = reference.strip() if isinstance(reference, str) else ""
        if not text:
            raise ConfigError("name a CI by sys_id, sys_id prefix, name or IP address", field="CI")
        items = self.list_cis()
        exact = [item for item in items if item.sys_id == text]
        found = exact or [
            item
            for item in items
            if item.sys_id.startswith(text.lower())
            or item.name.lower() == text.lower()
            or item.ip_address == text
            or text in item.ip_addresses
        ]
        if not found:
            raise ConfigError(f"no CI matches {text!r}", field="CI")
        if len(found) > 1:
            names = ", ".join(f"{item.sys_id[:8]} ({item.name})" for item in found[:5])
            raise ConfigError(f"{text!r} matches {len(found)} CIs: {names}", field="CI")
        return found[0]

    def relations(self, ci: str | None = None) -> builtins.list[Relation]:
        query = f"parent={_check_id(ci)}^ORchild={ci}" if ci is not None else ""
        return [
            Relation(
                row["sys_id"],
                row["parent"],
                row["child"],
                row["type"],
                _optional(row["discovery"]),
                row["first_seen"],
                row["last_seen"],
            )
            for row in self._client.table("cmdb_rel_ci", query)
        ]

    def history(self, ci: str) -> builtins.list[Change]:
        return [
            Change(
                row["documentkey"],
                row["fieldname"],
                _optional(row["oldvalue"]),
                _optional(row["newvalue"]),
                row["sys_created_on"],
                _optional(row["discovery"]),
            )
            for row in self._client.table("sys_audit", f"documentkey={_check_id(ci)}")
        ]

    def exploration(self, ci: str, table: str) -> builtins.list[dict[str, str | None]]:
        """The rows the last exploration of ``ci`` put in ``table``, as ``CmdbStore.exploration``."""
        columns = EXPLORATION_TABLES[table]
        return [
            {column: _optional(row[column]) for column in columns}
            for row in self._client.table(table, f"cmdb_ci={_check_id(ci)}")
        ]

    def export(self, form: Literal["json", "csv"]) -> str:
        return export_items(self.list_cis(), form)

    def close(self) -> None:
        self._client.close()


__all__ = ["InstanceCmdb"]
