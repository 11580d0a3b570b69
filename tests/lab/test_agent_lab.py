"""The real agent inside the lab's scanner namespace, through an SQLite ECC queue:
credentialed SSH with affinity shared through the queue, and the lab safety policy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.payload import ProbeRequest, decode_input_payload, encode_multiprobe_payload
from midprobe.runner.lab import Lab
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.support.trust import trust_every_agent

pytestmark = pytest.mark.lab

WRONG_PASSWORD = "not-the-password-7f3a"


def _run_agent(lab: Lab, url: str, *extra: str, env: dict[str, str] | None = None) -> str:
    argv = [sys.executable, "-m", "midprobe.runner", "agent", "--name", "lab-agent", "--queue", url]
    argv += ["--once", "--lab", "--poll-busy", "0.2", "--log-level", "warning", *extra]
    argv += ["--state", str(Path(url.removeprefix("sqlite:///")).parent / "mid-state")]
    completed = lab.run(argv, check=False, timeout=120, env=env)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_agent_runs_ssh_with_the_first_credential_that_works_and_shares_the_affinity(
    lab: Lab, tmp_path: Path
) -> None:
    linux = lab.host("linux1")
    credentials = tmp_path / "credentials.toml"
    credentials.write_text(
        f"""
[[credential]]
id = "wrong-password"
type = "ssh_password"
user = "{lab.credentials.ssh_user}"
password_env = "MP_TEST_WRONG"
order = 1

[[credential]]
id = "lab-key"
type = "ssh_private_key"
user = "{lab.credentials.ssh_user}"
private_key_file = "{lab.credentials.ssh_private_key}"
order = 2
"""
    )
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    request = new_output_record(agent="lab-agent", topic="SSHCommand", name="uname -a", source=linux.address)
    with open_queue(url) as queue:
        queue.enqueue(request)

    _run_agent(lab, url, "--credentials", str(credentials), env={"MP_TEST_WRONG": WRONG_PASSWORD})

    with open_queue(url) as queue:
        (answer,) = queue.list(queue_side="input", response_to=request.sys_id)
        affinity = queue.get_affinity(linux.address, "ssh")
    assert answer.error_string == ""
    decoded = decode_input_payload(answer.payload)
    stdout = "".join(element.findtext("stdout") or "" for element in decoded.results)
    assert stdout.startswith("Linux ")
    assert affinity is not None
    assert affinity.credential_id == "lab-key"
    assert "lab-key" in answer.payload, "the payload names the credential that worked, by id"
    for secret in (WRONG_PASSWORD, *lab.credentials.secrets()):
        assert secret not in answer.payload


def test_agent_in_lab_mode_refuses_targets_outside_the_lab(lab: Lab, tmp_path: Path) -> None:
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    outside = new_output_record(agent="lab-agent", topic="SSHCommand", name="uname -a", source="10.20.30.40")
    with open_queue(url) as queue:
        queue.enqueue(outside)

    _run_agent(lab, url)

    with open_queue(url) as queue:
        (answer,) = queue.list(queue_side="input", response_to=outside.sys_id)
    assert "outside the allowed networks" in answer.error_string


def test_multiprobe_identifies_a_host_over_ssh_and_snmp_in_one_request(lab: Lab, tmp_path: Path) -> None:
    linux = lab.host("linux1")
    credentials = tmp_path / "credentials.toml"
    credentials.write_text(
        f"""
[[credential]]
id = "lab-key"
type = "ssh_private_key"
user = "{lab.credentials.ssh_user}"
private_key_file = "{lab.credentials.ssh_private_key}"

[[credential]]
id = "lab-community"
type = "snmp"
community = "{lab.credentials.snmp_community}"
version = "2c"
"""
    )
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    request = new_output_record(agent="lab-agent", topic="MultiProbe", source=linux.address)
    request = request.with_changes(
        payload=encode_multiprobe_payload([ProbeRequest("SSHClassify"), ProbeRequest("SNMPClassify")])
    )
    with open_queue(url) as queue:
        queue.enqueue(request)

    _run_agent(lab, url, "--credentials", str(credentials))

    with open_queue(url) as queue:
        (answer,) = queue.list(queue_side="input", response_to=request.sys_id)
    assert answer.error_string == ""
    results = decode_input_payload(answer.payload).results
    probes = [result.get("probe", "") for result in results]
    assert list(dict.fromkeys(probes)) == ["SSHClassify", "SNMPClassify"], "grouped, in request order"
    assert probes == sorted(probes, key=["SSHClassify", "SNMPClassify"].index)
    assert all(result.get("error") is None for result in results), answer.payload[:2000]
    assert "cmdb_ci_linux_server" in answer.payload
    assert "lab-key" in answer.payload
    assert "lab-community" in answer.payload
    for secret in lab.credentials.secrets():
        assert secret not in answer.payload


def test_agent_in_lab_mode_resolves_names_only_through_the_lab_dns_server(lab: Lab, tmp_path: Path) -> None:
    linux1 = lab.host("linux1")
    assert linux1.fqdn is not None
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    without = new_output_record(
        agent="lab-agent", topic="Shazzam", source=linux1.fqdn, parameters=[("ports", "22")]
    )
    with open_queue(url) as queue:
        queue.enqueue(without)
    _run_agent(lab, url)  # no --dns-server: a name is refused, the system resolver never asked
    with open_queue(url) as queue:
        (refused,) = queue.list(queue_side="input", response_to=without.sys_id)
    assert "lab's DNS server" in refused.error_string

    named = new_output_record(
        agent="lab-agent", topic="Shazzam", source=linux1.fqdn, parameters=[("ports", "22")]
    )
    with open_queue(url) as queue:
        queue.enqueue(named)
    _run_agent(lab, url, "--dns-server", lab.dns_server)
    with open_queue(url) as queue:
        (answer,) = queue.list(queue_side="input", response_to=named.sys_id)
        payload = queue.read_payload(answer)
    assert answer.error_string == ""
    assert f'ip="{linux1.address}"' in payload
    assert 'port="22"' in payload
