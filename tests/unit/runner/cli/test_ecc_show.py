"""``midprobe ecc show``: a probe's result read per host like the scan table, the raw payload on request.

The records are the real ones: requests from ``new_output_record``, answers from ``new_input_record``
holding what the probes' own encoders write, on a real SQLite queue.
"""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner

from midprobe.probes.dns.host_names import DNSProbe, DnsResult, HostName
from midprobe.probes.dns.resolver import Status
from midprobe.probes.shazzam import ShazzamHost, ShazzamResult, ShazzamScanner, encode_shazzam
from midprobe.probes.snmp.classify import encode_classify_result
from midprobe.probes.ssh.channel import CommandOutput
from midprobe.probes.ssh.command import encode_command_output
from midprobe.probes.ssh.known_hosts import HostKey
from midprobe.probes.ssh.session import ConnectionInfo
from midprobe.runner.cli.main import cli
from midprobe.runner.ecc.builders import new_input_record, new_output_record
from midprobe.runner.ecc.payload import Parameter, ProbeRequest, encode_multiprobe_payload
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.unit.probes.snmp.test_classify import classify_result

KEY = HostKey("ssh-ed25519", base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"k" * 36).decode())


def _answered(
    tmp_path: Path,
    topic: str,
    source: str,
    results: Sequence[ET.Element],
    *,
    error: str | None = None,
    parameters: Sequence[tuple[str, str]] = (),
) -> tuple[str, str, str]:
    """(queue URL, request sys_id, result sys_id) of a request and its answer on a fresh queue."""
    url = sqlite_url(tmp_path / "ecc.db")
    output = new_output_record(agent="mid1", topic=topic, source=source, parameters=parameters)
    with open_queue(url) as queue:
        queue.enqueue(output)
        answer = new_input_record(
            output,
            agent="mid1",
            results=results,
            probe_time_ms=412,
            error=error,
            result_code=1 if error else 0,
        )
        queue.enqueue(answer)
    return url, output.sys_id, answer.sys_id


def _show(url: str, *argv: str) -> str:
    outcome = CliRunner().invoke(cli, ["ecc", "show", *argv, "--queue", url])
    assert outcome.exit_code == 0, outcome.output
    return outcome.output


def _row(out: str, address: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(address + " "))


def _shazzam(tmp_path: Path) -> tuple[str, str, str]:
    scanners = (
        ShazzamScanner(22, "open", "ssh", "ssh"),
        ShazzamScanner(
            22, "open", "ssh", "ssh", name="BannerTCP", banner_text="SSH-2.0-OpenSSH_9.2p1 Debian"
        ),
        ShazzamScanner(80, "open", "http", "http"),
        ShazzamScanner(443, "refused", "https", "https"),
    )
    result = ShazzamResult(
        hosts=(
            ShazzamHost("198.18.0.21", True, True, "linux1", "lab.example", scanners),
            ShazzamHost("198.18.0.3", True, False, "\x9b2Jowned", "", ()),
        ),
        engine="connect",
        ports=(22, 80, 443),
        hosts_scanned=256,
    )
    return _answered(
        tmp_path, "Shazzam", "198.18.0.0/24", encode_shazzam(result), parameters=[("ports", "22,80,443")]
    )


def test_a_shazzam_result_is_one_row_per_host_sorted_by_address(tmp_path: Path) -> None:
    url, _request, answer = _shazzam(tmp_path)
    out = _show(url, answer[:8])
    assert out.startswith(f"sys_id: {answer}\nqueue: input\n")
    assert "topic: Shazzam\n" in out
    assert "probe_time: 412 ms\n" in out
    header = next(line for line in out.splitlines() if line.startswith("ADDRESS"))
    assert header.split()[:6] == ["ADDRESS", "HOSTNAME", "OPEN", "TCP", "PORTS", "SERVICES"]
    linux = _row(out, "198.18.0.21")
    assert "linux1.lab.example" in linux
    assert "22, 80" in linux
    assert "443" not in linux, "a refused port is not an open one"
    assert "22 ssh OpenSSH_9.2p1" in linux
    quiet = _row(out, "198.18.0.3")
    assert "\\x9b2Jowned" in quiet, "a host name is shown with its escape sequence escaped"
    assert "\x9b" not in out
    lines = out.splitlines()
    assert lines.index(quiet) < lines.index(linux), "198.18.0.3 sorts before 198.18.0.21"


def test_snmp_classify_shows_the_class_name_and_evidence(tmp_path: Path) -> None:
    result = classify_result("printer1-v2c.walk", "198.18.0.12", "198.18.0.12")
    url, _request, answer = _answered(
        tmp_path, "SNMPClassify", "198.18.0.12", [encode_classify_result(result)]
    )
    row = _row(_show(url, answer), "198.18.0.12")
    assert "printer1" in row
    assert "cmdb_ci_printer (1.00)" in row
    assert "HP printer" in row


def test_ssh_command_shows_the_command_and_its_exit_status(tmp_path: Path) -> None:
    connection = ConnectionInfo(
        "198.18.0.21", 22, "lab-ssh", "lab", KEY, "known", "SSH-2.0-OpenSSH_9.2p1", ()
    )
    output = CommandOutput("uname -s", "Linux\n", "", 0, False, 12.0)
    url, request, answer = _answered(
        tmp_path, "SSHCommand", "198.18.0.21", [encode_command_output(output, connection)]
    )
    out = _show(url, answer)
    assert "uname -s: exit 0" in _row(out, "198.18.0.21")
    assert out.endswith("\nstdout of uname -s:\n  Linux\n"), "what the command printed follows the table"
    request_view = _show(url, request)
    assert "queue: output\n" in request_view
    assert "parameters: (none)\n" in request_view


def test_an_error_result_shows_the_error_under_its_source(tmp_path: Path) -> None:
    url, _request, answer = _answered(
        tmp_path, "SSHCommand", "198.18.0.99", [], error="connect to 198.18.0.99:22: connection refused"
    )
    out = _show(url, answer)
    assert "error_string: connect to 198.18.0.99:22: connection refused\n" in out
    assert "result_code: 1\n" in out
    lines = out.splitlines()
    row = lines.index(_row(out, "198.18.0.99"))
    assert lines[row + 1].strip() == "! connect to 198.18.0.99:22: connection refused"
    assert sum("connection refused" in line for line in lines) == 2, (
        "the error once in the header, once per host"
    )


def test_xml_gives_the_payload_as_stored_and_json_the_hosts_for_scripts(tmp_path: Path) -> None:
    url, request, answer = _shazzam(tmp_path)
    raw = _show(url, answer, "--format", "xml")
    assert "payload:\n<results" in raw
    assert '<host ip="198.18.0.21"' in raw
    assert "\\x9b2Jowned" in raw
    assert "\x9b" not in raw
    data = json.loads(_show(url, answer, "--format", "json"))
    assert data["sys_id"] == answer
    assert data["response_to"] == request
    assert data["payload"].startswith("<results")
    hosts = {host["address"]: host for host in data["hosts"]}
    assert hosts["198.18.0.21"]["open_tcp_ports"] == [22, 80]
    assert hosts["198.18.0.21"]["hostname"] == "linux1.lab.example"
    request_data = json.loads(_show(url, request, "--format", "json"))
    assert "hosts" not in request_data, "a request has no hosts"
    assert request_data["payload"].startswith("<parameters>")


def test_list_sys_ids_feeds_show(tmp_path: Path) -> None:
    url, request, answer = _shazzam(tmp_path)
    outcome = CliRunner().invoke(cli, ["ecc", "list", "--queue", url, "--response-to", request, "--sys-ids"])
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output == f"{answer}\n"
    outcome = CliRunner().invoke(cli, ["ecc", "list", "--queue", url, "--sys-ids"])
    assert outcome.output.split() == [request, answer]


def test_dns_names_one_row_per_address_with_its_status(tmp_path: Path) -> None:
    result = DnsResult(
        (
            HostName(
                "198.18.0.10", Status.OK, ("linux1.sandiego.lab.example.test",), True, server="198.18.0.15"
            ),
            HostName("198.18.0.99", Status.NXDOMAIN, server="198.18.0.15"),
        )
    )
    url, _request, answer = _answered(tmp_path, "DNS", "198.18.0.10", DNSProbe().encode_results(result))
    out = _show(url, answer)
    assert "linux1.sandiego.lab.example.test" in _row(out, "198.18.0.10")
    assert "status ok" in _row(out, "198.18.0.10")
    assert "status nxdomain" in _row(out, "198.18.0.99")


def test_banner_sniff_shows_the_open_ports_and_what_they_said(tmp_path: Path) -> None:
    result = ET.Element("result")
    host = ET.SubElement(result, "host", ip="198.18.0.11")
    ET.SubElement(
        host,
        "scanner",
        name="BannerTCP",
        port="22",
        protocol="tcp",
        result="open",
        service="ssh",
        banner_text="SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10 Cisco-1.25",
    )
    url, _request, answer = _answered(tmp_path, "BannerSniff", "198.18.0.11", [result])
    row = _row(_show(url, answer), "198.18.0.11")
    assert "22 ssh OpenSSH_9.2p1" in row


def test_a_multiprobe_request_lists_its_probes_and_their_parameters(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    output = new_output_record(agent="mid1", topic="MultiProbe", source="198.18.0.11")
    payload = encode_multiprobe_payload(
        [ProbeRequest("SNMPIdentity", parameters=(Parameter("port", "161"),)), ProbeRequest("SSHIdentity")]
    )
    with open_queue(url) as queue:
        queue.enqueue(replace(output, payload=payload))
    out = _show(url, output.sys_id)
    assert "parameters: (none)\nprobe SNMPIdentity:\n  port = 161\nprobe SSHIdentity: (none)\n" in out
