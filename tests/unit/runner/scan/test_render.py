"""``midprobe scan`` output: the JSON line contract, the table, and the streamed ECC payload."""

from __future__ import annotations

import asyncio
import io
import json
import re
from dataclasses import replace
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import given, settings
from rich.console import Console

from midprobe.probes.neighbour_table import OverflowCounts
from midprobe.probes.shazzam import ShazzamScanner, decode_results
from midprobe.runner.ecc.payload import decode_input_payload
from midprobe.runner.scan.pipeline import ScanStats
from midprobe.runner.scan.render import (
    EccWriter,
    JsonLinesWriter,
    ScanHeader,
    TableWriter,
    incomplete_warning,
)
from midprobe.runner.scan.report import HostReport

HEADER = ScanHeader(targets="198.18.0.0/24", ports="22,80,9100", engine="connect", addresses=256)

LINUX = HostReport(
    address="198.18.0.10",
    hostname="linux1.sandiego.lab.example.test",
    open_tcp_ports=(80, 22),
    refused_tcp_ports=(9100,),
    ci_class="cmdb_ci_linux_server",
    confidence=1.0,
    evidence=("uname says Linux", "SSH banner of a Linux distribution: SSH-2.0-OpenSSH_9.2p1 Debian"),
    banners={22: "SSH-2.0-OpenSSH_9.2p1 Debian", 80: "Apache/2.4.62 (Debian)"},
    reader_scanners=(
        ShazzamScanner(
            22, "open", "ssh", "ssh", name="BannerTCP", banner_text="SSH-2.0-OpenSSH_9.2p1 Debian"
        ),
        ShazzamScanner(
            80, "open", "http", "http", name="HTTP", banner_text="Apache/2.4.62 (Debian)", http_status=200
        ),
    ),
    credential_id={"ssh": "linux-admin", "snmp": "ro"},
    os={"name": "Debian GNU/Linux", "version": "12"},
    sys_descr="Linux linux1 6.1.0",
    sys_object_id=".1.3.6.1.4.1.8072.3.2.10",
    engine="syn",
)
UNKNOWN = HostReport(address="198.18.0.13", open_tcp_ports=(8080,), engine="connect")
BROKEN = HostReport(
    address="2001:db8::7",
    open_tcp_ports=(22,),
    ci_class="cmdb_ci_unix_server",
    confidence=0.2,
    evidence=("SSH port 22 open",),
    errors=("ssh: no SSH credential worked on 2001:db8::7",),
)
STATS = ScanStats(scanned=256, alive=3, reported=3, engine="connect")


def test_json_line_carries_the_contract_keys() -> None:
    data = json.loads(LINUX.to_json_line())
    assert data["address"] == "198.18.0.10"
    assert data["hostname"] == "linux1.sandiego.lab.example.test"
    assert data["open_tcp_ports"] == [22, 80]  # sorted integers
    assert data["ci_class"] == "cmdb_ci_linux_server"
    assert data["evidence"] == list(LINUX.evidence)
    assert data["credential_id"] == {"ssh": "linux-admin", "snmp": "ro"}
    assert data["os"] == {"name": "Debian GNU/Linux", "version": "12"}
    assert data["sys_descr"] == "Linux linux1 6.1.0"
    assert data["sys_object_id"] == ".1.3.6.1.4.1.8072.3.2.10"
    assert data["banners"] == {"22": "SSH-2.0-OpenSSH_9.2p1 Debian", "80": "Apache/2.4.62 (Debian)"}


def test_json_line_of_an_unclassified_host_has_nulls_and_no_credential_keys() -> None:
    data = json.loads(UNKNOWN.to_json_line())
    assert data["hostname"] is None
    assert data["ci_class"] is None
    assert data["evidence"] == []
    for absent in ("credential_id", "os", "sys_descr", "sys_object_id", "errors", "services"):
        assert absent not in data


def test_json_writer_writes_one_object_per_line_as_they_come() -> None:
    out = io.StringIO()
    writer = JsonLinesWriter(out)
    writer.begin(HEADER)
    writer.write(LINUX)
    assert out.getvalue().count("\n") == 1  # written before the next host exists
    writer.write(BROKEN)
    writer.end(STATS)
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["address"] for line in lines] == ["198.18.0.10", "2001:db8::7"]
    assert json.loads(lines[1])["errors"] == ["ssh: no SSH credential worked on 2001:db8::7"]


class _CountingFlushes(io.StringIO):
    """A stream that counts its flushes and what had been written at each."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[int] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue().count("\n"))
        super().flush()


def test_json_lines_of_one_loop_turn_are_flushed_once_at_its_end() -> None:
    out = _CountingFlushes()
    writer = JsonLinesWriter(out)

    async def report() -> list[int]:
        writer.begin(HEADER)
        for host in (LINUX, UNKNOWN, BROKEN):
            writer.write(host)
        before = list(out.flushed)
        await asyncio.sleep(0)  # the turn ends: what was written reaches the reader
        writer.write(LINUX)
        await asyncio.sleep(0)
        return before

    assert asyncio.run(report()) == []  # nothing flushed in the middle of the turn
    assert out.flushed == [3, 4]  # one flush a turn, each after all of that turn's lines


def test_json_lines_are_flushed_one_by_one_outside_an_event_loop() -> None:
    out = _CountingFlushes()
    writer = JsonLinesWriter(out)
    writer.write(LINUX)
    writer.write(UNKNOWN)
    assert out.flushed == [1, 2]


def test_table_writer_prints_aligned_rows_without_colour_when_piped() -> None:
    out = io.StringIO()
    writer = TableWriter(out)
    writer.begin(HEADER)
    for report in (LINUX, UNKNOWN, BROKEN):
        writer.write(report)
    writer.end(STATS)
    text = out.getvalue()
    assert "\x1b[" not in text  # not a terminal: plain text
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["ADDRESS", "HOSTNAME", "OPEN"]
    linux_row = lines[1]
    assert linux_row.startswith("198.18.0.10 ")
    assert "22, 80" in linux_row
    assert "cmdb_ci_linux_server (1.00)" in linux_row
    assert "uname says Linux" in linux_row
    class_column = lines[0].index("CLASS")
    assert linux_row.index("cmdb_ci_linux_server") == class_column
    assert lines[2].split() == ["80", "http", "Apache/2.4.62"]  # the row's second service line
    unknown_row = next(index for index, line in enumerate(lines) if line.startswith("198.18.0.13 "))
    assert "unknown" in lines[unknown_row]
    broken_row = next(index for index, line in enumerate(lines) if line.startswith("2001:db8::7 "))
    assert lines[broken_row + 1] == "    ! ssh: no SSH credential worked on 2001:db8::7"
    assert lines[-1].startswith("3 host(s) up, 256 addresses scanned in")


def test_table_writer_colours_on_a_terminal() -> None:
    out = io.StringIO()
    writer = TableWriter(out, color=True)
    writer.begin(HEADER)
    writer.write(LINUX)
    writer.end(STATS)
    assert "\x1b[" in out.getvalue()


def _ecc_document(stream: io.TextIOBase, reports: list[HostReport]) -> None:
    writer = EccWriter(stream)  # type: ignore[arg-type]
    writer.begin(HEADER)
    for report in reports:
        writer.write(report)
    writer.end(STATS)


def test_ecc_writer_streams_a_payload_that_decodes() -> None:
    out = io.StringIO()
    writer = EccWriter(out)
    writer.begin(HEADER)
    opening = out.getvalue()
    assert opening.startswith("<results ")
    assert "<result " in opening
    writer.write(LINUX)
    assert "198.18.0.10" in out.getvalue()  # the host is out before the document ends
    writer.write(UNKNOWN)
    writer.end(STATS)

    payload = decode_input_payload(out.getvalue())
    assert payload.result_code == 0
    assert payload.echoed("topic") == "Shazzam"
    assert payload.echoed("source") == "198.18.0.0/24"
    assert payload.echoed("hosts_alive") == "3"
    shazzam = decode_results(payload.results)
    assert shazzam.engine == "connect"
    assert shazzam.ports == (22, 80, 9100)
    assert shazzam.hosts_scanned == 256
    linux, unknown = shazzam.hosts
    assert (linux.ip, linux.host_name, linux.domain_name) == (
        "198.18.0.10",
        "linux1",
        "sandiego.lab.example.test",
    )
    assert linux.open_ports == (22, 80)
    assert [(s.port, s.name, s.result) for s in linux.scanners] == [
        (22, "GenericTCP", "open"),
        (22, "BannerTCP", "open"),
        (80, "GenericTCP", "open"),
        (80, "HTTP", "open"),
        (9100, "GenericTCP", "refused"),
    ]
    assert (unknown.host_name, unknown.open_ports) == ("", (8080,))

    host = payload.results[0].find("host")
    assert host is not None
    assert host.get("ci_class") == "cmdb_ci_linux_server"
    assert [e.text for e in host.iter("evidence")] == list(LINUX.evidence)
    banners = {s.get("port"): s.get("banner_text") for s in host.iter("scanner") if s.get("banner_text")}
    assert banners == {"22": "SSH-2.0-OpenSSH_9.2p1 Debian", "80": "Apache/2.4.62 (Debian)"}
    readers = {s.get("port"): s.get("name") for s in host.iter("scanner") if s.get("banner_text")}
    assert readers == {"22": "BannerTCP", "80": "HTTP"}, "the same scanner elements the Shazzam probe writes"


def test_ecc_probe_time_is_written_back_into_a_file(tmp_path: Path) -> None:
    path = tmp_path / "scan.xml"
    stats = ScanStats(scanned=1, alive=1, engine="syn")
    stats.started -= 2.5  # the scan took 2.5 s
    with path.open("w", encoding="utf-8") as stream:
        writer = EccWriter(stream)
        writer.begin(HEADER)
        writer.write(LINUX)
        writer.end(stats)
    payload = decode_input_payload(path.read_text(encoding="utf-8"))
    assert payload.probe_time_ms is not None
    assert 2500 <= payload.probe_time_ms < 4000
    assert payload.echoed("scan_time_ms") == str(payload.probe_time_ms)


class _Pipe(io.StringIO):
    """A stream that cannot seek, like stdout piped into another program."""

    def seekable(self) -> bool:
        return False


def test_ecc_on_a_pipe_keeps_probe_time_zero_and_echoes_the_time() -> None:
    out = _Pipe()
    stats = ScanStats(scanned=1, alive=1, engine="syn")
    stats.started -= 1.0
    writer = EccWriter(out)
    writer.begin(HEADER)
    writer.end(stats)
    payload = decode_input_payload(out.getvalue())
    assert payload.probe_time_ms == 0
    assert int(payload.echoed("scan_time_ms") or 0) >= 1000
    assert decode_results(payload.results).hosts == ()


def test_ecc_sanitises_hostile_banners() -> None:
    nasty = HostReport(
        address="198.18.0.20",
        open_tcp_ports=(23,),
        banners={23: "login: \x00\x07\x1b[2J<script>&amp;</script>"},
        reader_scanners=(
            ShazzamScanner(
                23,
                "open",
                "telnet",
                "telnet",
                name="BannerTCP",
                banner_text="login: \x00\x07\x1b[2J<script>&amp;</script>",
            ),
        ),
        evidence=("telnet \x01 banner",),
        ci_class="cmdb_ci_ip_switch",
    )
    out = io.StringIO()
    _ecc_document(out, [nasty])
    payload = decode_input_payload(out.getvalue())
    scanner = payload.results[0].find("host/scanner[@name='BannerTCP']")
    assert scanner is not None
    assert scanner.get("banner_text") == "login: \ufffd\ufffd\ufffd[2J<script>&amp;</script>"


_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
_PORTS = st.lists(st.integers(1, 65535), max_size=6, unique=True).map(tuple)


@st.composite
def _reports(draw: st.DrawFn) -> HostReport:
    open_ports = draw(_PORTS)
    return HostReport(
        address=draw(st.ip_addresses().map(str)),
        hostname=draw(st.none() | st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{1,8}){0,3}", fullmatch=True)),
        open_tcp_ports=open_ports,
        ci_class=draw(st.none() | st.sampled_from(["cmdb_ci_linux_server", "cmdb_ci_printer"])),
        evidence=tuple(draw(st.lists(_TEXT, max_size=3))),
        banners={port: draw(_TEXT) for port in open_ports},
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(_reports(), max_size=4))
def test_every_report_round_trips_through_json_and_ecc(reports: list[HostReport]) -> None:
    out = io.StringIO()
    _ecc_document(out, reports)
    hosts = decode_results(decode_input_payload(out.getvalue()).results).hosts
    assert [host.ip for host in hosts] == [report.address for report in reports]
    for host, report in zip(hosts, reports, strict=True):
        assert host.open_ports == tuple(sorted(report.open_tcp_ports))
        assert host.active == bool(report.open_tcp_ports)
        data = json.loads(report.to_json_line())
        assert data["open_tcp_ports"] == sorted(report.open_tcp_ports)
        assert data["hostname"] == report.hostname
        assert data["ci_class"] == report.ci_class
        assert data["evidence"] == list(report.evidence)


def test_ecc_opening_reserves_room_only_inside_the_root_tag() -> None:
    out = io.StringIO()
    _ecc_document(out, [])
    first_line = out.getvalue().splitlines()[0]
    assert re.match(r'<results probe_time="\d+" result_code="0" *><result engine="connect"', first_line)


def test_ecc_of_an_interrupted_scan_in_a_file_says_so_in_its_opening(tmp_path: Path) -> None:
    path = tmp_path / "scan.xml"
    stats = ScanStats(scanned=37, alive=1, engine="syn")
    with path.open("w", encoding="utf-8") as stream:
        writer = EccWriter(stream)
        writer.begin(HEADER)
        writer.write(LINUX)
        writer.end(stats, complete=False)
    payload = decode_input_payload(path.read_text(encoding="utf-8"))
    assert payload.result_code == 1
    assert payload.error == "interrupted: 37 of 256 addresses scanned"
    assert decode_results(payload.results).hosts_scanned == 37
    assert [host.ip for host in decode_results(payload.results).hosts] == ["198.18.0.10"]
    assert payload.echoed("hosts_scanned") == "37"
    assert payload.echoed("complete") == "false"


def test_ecc_of_a_complete_scan_says_complete() -> None:
    out = io.StringIO()
    _ecc_document(out, [LINUX])
    payload = decode_input_payload(out.getvalue())
    assert payload.result_code == 0
    assert payload.error is None
    assert payload.echoed("complete") == "true"


def test_ecc_of_an_interrupted_scan_on_a_pipe_says_so_in_its_closing() -> None:
    out = _Pipe()
    writer = EccWriter(out)
    writer.begin(HEADER)
    writer.end(ScanStats(scanned=5, alive=0, engine="syn"), complete=False)
    payload = decode_input_payload(out.getvalue())
    assert payload.echoed("complete") == "false"
    assert payload.echoed("hosts_scanned") == "5"


def test_table_of_an_interrupted_scan_ends_with_what_was_scanned() -> None:
    out = io.StringIO()
    writer = TableWriter(out)
    writer.begin(HEADER)
    writer.end(ScanStats(scanned=12, alive=0, engine="syn"), complete=False)
    assert out.getvalue().splitlines()[-1] == "interrupted: 12 of 256 addresses scanned"


def _table(
    reports: list[HostReport], header: ScanHeader = HEADER, stats: ScanStats = STATS, **console: object
) -> list[str]:
    out = io.StringIO()
    terminal = Console(file=out, no_color=True, highlight=False, **console) if console else None  # type: ignore[arg-type]
    writer = TableWriter(out, console=terminal)
    writer.begin(header)
    for report in reports:
        writer.write(report)
    writer.end(stats)
    return out.getvalue().splitlines()


def test_a_small_scan_table_is_sorted_by_address_ipv4_first() -> None:
    lines = _table([BROKEN, UNKNOWN, LINUX, HostReport(address="198.18.0.9")])
    addresses = [line.split()[0] for line in lines[1:-1] if not line.startswith(" ")]
    assert addresses == ["198.18.0.9", "198.18.0.10", "198.18.0.13", "2001:db8::7"]


def test_a_large_scan_streams_its_rows_in_finish_order() -> None:
    large = ScanHeader(targets="198.18.0.0/16", ports="22", engine="connect", addresses=65_536)
    out = io.StringIO()
    writer = TableWriter(out)
    writer.begin(large)
    writer.write(UNKNOWN)
    assert out.getvalue().splitlines()[1].startswith("198.18.0.13 ")  # printed at once, not held
    writer.write(LINUX)
    assert out.getvalue().splitlines()[2].startswith("198.18.0.10 ")


def test_services_column_shows_nmap_services_else_the_banners_short_form() -> None:
    lines = _table([LINUX, replace(UNKNOWN, services={8080: "http Jetty 9.4"}, banners={8080: "Jetty(9)"})])
    services = lines[0].index("SERVICES")
    assert lines[1][services:].startswith("22 ssh OpenSSH_9.2p1 ")
    assert lines[2][services:].startswith("80 http Apache/2.4.62")
    assert lines[3][services:].startswith("8080 http Jetty 9.4 ")


def test_table_fits_an_80_column_terminal_cutting_only_the_long_columns() -> None:
    lines = _table([LINUX, UNKNOWN, BROKEN], width=80, force_terminal=True)
    assert all(len(line) <= 80 for line in lines), lines
    rows = [line for line in lines if line[:1].isdigit() and "host(s) up" not in line]
    linux = rows[0]
    assert linux.startswith("198.18.0.10 ")
    cut = re.match(r"198\.18\.0\.10 +(\S+)… ", linux)  # cut and marked, never folded
    assert cut is not None, linux
    assert "linux1.sandiego.lab.example.test".startswith(cut.group(1))
    assert "22, 80" in linux
    assert "cmdb_ci_linux_server (1.00)" in linux  # the verdict is not cut
    assert "EVIDENCE" not in lines[0]  # no room for it: left out, not wrapped
    # every cell stays in its column: no row spills onto a line of its own
    assert [row.split()[0] for row in rows] == ["198.18.0.10", "198.18.0.13", "2001:db8::7"]


# --- incomplete hosts: the kernel refused their sends (ENOBUFS) --------------------------------

REASON = "the kernel refused 17 sends (ENOBUFS: No buffer space available): its neighbour table was full"
#: Nothing answered before its sends were refused: not known to be down.
NEVER_ASKED = HostReport(address="198.18.0.12", engine="syn", alive=False, incomplete=REASON)
#: Some ports answered, the others were never probed.
HALF_ASKED = replace(UNKNOWN, incomplete=REASON)
INCOMPLETE_STATS = ScanStats(scanned=256, alive=2, incomplete=2, reported=3, engine="syn")


def test_json_line_of_an_incomplete_host_says_why() -> None:
    assert json.loads(NEVER_ASKED.to_json_line())["incomplete"] == REASON
    assert json.loads(HALF_ASKED.to_json_line())["open_tcp_ports"] == [8080]
    assert "incomplete" not in json.loads(LINUX.to_json_line())


def test_table_shows_an_incomplete_host_and_ends_saying_how_many() -> None:
    lines = _table([LINUX, NEVER_ASKED, HALF_ASKED], stats=INCOMPLETE_STATS)
    rows = {line.split()[0]: index for index, line in enumerate(lines) if line.startswith("198.18.")}
    assert lines[rows["198.18.0.12"]].split()[-1] == "incomplete"  # CLASS: neither a class nor "down"
    assert lines[rows["198.18.0.12"] + 1] == f"    ! incomplete: {REASON}"
    assert lines[rows["198.18.0.13"] + 1] == f"    ! incomplete: {REASON}"
    assert lines[-2].startswith("2 host(s) up, 2 incomplete, 256 addresses scanned")
    assert lines[-1] == (
        "incomplete: 2 host(s) not fully scanned, the kernel refused sends to them "
        "(ENOBUFS: neighbour table full or no buffer space)"
    )


def test_ecc_of_a_scan_with_incomplete_hosts_marks_them_and_the_payload(tmp_path: Path) -> None:
    path = tmp_path / "scan.xml"
    with path.open("w", encoding="utf-8") as stream:
        writer = EccWriter(stream)
        writer.begin(HEADER)
        for report in (LINUX, NEVER_ASKED, HALF_ASKED):
            writer.write(report)
        writer.end(INCOMPLETE_STATS)
    payload = decode_input_payload(path.read_text(encoding="utf-8"))
    assert payload.result_code == 1
    assert (payload.error or "").startswith("incomplete: 2 host(s) not fully scanned")
    assert payload.echoed("complete") == "false"
    assert payload.echoed("hosts_incomplete") == "2"
    assert payload.echoed("hosts_scanned") == "256"
    hosts = {host.ip: host for host in decode_results(payload.results).hosts}
    assert hosts["198.18.0.10"].incomplete is None
    assert (hosts["198.18.0.12"].alive, hosts["198.18.0.12"].incomplete) == (False, REASON)
    assert (hosts["198.18.0.13"].alive, hosts["198.18.0.13"].incomplete) == (True, REASON)


def test_the_warning_names_the_limit_of_the_neighbour_table_that_overflowed_during_the_scan() -> None:
    before = OverflowCounts({"arp_cache": 3, "ndisc_cache": 0})
    after = OverflowCounts({"arp_cache": 40, "ndisc_cache": 0})
    warning = incomplete_warning(2, before, after)
    assert warning.startswith("incomplete: 2 host(s) not fully scanned, the kernel refused sends to them")
    assert warning.endswith(
        "the neighbour table overflowed during the scan: raise net.ipv4.neigh.default.gc_thresh3 "
        "(sysctl -w), or scan fewer addresses at once"
    )


def test_the_warning_without_an_overflow_blames_the_send_buffers() -> None:
    counts = OverflowCounts({"arp_cache": 3, "ndisc_cache": 1})
    assert incomplete_warning(1, counts, counts).endswith(
        "no neighbour table overflowed, so the send buffers were full: scan slower (--rate)"
    )


def test_the_warning_when_the_counters_cannot_be_read_names_both_limits() -> None:
    unknown = OverflowCounts({})
    warning = incomplete_warning(1, unknown, unknown)
    assert "raise net.ipv4.neigh.default.gc_thresh3 and net.ipv6.neigh.default.gc_thresh3" in warning
