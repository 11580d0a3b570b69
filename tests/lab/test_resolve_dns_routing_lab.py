"""Resolve DNS routing end to end: two agents, names under two lab sub-domains, the lab's real dnsmasq.

`midprobe select --queue` picks the agent whose Resolve DNS value matches each name, and an agent
asked for a name outside its value refuses it with an error record, using the same selector code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.payload import decode_input_payload
from midprobe.runner.lab import Lab
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.support.trust import trust_every_agent

pytestmark = pytest.mark.lab

AGENTS = {"mid-sandiego": "sandiego", "mid-sanjose": "sanjose"}


def _capabilities_file(tmp_path: Path, lab: Lab) -> Path:
    path = tmp_path / "capabilities.toml"
    entries = [
        """
[[capability]]
name = "Resolve DNS"
value_test = "resolve_dns"
"""
    ]
    for agent, subdomain in AGENTS.items():
        entries.append(
            f"""
[[mid_server]]
name = "{agent}"
status = "Up"
validated = true
applications = ["ALL"]
ip_ranges = ["{lab.network}"]
capabilities = [{{ name = "Resolve DNS", value = "{subdomain}.{lab.dns_zone}" }}]
"""
        )
    path.write_text("".join(entries))
    return path


def _agent(lab: Lab, name: str, url: str, capabilities: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "midprobe.runner",
        "agent",
        "--name",
        name,
        "--queue",
        url,
        "--once",
        "--lab",
    ]
    argv += ["--capabilities", str(capabilities), "--poll-busy", "0.2", "--log-level", "warning"]
    argv += ["--state", str(capabilities.parent / f"state-{name}")]
    completed = lab.run(argv, check=False, timeout=120)
    assert completed.returncode == 0, completed.stderr


def test_each_name_is_resolved_only_by_the_agent_of_its_sub_domain(lab: Lab, tmp_path: Path) -> None:
    capabilities = _capabilities_file(tmp_path, lab)
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    named = [host for host in lab.hosts if host.fqdn]
    by_subdomain = {
        subdomain: [h.fqdn for h in named if h.fqdn and h.fqdn.endswith(f".{subdomain}.{lab.dns_zone}")]
        for subdomain in AGENTS.values()
    }
    assert all(by_subdomain.values()), "the lab has names under both sub-domains"

    # Each agent is asked for every name; it must answer its own and refuse the others.
    requests: dict[tuple[str, str], str] = {}
    with open_queue(url) as queue:
        for agent in AGENTS:
            for host in named:
                assert host.fqdn is not None
                record = new_output_record(
                    agent=agent,
                    topic="DNSLookupProbe",
                    source=host.fqdn,
                    parameters={"dns_servers": lab.dns_server},
                )
                requests[(agent, host.fqdn)] = queue.enqueue(record)
    for agent in AGENTS:
        _agent(lab, agent, url, capabilities)

    with open_queue(url) as queue:
        for (agent, fqdn), sys_id in requests.items():
            (answer,) = queue.list(queue_side="input", response_to=sys_id)
            mine = fqdn.endswith(f".{AGENTS[agent]}.{lab.dns_zone}")
            if mine:
                assert answer.error_string == "", (agent, fqdn, answer.error_string)
                lookup = next(decode_input_payload(answer.payload).results[0].iter("lookup"))
                assert lookup.get("status") == "ok"
                host = next(h for h in named if h.fqdn == fqdn)
                assert host.address in answer.payload
            else:
                assert f"may not resolve {fqdn!r}" in answer.error_string, (agent, fqdn)

    # The agents registered themselves; while they are Up, select --queue routes each name the same way.
    with open_queue(url) as queue:
        for agent in AGENTS:
            queue.set_agent_status(agent, "Up")
            queue.heartbeat_agent(agent)
    for subdomain_agent, subdomain in AGENTS.items():
        fqdn = by_subdomain[subdomain][0]
        completed = subprocess.run(
            [sys.executable, "-m", "midprobe.runner", "select", "--queue", url, "--json",
             "--capability", f"Resolve DNS={fqdn}"],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        result = json.loads(completed.stdout)
        assert result["mid_servers"] == [subdomain_agent], result
        assert result["step"] == "exact"
