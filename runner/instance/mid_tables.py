"""The MID tables in the Table API, read-only: capabilities, IP ranges, applications, clusters, issues, upgrades.

Capabilities, IP ranges and applications are what each agent registered (the queue's agent
registry, as ``ecc_agent`` shows it), laid out as ServiceNow's many-to-many tables; clusters are
the instance's own (``instance serve --capabilities FILE``); issues and upgrades are the
``ecc_agent_issue`` and ``ecc_agent_upgrade`` tables of the queue's database. ``agent`` columns hold the agent's ``ecc_agent`` sys_id,
``agent_name`` its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Final

from midprobe.capabilities.config import CapabilityConfig
from midprobe.runner.cmdb.database import Database
from midprobe.runner.instance.query import FieldKind, Row
from midprobe.runner.instance.tables import SnapshotTable, agent_sys_id, derived_sys_id, display_time
from midprobe.runner.queue.base import AgentRegistration, EccQueue


def _strings(*names: str) -> dict[str, FieldKind]:
    return dict.fromkeys(names, "string")


CAPABILITY_FIELDS: Final = _strings("sys_id", "capability", "value")
CAPABILITY_M2M_FIELDS: Final = _strings(
    "sys_id", "agent", "agent_name", "capability", "capability_name", "value"
)
IP_RANGE_FIELDS: Final = _strings("sys_id", "agent", "agent_name", "ip_range", "type")
APPLICATION_FIELDS: Final = _strings("sys_id", "agent", "agent_name", "application")
CLUSTER_FIELDS: Final = _strings("sys_id", "name", "type")
CLUSTER_MEMBER_FIELDS: Final[dict[str, FieldKind]] = {
    **_strings("sys_id", "cluster", "cluster_name", "agent_name"),
    "order": "integer",
}
ISSUE_FIELDS: Final[dict[str, FieldKind]] = {
    **_strings("sys_id", "agent", "agent_name", "kind", "source", "message", "state"),
    "count": "integer",
    "sys_created_on": "datetime",
    "last_detected": "datetime",
}

UPGRADE_FIELDS: Final[dict[str, FieldKind]] = {
    **_strings("sys_id", "agent", "agent_name", "from_version", "to_version", "state", "reason"),
    "started": "datetime",
    "ended": "datetime",
}


def _owner(agent: AgentRegistration) -> dict[str, str]:
    return {"agent": agent_sys_id(agent.name), "agent_name": agent.short_name}


def capability_rows(agents: Sequence[AgentRegistration]) -> list[Row]:
    pairs = sorted({pair for agent in agents for pair in agent.capabilities})
    return [
        {"sys_id": derived_sys_id("ecc_agent_capability", name, value), "capability": name, "value": value}
        for name, value in pairs
    ]


def capability_m2m_rows(agents: Sequence[AgentRegistration]) -> list[Row]:
    return [
        {
            "sys_id": derived_sys_id("ecc_agent_capability_m2m", agent.name, name, value),
            **_owner(agent),
            "capability": derived_sys_id("ecc_agent_capability", name, value),
            "capability_name": name,
            "value": value,
        }
        for agent in agents
        for name, value in agent.capabilities
    ]


def ip_range_rows(agents: Sequence[AgentRegistration]) -> list[Row]:
    return [
        {
            "sys_id": derived_sys_id("ecc_agent_ip_range_m2m", agent.name, kind, ip_range),
            **_owner(agent),
            "ip_range": ip_range,
            "type": kind,
        }
        for agent in agents
        for kind, ranges in (("include", agent.ip_ranges), ("exclude", agent.excluded_ip_ranges))
        for ip_range in ranges
    ]


def application_rows(agents: Sequence[AgentRegistration]) -> list[Row]:
    return [
        {
            "sys_id": derived_sys_id("ecc_agent_application_m2m", agent.name, application),
            **_owner(agent),
            "application": application,
        }
        for agent in agents
        for application in agent.applications
    ]


def cluster_rows(config: CapabilityConfig | None) -> tuple[list[Row], list[Row]]:
    """``ecc_agent_cluster`` and ``ecc_agent_cluster_member_m2m`` rows of the instance's clusters."""
    clusters: list[Row] = []
    members: list[Row] = []
    for cluster in config.clusters if config is not None else ():
        cluster_id = derived_sys_id("ecc_agent_cluster", cluster.name)
        clusters.append({"sys_id": cluster_id, "name": cluster.name, "type": cluster.type})
        members.extend(
            {
                "sys_id": derived_sys_id("ecc_agent_cluster_member_m2m", cluster.name, member.name),
                "cluster": cluster_id,
                "cluster_name": cluster.name,
                "agent_name": member.name,
                "order": str(member.order),
            }
            for member in cluster.members
        )
    return clusters, members


def _time(value: object) -> str:
    if isinstance(value, datetime):
        return display_time(value)
    try:
        return display_time(datetime.fromisoformat(str(value)))
    except ValueError:
        return str(value or "")[:19]


def issue_rows(database: Database) -> list[Row]:
    with database.transaction(write=False) as tx:
        found = tx.execute(
            "SELECT sys_id, agent, kind, source, message, state, count, sys_created_on, sys_updated_on "
            "FROM ecc_agent_issue ORDER BY sys_created_on, sys_id"
        )
    rows: list[Row] = []
    for sys_id, agent, kind, source, message, state, count, created, detected in found:
        name = str(agent).removeprefix("mid.server.")
        rows.append(
            {
                "sys_id": str(sys_id),
                "agent": agent_sys_id(name),
                "agent_name": name,
                "kind": str(kind),
                "source": str(source),
                "message": str(message),
                "state": str(state),
                "count": str(count),
                "sys_created_on": _time(created),
                "last_detected": _time(detected),
            }
        )
    return rows


def upgrade_rows(queue: EccQueue) -> list[Row]:
    """``ecc_agent_upgrade``: every MID upgrade asked for or done, oldest first."""
    return [
        {
            "sys_id": upgrade.sys_id,
            "agent": agent_sys_id(upgrade.short_agent),
            "agent_name": upgrade.short_agent,
            "from_version": upgrade.from_version,
            "to_version": upgrade.to_version,
            "state": upgrade.state,
            "reason": upgrade.reason,
            "started": display_time(upgrade.started),
            "ended": "" if upgrade.ended is None else display_time(upgrade.ended),
        }
        for upgrade in reversed(queue.list_upgrades())
    ]


def _from_registry(
    queue: EccQueue, rows: Callable[[Sequence[AgentRegistration]], list[Row]]
) -> Callable[[Mapping[str, str]], list[Row]]:
    return lambda equal: rows(queue.list_agents())


def mid_tables(queue: EccQueue, database: Database, config: CapabilityConfig | None) -> list[SnapshotTable]:
    """The MID tables: registrations read from ``queue``, clusters from ``config``, issues from ``database``."""
    clusters, members = cluster_rows(config)
    return [
        SnapshotTable("ecc_agent_capability", CAPABILITY_FIELDS, _from_registry(queue, capability_rows)),
        SnapshotTable(
            "ecc_agent_capability_m2m", CAPABILITY_M2M_FIELDS, _from_registry(queue, capability_m2m_rows)
        ),
        SnapshotTable("ecc_agent_ip_range_m2m", IP_RANGE_FIELDS, _from_registry(queue, ip_range_rows)),
        SnapshotTable(
            "ecc_agent_application_m2m", APPLICATION_FIELDS, _from_registry(queue, application_rows)
        ),
        SnapshotTable("ecc_agent_cluster", CLUSTER_FIELDS, lambda equal: clusters),
        SnapshotTable("ecc_agent_cluster_member_m2m", CLUSTER_MEMBER_FIELDS, lambda equal: members),
        SnapshotTable("ecc_agent_issue", ISSUE_FIELDS, lambda equal: issue_rows(database)),
        SnapshotTable("ecc_agent_upgrade", UPGRADE_FIELDS, lambda equal: upgrade_rows(queue)),
    ]


__all__ = [
    "application_rows",
    "capability_m2m_rows",
    "capability_rows",
    "cluster_rows",
    "ip_range_rows",
    "issue_rows",
    "mid_tables",
    "upgrade_rows",
]
