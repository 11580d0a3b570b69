"""``discover run --local`` starts orchestrating only once its own embedded agent is registered and Up."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.cli import discover
from midprobe.runner.queue.base import AgentRegistration
from midprobe.runner.queue.url import open_queue, sqlite_url


def test_an_earlier_runs_registration_is_not_taken_for_the_embedded_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    monkeypatch.setattr(discover, "AGENT_START_SECONDS", 0.3)
    with open_queue(url) as queue:  # what the previous run's agent left behind
        queue.register_agent(
            AgentRegistration("local-x", status="Down", host=platform.node(), pid=os.getpid() + 1)
        )
    with pytest.raises(ConfigError, match="did not register"):
        discover._wait_for_agent(url, "local-x")
    with open_queue(url) as queue:  # this process's agent registers
        queue.register_agent(AgentRegistration("local-x", host=platform.node(), pid=os.getpid()))
    discover._wait_for_agent(url, "local-x")
