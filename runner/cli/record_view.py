"""``midprobe ecc show``'s readable view: a record's header, and an input's findings as scan-table rows.

An input payload is read per host into :class:`~midprobe.runner.scan.report.HostReport` values, which
the scan's own :class:`~midprobe.runner.scan.render.TableWriter` prints: Shazzam, nmap, DNS and BannerSniff ``<host>``
elements give one row each, a classification (SSHClassify, SNMPClassify) the class, name and evidence
of its source, any other topic one row for its source. Every text that came from a device or a record
is escaped for the terminal (``printable``) before it reaches a cell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TextIO

from midprobe.capabilities.errors import PayloadError
from midprobe.probes.shazzam import decode_results
from midprobe.runner.cli.text import printable, shown
from midprobe.runner.cmdb.model import DiscoveredDevice
from midprobe.runner.discovery.sensors import read_snmp_classify, read_ssh_classify
from midprobe.runner.ecc.payload import (
    MultiProbePayload,
    Parameter,
    ResultsPayload,
    decode_input_payload,
    decode_output_payload,
)
from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.scan.pipeline import ScanStats
from midprobe.runner.scan.render import ScanHeader, TableWriter
from midprobe.runner.scan.report import HostReport

#: The header fields shown, in order, with their labels.
_HEADER_FIELDS = (
    "sys_id",
    "queue",
    "state",
    "topic",
    "name",
    "source",
    "agent",
    "priority",
    "response_to",
    "agent_correlator",
    "sys_created_on",
    "processed",
    "error_string",
)


def _texts(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(printable(value) for value in values if value)


def _shazzam_reports(payload: ResultsPayload) -> list[HostReport] | None:
    """The Shazzam hosts (``midprobe scan --format ecc`` too), or None if the payload is not Shazzam's."""
    try:
        result = decode_results(payload.results)
    except PayloadError:
        return None
    hosts = {host.get("ip", ""): host for host in payload.results[0].iter("host")}
    reports = []
    for host in result.hosts:
        opened = [scanner for scanner in host.scanners if scanner.result == "open"]
        name = f"{host.host_name}.{host.domain_name}" if host.domain_name else host.host_name
        element = hosts.get(host.ip)
        reports.append(
            HostReport(
                address=printable(host.ip),
                hostname=printable(name) or None,
                open_tcp_ports=tuple(sorted({s.port for s in opened if s.protocol in ("", "tcp")})),
                banners={s.port: printable(s.banner_text) for s in opened if s.banner_text},
                ci_class=None if element is None else printable(element.get("ci_class")) or None,
                evidence=() if element is None else _texts(e.text for e in element.iter("evidence")),
                engine=printable(result.engine),
            )
        )
    return reports


def _nmap_reports(payload: ResultsPayload) -> list[HostReport]:
    """The nmap ``<host address=..>`` elements (the Nmap topics) that are up."""
    reports = []
    for result in payload.results:
        for host in result.iter("host"):
            if host.get("address") is None or host.get("status", "up") != "up":
                continue
            services: dict[int, str] = {}
            ports = []
            for port in host.iter("port"):
                number = port.get("portid", "")
                if port.get("state") != "open" or not number.isdecimal():
                    continue
                if port.get("protocol", "tcp") == "tcp":
                    ports.append(int(number))
                what = " ".join(filter(None, (port.get(name) for name in ("service", "product", "version"))))
                if what:
                    services[int(number)] = printable(what)
            best = host.find("os")
            reports.append(
                HostReport(
                    address=printable(host.get("address")),
                    hostname=printable(host.get("hostname")) or None,
                    open_tcp_ports=tuple(sorted(ports)),
                    services=services,
                    ci_class=printable(host.get("ci_class")) or None,
                    evidence=() if best is None else _texts([f"nmap os: {best.get('name', '')}"]),
                    errors=("nmap host time-out: the scan of this host was cut short",)
                    if host.get("timed_out") == "true"
                    else (),
                )
            )
    return reports


def _plain_reports(payload: ResultsPayload) -> list[HostReport]:
    """Any other ``<host ip=..>`` elements (DNS, BannerSniff): the address, its name, status and open ports."""
    reports = []
    for result in payload.results:
        for host in result.iter("host"):
            address = host.get("ip") or host.get("address")
            if not address:
                continue
            short, domain = host.get("hostName", ""), host.get("domainName", "")
            name = host.get("name") or (f"{short}.{domain}" if short and domain else short)
            status = host.get("status")
            opened = [
                scanner
                for scanner in host.iter("scanner")
                if scanner.get("result") == "open" and scanner.get("port", "").isdecimal()
            ]
            reports.append(
                HostReport(
                    address=printable(address),
                    hostname=printable(name) or None,
                    open_tcp_ports=tuple(
                        sorted({int(s.get("port", "")) for s in opened if s.get("protocol", "tcp") == "tcp"})
                    ),
                    banners={
                        int(s.get("port", "")): printable(s.get("banner_text"))
                        for s in opened
                        if s.get("banner_text")
                    },
                    evidence=_texts([f"status {status}" if status else None]),
                )
            )
    return reports


def _classified(device: DiscoveredDevice | None, source: str, evidence: Iterable[str | None]) -> HostReport:
    if device is None:
        return HostReport(address=source, evidence=_texts(evidence))
    name = device.name if device.name != device.ip_address else None
    return HostReport(
        address=source,
        hostname=printable(name) or None,
        ci_class=printable(device.sys_class_name),
        evidence=_texts(evidence),
    )


def _commands(payload: ResultsPayload) -> tuple[str, ...]:
    """``uname -a: exit 0`` per command an SSH probe ran."""
    return _texts(
        f"{result.get('command')}: exit {result.get('exit_status', '?')}"
        for result in payload.results
        if result.get("command") is not None
    )


def host_reports(record: EccRecord, payload: ResultsPayload) -> list[HostReport]:
    """What an input record found, one report per host (at least one: its source, with any error)."""
    source = printable(record.source) or "-"
    reports: list[HostReport]
    if record.topic == "SNMPClassify":
        found = next(
            (r.find("classification") for r in payload.results if r.find("classification") is not None), None
        )
        device = read_snmp_classify(payload, record.source)
        report = _classified(
            device, source, () if found is None else (e.text for e in found.iter("evidence"))
        )
        confidence = found.get("confidence", "") if found is not None else ""
        reports = [replace(report, confidence=float(confidence) if _is_number(confidence) else 0.0)]
    elif record.topic == "SSHClassify":
        device = read_ssh_classify(payload, record.source)
        reports = [
            _classified(device, source, (e.text for r in payload.results for e in r.findall("evidence")))
        ]
    elif any(result.find(".//host") is not None for result in payload.results):
        reports = _shazzam_reports(payload) or _nmap_reports(payload) or _plain_reports(payload)
    else:
        reports = [HostReport(address=source, evidence=_commands(payload))]
    problems = _texts(dict.fromkeys((payload.error, record.error_string)))
    if problems:
        reports = reports or [HostReport(address=source)]
        reports[0] = replace(reports[0], errors=(*reports[0].errors, *problems))
    return reports


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_view(record: EccRecord, payload_text: str, out: TextIO) -> None:
    """The readable view: ``field: value`` lines, then the parameters (an output) or the hosts (an input)."""
    fields: Mapping[str, object] = record.as_dict()
    for name in _HEADER_FIELDS:
        value = fields.get(name)
        if value not in (None, ""):
            out.write(f"{name}: {printable(value)}\n")
    if not payload_text.strip():
        out.write("payload: (empty)\n")
        return
    try:
        payload = (
            decode_input_payload(payload_text)
            if record.queue == "input"
            else decode_output_payload(payload_text)
        )
    except PayloadError as error:
        out.write(f"payload: not readable ({printable(error)}); --format xml shows it as stored\n")
        return
    if not isinstance(payload, ResultsPayload):
        _write_parameters("parameters", payload.parameters, out)
        for probe in payload.probes if isinstance(payload, MultiProbePayload) else ():
            _write_parameters(
                f"probe {printable(probe.topic)} {printable(probe.name)}".rstrip(), probe.parameters, out
            )
        return
    if payload.probe_time_ms is not None:
        out.write(f"probe_time: {payload.probe_time_ms} ms\n")
    if payload.result_code is not None:
        out.write(f"result_code: {payload.result_code}\n")
    out.write("\n")
    reports = host_reports(record, payload)
    table = TableWriter(out, color=False, summary=False)
    table.begin(ScanHeader(targets=record.source, ports="", engine="", addresses=len(reports)))
    for report in reports:
        table.write(report)
    table.end(ScanStats())
    if record.topic == "SSHCommand":  # what the command printed is the answer itself
        _write_command_output(payload, out)


def _write_command_output(payload: ResultsPayload, out: TextIO) -> None:
    for result in payload.results:
        if result.get("command") is None:
            continue
        for stream in ("stdout", "stderr"):
            text = result.findtext(stream) or ""
            if text.strip():
                out.write(f"\n{stream} of {printable(result.get('command'))}:\n")
                out.write("".join(f"  {shown(line, keep=chr(9))}\n" for line in text.splitlines()))


def _write_parameters(title: str, parameters: Sequence[Parameter], out: TextIO) -> None:
    out.write(f"{title}:\n" if parameters else f"{title}: (none)\n")
    for parameter in parameters:
        out.write(f"  {printable(parameter.name)} = {printable(parameter.value)}\n")


def reports_json(record: EccRecord, payload_text: str) -> list[dict[str, object]] | None:
    """The hosts of an input record as the scan's JSON objects (None for an output or unreadable one)."""
    if record.queue != "input" or not payload_text.strip():
        return None
    try:
        payload = decode_input_payload(payload_text)
    except PayloadError:
        return None
    return [report.to_json_dict() for report in host_reports(record, payload)]


__all__ = ["host_reports", "reports_json", "write_view"]
