"""Queues that trust every agent (``auto_validate``), for the suites about the queue's own semantics.

The MID lifecycle (validation, versions, pause and drain) is tested on queues that trust no
agent (tests/queue/test_lifecycle.py, tests/agent/test_lifecycle_agent.py); the suites about
claims, leases and answers run on queues where every agent is validated as it registers, and a
claim needs no registration, as before the lifecycle existed.
"""

from __future__ import annotations

from midprobe.runner.queue.lifecycle import SETTING_AUTO_VALIDATE
from midprobe.runner.queue.url import open_queue


def trust_every_agent(url: str) -> str:
    """Set ``auto_validate`` on the queue at ``url`` (creating it); returns ``url``."""
    with open_queue(url) as queue:
        queue.set_setting(SETTING_AUTO_VALIDATE, "true")
    return url
