"""The CMDB the discovery phases fill: configuration items, identification, relations, history.

``model`` holds the typed records, ``identification`` the pure identifier rules,
``store`` keeps them in the queue's database (SQLite or PostgreSQL). See docs/cmdb.md.
"""

from __future__ import annotations

from midprobe.runner.cmdb.identification import Decision, identify
from midprobe.runner.cmdb.model import (
    CI_CLASSES,
    RELATION_TYPES,
    Change,
    ConfigurationItem,
    DiscoveredDevice,
    NetworkInterface,
    Relation,
)
from midprobe.runner.cmdb.store import CmdbStore, ReconcileResult, open_cmdb

__all__ = [
    "CI_CLASSES",
    "RELATION_TYPES",
    "Change",
    "CmdbStore",
    "ConfigurationItem",
    "Decision",
    "DiscoveredDevice",
    "NetworkInterface",
    "ReconcileResult",
    "Relation",
    "identify",
    "open_cmdb",
]
