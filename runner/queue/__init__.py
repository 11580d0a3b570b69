"""The ECC queue: one interface (``EccQueue``), three backends (SQLite embedded, PostgreSQL to scale out, HTTPS to an instance)."""

from midprobe.runner.queue.base import (
    AGENT_STATUSES,
    AgentRegistration,
    CredentialAffinity,
    EccQueue,
    Lease,
)
from midprobe.runner.queue.url import open_queue, redact_url

__all__ = [
    "AGENT_STATUSES",
    "AgentRegistration",
    "CredentialAffinity",
    "EccQueue",
    "Lease",
    "open_queue",
    "redact_url",
]
