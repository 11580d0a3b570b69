"""The ECC queue: one interface (``EccQueue``), three backends (SQLite embedded, PostgreSQL to scale out, HTTPS to an instance).

Import from here; each name's module is loaded when it is first used, so the private in-memory queue
of ``midprobe scan`` (``sqlite.py`` under ``base.py``) does not load the URL parsing of ``url.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from midprobe.probes.lazy import lazy_names

if TYPE_CHECKING:
    from midprobe.runner.queue.base import (
        AGENT_STATUSES,
        AgentRegistration,
        CredentialAffinity,
        EccQueue,
        Lease,
    )
    from midprobe.runner.queue.url import open_queue, redact_url

#: Which submodule defines each name of the package.
_DEFINED_IN: dict[str, str] = {
    "AGENT_STATUSES": "base",
    "AgentRegistration": "base",
    "CredentialAffinity": "base",
    "EccQueue": "base",
    "Lease": "base",
    "open_queue": "url",
    "redact_url": "url",
}


if not TYPE_CHECKING:  # the type checker reads the names above, and flags any other
    __getattr__ = lazy_names(__name__, _DEFINED_IN)


__all__ = [
    "AGENT_STATUSES",
    "AgentRegistration",
    "CredentialAffinity",
    "EccQueue",
    "Lease",
    "open_queue",
    "redact_url",
]
