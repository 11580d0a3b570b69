"""``midprobe scan`` against the lab: the real CLI in the scanner namespace, and the pipeline in-process.

The CLI runs as a user runs it (``python -m midprobe.runner scan ...`` inside the scanner namespace);
what it prints is compared with what the lab says its hosts are.
"""

from __future__ import annotations

import ipaddress
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from midprobe.probes.shazzam import decode_results
from midprobe.probes.targets import parse_targets
from midprobe.runner.ecc.payload import decode_input_payload
from midprobe.runner.lab import Lab, NamespaceThread
from midprobe.runner.lab.credentials_file import lab_credentials_toml
from midprobe.runner.scan.pipeline import ScanPipeline, ScanSettings
from midprobe.runner.scan.report import HostReport
from tests.support.terminal import PseudoTerminal

pytestmark = pytest.mark.lab

#: Every port a lab host listens on, plus a few nobody does.
PORTS = (22, 23, 53, 80, 443, 515, 8080, 9100)
SUB_DOMAINS = ("sandiego", "sanjose")


def _scan(lab: Lab, *args: str, timeout: float = 90.0) -> tuple[list[dict[str, Any]], str]:
    """Run ``midprobe scan --lab --format json ARGS`` in the scanner namespace; (reports, stderr)."""
    argv = [sys.executable, "-m", "midprobe.runner", "scan", "--lab", "--format", "json", *args]
    done = lab.run(argv, timeout=timeout)
    return [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def _by_address(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    addresses = [report["address"] for report in reports]
    assert len(addresses) == len(set(addresses)), "a host was reported twice"
    return {report["address"]: report for report in reports}


def _ports_arg(ports: tuple[int, ...] = PORTS) -> str:
    return ",".join(map(str, ports))


def test_lab_subnet_without_credentials(lab: Lab) -> None:
    reports, _ = _scan(lab, lab.network, "-p", _ports_arg(), "--dns-server", lab.dns_server)
    found = _by_address(reports)
    for host in lab.hosts:
        expected = sorted(set(host.open_tcp_ports) & set(PORTS))
        if host.profile == "silent":
            assert host.address not in found, "the silent host must not be reported"
            continue
        report = found[host.address]
        assert report["open_tcp_ports"] == expected, host.name
        assert report["engine"] == "syn"  # the default engine as root
        assert report["hostname"] == host.fqdn
        assert report["hostname"].split(".")[1] in SUB_DOMAINS
    # Nothing else answers in the lab but the scanner's own address.
    assert set(found) - {h.address for h in lab.hosts} <= {lab.scanner_address}

    linux = found[lab.host("linux1").address]
    assert linux["ci_class"] == "cmdb_ci_linux_server"
    assert any("SSH banner" in reason for reason in linux["evidence"])
    assert linux["banners"]["22"].startswith("SSH-2.0-OpenSSH")

    printer = found[lab.host("printer1").address]
    assert 9100 in printer["open_tcp_ports"]
    assert printer["ci_class"] == "cmdb_ci_printer"
    assert any("9100" in reason for reason in printer["evidence"])

    # Without SNMP the switch shows only a Debian OpenSSH banner (OpenSSH cannot hide that), so the
    # data supports a Unix-like host, named by its banner.
    switch = found[lab.host("switch1").address]
    assert switch["ci_class"] in ("cmdb_ci_linux_server", "cmdb_ci_unix_server")
    assert any("Cisco-1.25" in reason for reason in switch["evidence"])

    web = found[lab.host("web1").address]
    assert web["banners"] == {"8080": "nginx/1.22.1"}


def test_ecc_output_decodes(lab: Lab, tmp_path: Path) -> None:
    output = tmp_path / "scan.xml"
    hosts = [lab.host(name) for name in ("linux1", "switch1", "printer1", "web1", "silent1")]
    targets = ",".join(host.address for host in hosts)
    argv = [sys.executable, "-m", "midprobe.runner", "scan", "--lab", targets, "-p", _ports_arg()]
    lab.run([*argv, "--dns-server", lab.dns_server, "--format", "ecc", "-o", str(output)], timeout=90)
    payload = decode_input_payload(output.read_text(encoding="utf-8"))
    assert payload.result_code == 0
    assert payload.probe_time_ms is not None
    assert payload.probe_time_ms > 0
    result = decode_results(payload.results)
    assert result.hosts_scanned == 5
    scanned = {host.ip: host for host in result.hosts}
    assert lab.host("silent1").address not in scanned
    for host in hosts[:-1]:
        shazzam = scanned[host.address]
        assert shazzam.open_ports == tuple(sorted(set(host.open_tcp_ports) & set(PORTS)))
        assert f"{shazzam.host_name}.{shazzam.domain_name}" == host.fqdn
    elements = {element.get("ip"): element for element in payload.results[0].iter("host")}
    printer = elements[lab.host("printer1").address]
    assert printer.get("ci_class") == "cmdb_ci_printer"
    assert [e.text for e in printer.iter("evidence")]


def test_host_name_targets_resolve_through_the_lab_dns(lab: Lab) -> None:
    linux = lab.host("linux1")
    assert linux.fqdn is not None
    reports, _ = _scan(lab, linux.fqdn, "-p", "22", "--dns-server", lab.dns_server)
    (report,) = reports
    assert report["address"] == linux.address
    assert report["hostname"] == linux.fqdn
    assert report["open_tcp_ports"] == [22]


def _credentials_file(path: Path, entries: list[dict[str, Any]]) -> Path:
    lines: list[str] = []
    for entry in entries:
        lines.append("[[credential]]")
        for key, value in entry.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return path


def _assert_no_secrets(lab: Lab, *texts: str) -> None:
    for secret in lab.credentials.secrets():
        for text in texts:
            assert secret not in text


def test_credentialed_scan(lab: Lab, tmp_path: Path) -> None:
    linux, switch, printer = (lab.host(name) for name in ("linux1", "switch1", "printer1"))
    # The lab's own credentials file: SSH scoped to the Linux servers, as an operator would (the
    # lab's switch runs a real Linux sshd, where a login would answer `uname` with Linux).
    path = tmp_path / "credentials.toml"
    path.write_text(lab_credentials_toml(lab), encoding="utf-8")
    targets = ",".join(host.address for host in (linux, switch, printer))
    # The unprivileged connect engine this time.
    reports, stderr = _scan(
        lab, targets, "-p", "22,80,9100", "-n", "--engine", "connect", "--credentials", str(path)
    )
    found = _by_address(reports)

    linux_report = found[linux.address]
    assert linux_report["credential_id"] == {"ssh": "lab-ssh", "snmp": "lab-v3"}
    assert linux_report["os"]["kernel"] == "Linux"
    assert linux_report["os"]["hostname"] == "linux1"
    assert linux_report["os"]["id"] == "debian"
    assert linux_report["ci_class"] == "cmdb_ci_linux_server"
    assert "uname says Linux" in linux_report["evidence"]

    switch_report = found[switch.address]
    assert switch_report["credential_id"] == {"snmp": "lab-v3"}
    assert switch_report["sys_object_id"] == switch.sys_object_id
    assert switch_report["sys_descr"] == switch.sys_descr
    assert switch_report["ci_class"] == "cmdb_ci_ip_switch"
    assert any("sysObjectID" in reason for reason in switch_report["evidence"])

    printer_report = found[printer.address]
    assert printer_report["sys_object_id"] == printer.sys_object_id
    assert printer_report["ci_class"] == "cmdb_ci_printer"
    assert printer_report["confidence"] == 1.0
    _assert_no_secrets(lab, json.dumps(reports), stderr)


def test_issue6_spelling_takes_each_protocol_from_its_file(lab: Lab, tmp_path: Path) -> None:
    creds = lab.credentials
    linux = lab.host("linux1")
    ssh_file = _credentials_file(
        tmp_path / "ssh.toml",
        [
            {
                "id": "lab-key",
                "type": "ssh_private_key",
                "user": creds.ssh_user,
                "private_key_file": str(creds.ssh_private_key),
            },
            # Not an SSH credential: --ssh-credentials must leave it out (it would also fail).
            {"id": "stray-snmp", "type": "snmp", "community": "wrong-community-123"},
        ],
    )
    snmp_file = _credentials_file(
        tmp_path / "snmp.toml",
        [{"id": "lab-v2c", "type": "snmp", "community": creds.snmp_community, "version": "2c"}],
    )
    reports, stderr = _scan(
        lab,
        linux.address,
        "-p",
        "22",
        "-n",
        "--ssh-credentials",
        str(ssh_file),
        "--snmp-credentials",
        str(snmp_file),
    )
    (report,) = reports
    assert report["credential_id"] == {"ssh": "lab-key", "snmp": "lab-v2c"}
    assert report["os"]["name"].startswith("Debian")
    assert report["sys_object_id"] == linux.sys_object_id
    _assert_no_secrets(lab, json.dumps(reports), stderr)


def test_a_failed_login_is_reported_and_the_scan_goes_on(lab: Lab, tmp_path: Path) -> None:
    linux, printer = lab.host("linux1"), lab.host("printer1")
    path = _credentials_file(
        tmp_path / "wrong.toml",
        [
            {
                "id": "stale",
                "type": "ssh_password",
                "user": lab.credentials.ssh_user,
                "password": "not-the-pw-1",
            }
        ],
    )
    reports, stderr = _scan(
        lab, f"{linux.address},{printer.address}", "-p", "22,80,9100", "-n", "--credentials", str(path)
    )
    found = _by_address(reports)
    linux_report = found[linux.address]
    assert "credential_id" not in linux_report
    (problem,) = linux_report["errors"]
    assert problem.startswith("ssh: ")
    assert "stale" in problem
    assert "not-the-pw-1" not in json.dumps(reports) + stderr
    # Still classified from what was seen without logging in.
    assert linux_report["ci_class"] == "cmdb_ci_linux_server"
    assert found[printer.address]["ci_class"] == "cmdb_ci_printer"


def test_nmap_service_and_os_detection(lab: Lab) -> None:
    linux = lab.host("linux1")
    reports, _ = _scan(lab, linux.address, "-p", "22,80", "-n", "--nmap", "--os", timeout=110)
    (report,) = reports
    assert "errors" not in report, report.get("errors")
    assert report["services"]["22"].startswith("ssh OpenSSH")
    assert report["services"]["80"].startswith("http Apache httpd")
    assert "Linux" in report["nmap_os"]
    assert any(reason.startswith("nmap OS family Linux") for reason in report["evidence"])
    assert report["ci_class"] == "cmdb_ci_linux_server"


def _scan_in_process(
    thread: NamespaceThread, targets: str, ports: tuple[int, ...], *, stop_after: int | None = None
) -> list[tuple[HostReport, int]]:
    """(report, addresses scanned when it was yielded) for each report, run in the scanner namespace."""
    settings = ScanSettings(ports=ports, engine="connect", connect_wait_ms=1000, retries=2)

    async def collect() -> list[tuple[HostReport, int]]:
        pipeline = ScanPipeline(settings)
        seen: list[tuple[HostReport, int]] = []
        reports = pipeline.run(parse_targets(targets))
        try:
            async for report in reports:
                seen.append((report, pipeline.stats.scanned))
                if stop_after is not None and len(seen) >= stop_after:
                    break
        finally:
            await reports.aclose()
        return seen

    return thread.run_async(collect)


def _scan_threads() -> list[threading.Thread]:
    """The port scan's engine threads (``scan_async`` names them after the engine)."""
    names = {"midprobe-connect-scan", "midprobe-syn-scan"}
    return [thread for thread in threading.enumerate() if thread.name in names]


def test_reports_stream_before_the_scan_ends(lab: Lab, lab_thread: NamespaceThread) -> None:
    linux, silent = lab.host("linux1"), lab.host("silent1")
    seen = _scan_in_process(lab_thread, f"{linux.address},{silent.address}", (22, 80))
    ((report, scanned_then),) = seen
    assert report.address == linux.address
    assert report.ci_class == "cmdb_ci_linux_server"
    # linux1 was reported while the silent host's probes were still waiting for an answer.
    assert scanned_then == 1


def test_leaving_early_stops_the_scan(lab: Lab, lab_thread: NamespaceThread) -> None:
    linux, silent = lab.host("linux1"), lab.host("silent1")
    # Many silent addresses after linux1: the scan would take a while if it went on.
    seen = _scan_in_process(
        lab_thread, f"{linux.address},{silent.address},198.18.0.100-199", (22,), stop_after=1
    )
    assert [report.address for report, _ in seen] == [linux.address]
    assert _scan_threads() == [], "the port scan thread outlived the scan"


@pytest.mark.parametrize(
    ("stop", "status", "said"),
    [(signal.SIGINT, 130, "midprobe: aborted"), (signal.SIGTERM, 143, "midprobe: terminated")],
    ids=["ctrl-c", "sigterm"],
)
def test_ctrl_c_or_sigterm_during_an_ecc_scan_to_a_file_marks_it_incomplete(
    lab: Lab, tmp_path: Path, stop: signal.Signals, status: int, said: str
) -> None:
    """Ctrl-C, or SIGTERM (``timeout``, a service manager), stops the scan with its output whole."""
    output = tmp_path / "scan.xml"
    # Slow on purpose (--rate, and -Pn so that all 256 addresses are port-scanned, not only the
    # few live ones): the scan is interrupted long before its 2,048 probes are sent.
    argv = [
        sys.executable,
        "-m",
        "midprobe.runner",
        "scan",
        "--lab",
        "-n",
        "-Pn",
        "--no-banners",
        "--format",
        "ecc",
    ]
    argv += ["-o", str(output), "--rate", "40", "-p", "22,80,8080,9100,23,25,443,515", lab.network]
    process = subprocess.Popen(
        ["ip", "netns", "exec", lab.scanner_namespace, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (output.exists() and "<host " in output.read_text(encoding="utf-8")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no host was written within 60 s"
            time.sleep(0.05)  # waiting for a state (a host in the file), not for a time
        process.send_signal(stop)
        try:
            _out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _out, err = process.communicate()  # its pipes closed here, not by a later test's GC
            pytest.fail(f"the scan went on 30 s after {stop.name}; its stderr: {err[-2000:]!r}")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == status, err
    summary, last = [line for line in err.splitlines() if line.strip()][-2:]
    assert "interrupted:" in summary, err  # what was scanned is said on the way out
    assert last == said, err
    payload = decode_input_payload(output.read_text(encoding="utf-8"))
    scanned = int(payload.echoed("hosts_scanned") or 0)
    assert 0 < scanned < 256
    assert payload.result_code == 1
    assert payload.error == f"interrupted: {scanned} of 256 addresses scanned"
    assert decode_results(payload.results).hosts_scanned == scanned
    assert payload.echoed("complete") == "false"


def _table_on_terminal(lab: Lab, *, columns: int) -> list[str]:
    """The screen after a scan of the lab's network printed its table on a terminal ``columns`` wide."""
    argv = [sys.executable, "-m", "midprobe.runner", "scan", "--lab", "-n", "-p", "22,80,8080,9100", lab.network]  # fmt: skip
    with PseudoTerminal(columns=columns, rows=60) as terminal:
        code = terminal.run(
            ["ip", "netns", "exec", lab.scanner_namespace, *argv], env={"TERM": "xterm-256color"}
        )
        lines = terminal.lines()
    assert code == 0, lines
    assert lines[0].startswith("ADDRESS "), lines
    assert re.fullmatch(r"\d+ host\(s\) up, 256 addresses scanned in .*", lines[-1]), lines
    return lines


def test_on_a_terminal_the_table_prints_above_the_progress_bar(lab: Lab) -> None:
    lines = _table_on_terminal(lab, columns=250)
    rows = {line.split()[0] for line in lines[1:-1]}
    for host in lab.hosts:
        if set(host.open_tcp_ports) & {22, 80, 8080, 9100}:
            assert host.address in rows, lines
    # Nothing of the bar is left, nor glued to a row (a row too long for the terminal wraps, as rows do).
    assert not [line for line in lines if "scanning" in line or " up 0:00:" in line], "\n".join(lines)


def test_on_an_80_column_terminal_the_table_is_sorted_and_no_row_wraps(lab: Lab) -> None:
    lines = _table_on_terminal(lab, columns=80)
    body = lines[1:-1]
    first_row = next(index for index, line in enumerate(body) if line[:1].isdigit())
    rows = [line for line in body[first_row:] if not line.startswith(" ")]
    # Each row starts with an address (a line of its own per host: nothing wrapped onto the next
    # line), the other lines are a row's further services or errors, indented.
    addresses = [ipaddress.ip_address(row.split()[0]) for row in rows]
    assert addresses == sorted(addresses), lines
    expected = {host.address for host in lab.hosts if set(host.open_tcp_ports) & {22, 80, 8080, 9100}}
    assert expected <= {str(address) for address in addresses}, lines


def test_host_discovery_finds_the_same_hosts_as_scanning_every_address(lab: Lab) -> None:
    swept, swept_err = _scan(lab, "-n", "--no-banners", "-p", _ports_arg(), lab.network)
    every, every_err = _scan(lab, "-n", "--no-banners", "-Pn", "-p", _ports_arg(), lab.network)
    assert {r["address"]: r["open_tcp_ports"] for r in swept} == {
        r["address"]: r["open_tcp_ports"] for r in every
    }
    # The summary (stderr: the output is JSON) says how the live hosts were found, and only then.
    assert re.search(
        r", 256 addresses scanned in .* scan, (arp|icmp|tcp-connect)\S* ping\)$", swept_err.strip()
    ), swept_err
    assert " ping)" not in every_err, every_err
