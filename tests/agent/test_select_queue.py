"""`midprobe select --queue`: choose among live agents registered in the ECC queue,
and the agent's own Resolve DNS routing, which uses the same selector code."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from midprobe.capabilities.nmap import NmapDetection
from midprobe.probes.registry import default_registry
from midprobe.runner.agent.config import AgentConfig
from midprobe.runner.agent.identity import build_agent_setup
from midprobe.runner.agent.probe_runner import ProbeRunner
from midprobe.runner.cli import main
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.record import utc_now
from midprobe.runner.queue import sqlite as sqlite_queue
from midprobe.runner.queue.base import AgentRegistration
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.support.trust import trust_every_agent

SANDIEGO = "sandiego.lab.example.test"
SANJOSE = "sanjose.lab.example.test"


def _select(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["select", *args])
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


@pytest.fixture
def queue_url(tmp_path: Path) -> str:
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    with open_queue(url) as queue:
        queue.register_agent(
            AgentRegistration(
                "mid-sandiego", capabilities=(("Resolve DNS", SANDIEGO), ("SSH", "")), nmap_installed=True
            )
        )
        queue.register_agent(
            AgentRegistration("mid-sanjose", capabilities=(("Resolve DNS", SANJOSE), ("SSH", "")))
        )
        queue.register_agent(AgentRegistration("mid-gone", capabilities=(("SSH", ""),)))
    return url


def test_resolve_dns_routes_each_name_to_the_agent_of_its_sub_domain(
    queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _select(capsys, "--queue", queue_url, "--capability", f"Resolve DNS=linux1.{SANDIEGO}")
    assert (code, out.split()) == (0, ["mid-sandiego"])
    code, out, _ = _select(capsys, "--queue", queue_url, "--capability", f"Resolve DNS=web1.{SANJOSE}")
    assert (code, out.split()) == (0, ["mid-sanjose"])


def test_nmap_capability_comes_from_the_agents_own_detection(
    queue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _select(capsys, "--queue", queue_url, "--capability", "Nmap", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["mid_servers"] == ["mid-sandiego"]
    assert result["step"] == "exact"
    assert "mid-sanjose" in result["rejected"]


def test_an_agent_that_stopped_heartbeating_counts_as_down(
    queue_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # an hour on the queue's clock: two agents heartbeat again, mid-gone's last one stays an hour old
    an_hour_later = utc_now() + timedelta(hours=1)
    monkeypatch.setattr(sqlite_queue, "utc_now", lambda: an_hour_later)
    with open_queue(queue_url) as queue:
        queue.heartbeat_agent("mid-sandiego")
        queue.heartbeat_agent("mid-sanjose")
    code, out, _ = _select(
        capsys, "--queue", queue_url, "--capability", "SSH", "--live-within", "60", "--json"
    )
    assert code == 0
    result = json.loads(out)
    assert sorted(result["mid_servers"]) == ["mid-sandiego", "mid-sanjose"]
    assert "Down" in result["rejected"]["mid-gone"]


def test_undefined_capability_is_bad_argument(queue_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _select(capsys, "--queue", queue_url, "--capability", "Teleport")
    assert code == 2
    assert "BadArgumentException" in err


def test_select_needs_a_config_or_a_queue(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _select(capsys, "--capability", "SSH")
    assert code == 2
    assert "--queue" in err


def test_agent_refuses_to_resolve_names_outside_its_resolve_dns_value(tmp_path: Path) -> None:
    config_file = tmp_path / "caps.toml"
    config_file.write_text(
        f"""
[[capability]]
name = "Resolve DNS"
value_test = "resolve_dns"
[[mid_server]]
name = "mid-sandiego"
status = "Up"
validated = true
applications = ["ALL"]
ip_ranges = ["ALL"]
capabilities = [{{ name = "Resolve DNS", value = "{SANDIEGO}" }}]
"""
    )
    config = AgentConfig(name="mid-sandiego", capabilities_file=config_file)
    setup = build_agent_setup(config, detect=lambda: NmapDetection(False, None, None, "not installed (test)"))
    runner = ProbeRunner(registry=default_registry(), identity=setup.identity)
    assert setup.registration.capabilities == (("Resolve DNS", SANDIEGO),)
    assert "Nmap" not in setup.identity.capabilities

    refused = new_output_record(agent="mid-sandiego", topic="DNSLookupProbe", source=f"web1.{SANJOSE}")
    answer = asyncio.run(runner.answer(refused))
    assert f"may not resolve 'web1.{SANJOSE}'" in answer.error_string
    assert f"Resolve DNS:{SANDIEGO}" in answer.error_string

    # Names given in the `names` parameter are routed the same way as the source.
    sneaky = new_output_record(
        agent="mid-sandiego",
        topic="DNSLookupProbe",
        source=f"linux1.{SANDIEGO}",
        parameters={"names": f"linux1.{SANDIEGO}, web1.{SANJOSE}"},
    )
    answer = asyncio.run(runner.answer(sneaky))
    assert f"may not resolve 'web1.{SANJOSE}'" in answer.error_string


def test_agent_without_a_capabilities_file_resolves_any_name() -> None:
    setup = build_agent_setup(
        AgentConfig(name="anywhere"),
        detect=lambda: NmapDetection(True, "/usr/bin/nmap", "7.93", "found (test)"),
    )
    assert setup.identity.routing_check is not None
    assert setup.identity.routing_check("DNSLookupProbe", f"web1.{SANJOSE}", {}) is None
    assert "Nmap" in setup.identity.capabilities
    assert ("Nmap", "") in setup.registration.capabilities
