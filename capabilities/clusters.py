"""MID clusters: Load Balance (a random member among the best suitable) and Failover (lowest order first).

A cluster is ``[[cluster]]`` in a capabilities file::

    [[cluster]]
    name = "east"
    type = "Failover"                # or "Load Balance"
    members = [{ name = "mid-a", order = 1 }, { name = "mid-b", order = 2 }]

When a member fails, its waiting work moves to a member that holds a superset of the failed
member's capabilities; ``Command`` and ``SystemCommand`` never move (they were meant for that
MID's own host).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from midprobe.capabilities.errors import ConfigError
from midprobe.capabilities.model import MidServer, MidStatus

ClusterType = Literal["Load Balance", "Failover"]
CLUSTER_TYPES: Final[tuple[ClusterType, ...]] = ("Load Balance", "Failover")
#: Topics that run on the MID's own host: never redirected to another member.
NEVER_REDIRECTED: Final = frozenset({"Command", "SystemCommand"})
#: Statuses discovery accepts on a MID.
DISCOVERY_STATUSES: Final = frozenset({MidStatus.UP, MidStatus.DEGRADED})


@dataclass(frozen=True)
class ClusterMember:
    name: str
    order: int = 100


@dataclass(frozen=True)
class MidCluster:
    name: str
    type: ClusterType
    members: tuple[ClusterMember, ...]

    def __post_init__(self) -> None:
        if self.type not in CLUSTER_TYPES:
            raise ConfigError(
                f"{self.type!r} is not a cluster type ({', '.join(CLUSTER_TYPES)})", field="type"
            )
        names = [member.name for member in self.members]
        if not names:
            raise ConfigError("a cluster needs at least one member", field="members")
        if len(set(names)) != len(names):
            raise ConfigError("a MID is listed twice among the members", field="members")

    @property
    def member_names(self) -> tuple[str, ...]:
        return tuple(member.name for member in self.members)

    def order_of(self, name: str) -> int:
        for member in self.members:
            if member.name == name:
                return member.order
        raise ConfigError(f"{name!r} is not a member of cluster {self.name!r}", field="members")

    def pick(self, suitable: Iterable[str], *, rng: random.Random | None = None) -> str | None:
        """Of the suitable members: Failover takes the lowest order, Load Balance one at random."""
        members = sorted((self.order_of(name), name) for name in suitable if name in self.member_names)
        if not members:
            return None
        if self.type == "Failover":
            return members[0][1]
        return (rng or random).choice([name for _, name in members])

    def replacements(self, failed: MidServer, mids: Sequence[MidServer], topic: str) -> list[MidServer]:
        """The members that may take over ``failed``'s waiting ``topic`` work: Up or Degraded, validated,
        holding a superset of its capabilities (``Nmap`` included); none for ``Command``/``SystemCommand``."""
        if topic in NEVER_REDIRECTED or failed.name not in self.member_names:
            return []
        needed = _held(failed)
        return [
            mid
            for mid in mids
            if mid.name != failed.name
            and mid.name in self.member_names
            and mid.status in DISCOVERY_STATUSES
            and mid.validated
            and needed <= _held(mid)
        ]

    def replacement(
        self, failed: MidServer, mids: Sequence[MidServer], topic: str, *, rng: random.Random | None = None
    ) -> MidServer | None:
        """The member that takes over (by the cluster's rule among :meth:`replacements`), or None."""
        able = {mid.name: mid for mid in self.replacements(failed, mids, topic)}
        chosen = self.pick(able, rng=rng)
        return able[chosen] if chosen is not None else None


def _held(mid: MidServer) -> set[tuple[str, str]]:
    held = {(c.name, c.value) for c in mid.capabilities}
    if mid.nmap_installed:
        held.add(("Nmap", ""))
    return held


def parse_clusters(value: object, *, source: str = "<config>") -> tuple[MidCluster, ...]:
    """``[[cluster]]`` tables -> clusters; every error names the entry and the field."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConfigError("must be a list of tables, written [[cluster]]", source=source, entry="cluster")
    clusters: list[MidCluster] = []
    seen: set[str] = set()
    for index, table in enumerate(value, start=1):
        entry = f"cluster[{index}]"
        unknown = sorted(set(table) - {"name", "type", "members"})
        if unknown:
            raise ConfigError(
                "unknown key; allowed here: name, type, members", source=source, entry=entry, field=unknown[0]
            )
        name = table.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("must be a non-empty string", source=source, entry=entry, field="name")
        entry = f'{entry} "{name}"'
        if name in seen:
            raise ConfigError(
                "a cluster of this name is defined twice", source=source, entry=entry, field="name"
            )
        seen.add(name)
        members = table.get("members")
        if not isinstance(members, list) or not all(isinstance(m, str | dict) for m in members):
            raise ConfigError(
                "must be a list of MID names or {name, order} tables",
                source=source,
                entry=entry,
                field="members",
            )
        parsed = []
        for position, member in enumerate(members, start=1):
            item = {"name": member} if isinstance(member, str) else member
            member_name, order = item.get("name"), item.get("order", position)
            if not isinstance(member_name, str) or not member_name.strip() or set(item) - {"name", "order"}:
                raise ConfigError(
                    "a member is a MID name or {name, order}",
                    source=source,
                    entry=entry,
                    field=f"members[{position}]",
                )
            if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 1_000_000:
                raise ConfigError(
                    "order must be a whole number from 0 to 1000000",
                    source=source,
                    entry=entry,
                    field=f"members[{position}].order",
                )
            parsed.append(ClusterMember(member_name.strip().removeprefix("mid.server."), order))
        kind = table.get("type")
        if kind not in CLUSTER_TYPES:
            raise ConfigError(
                f"must be one of {', '.join(CLUSTER_TYPES)}", source=source, entry=entry, field="type"
            )
        try:
            clusters.append(MidCluster(name.strip(), kind, tuple(parsed)))
        except ConfigError as error:
            core = error.message.removeprefix(f"{error.field}: ") if error.field else error.message
            raise ConfigError(core, source=source, entry=entry, field=error.field) from None
    return tuple(clusters)


def cluster_named(clusters: Iterable[MidCluster], name: str) -> MidCluster:
    for cluster in clusters:
        if cluster.name == name:
            return cluster
    known = ", ".join(c.name for c in clusters) or "none"
    raise ConfigError(f"no cluster named {name!r} (defined: {known})", field="mid")


__all__ = [
    "CLUSTER_TYPES",
    "NEVER_REDIRECTED",
    "ClusterMember",
    "MidCluster",
    "cluster_named",
    "parse_clusters",
]
