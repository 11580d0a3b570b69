"""``midprobe scan``: the standalone scanner (nmap-style targets and ports), one report per host as it finishes.

Every input is checked before a packet leaves: the command line by ``runner/scan/plan.py``, the
targets (names resolved, every address against the policy) by the Shazzam probe of the scan's
embedded agent, whose first page of the port scan's answer the pipeline (``runner/scan/pipeline.py``)
reads when it prepares the scan, before any output is written. The output formats are
``runner/scan/render.py``. See docs/scan.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path
from typing import TextIO, cast

import click

from midprobe.capabilities.errors import ConfigError, PortSpecError
from midprobe.capabilities.numbers import NumberRange
from midprobe.probes.neighbour_table import read_overflows
from midprobe.probes.ports import format_ports, parse_ports
from midprobe.probes.safety import TargetPolicy, require_lab_namespace, stays_on_loopback
from midprobe.probes.shazzam import DEFAULT_PORTS
from midprobe.probes.targets import TargetSpec
from midprobe.probes.tcpscan.engine import ENGINE_CHOICES
from midprobe.runner.cli import aio
from midprobe.runner.cli.main import PartialResults, nothing_left_to_tear_down
from midprobe.runner.cli.nmap_flags import NmapFlagsCommand
from midprobe.runner.cli.options import OUTPUT_FILE, NumberType, defaults_file_option, integer, seconds
from midprobe.runner.scan.pipeline import ScanPipeline, ScanSettings, ScanStats
from midprobe.runner.scan.plan import (
    CredentialSource,
    check_host_names,
    check_size,
    load_credentials,
    name_resolver,
    require_nmap,
    target_spec,
)
from midprobe.runner.scan.render import (
    FORMATS,
    Format,
    ProgressDisplay,
    ScanHeader,
    incomplete_warning,
    interrupted_text,
    make_writer,
    summary_line,
)
from midprobe.runner.scan.timing import TIMING_CHOICES, timing_template

#: Threads for blocking work the stages hand off (python-nmap; paramiko has its own pool).
BLOCKING_THREADS = 16


def _tcp_ports(text: str) -> tuple[int, ...]:
    ports = parse_ports(text)
    if ports.udp:
        raise PortSpecError(
            f"bad port list {text!r}: midprobe scan probes TCP ports only (SNMP on UDP 161 is asked "
            "with --credentials)"
        )
    return ports.tcp


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[TextIO | None]:
    """The ``-o`` file, open for writing; any failure to write it (``/proc/version``, a full disk)
    is a ``ConfigError`` naming the file, whether it comes at open, on a write or at close."""
    if path is None:
        yield None
        return
    try:
        with path.open("w", encoding="utf-8") as stream:
            yield stream
    except OSError as error:
        raise ConfigError(
            f"cannot write the output file: {error.strerror or error}", source=str(path), field="--output"
        ) from None


async def _run(
    spec: TargetSpec,
    settings: ScanSettings,
    *,
    yes: bool,
    output_format: Format,
    output_path: Path | None,
    dns_note: str | None,
    verbose_timing: str | None = None,
    quiet: bool = False,
) -> ScanStats:
    """Prepare the scan (targets resolved and checked), then write its reports.

    On stderr: the summary after the scan (unless the table on stdout ends with it), and, with
    ``verbose_timing`` (``-v``: the timing), a line saying what is scanned how before it. ``quiet``
    (``-q``): no progress bar, no note, no summary: only the results and errors. A scan with
    incomplete hosts ends with a warning line saying why and what to do, ``-q`` or not.
    """
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(BLOCKING_THREADS, "midprobe-scan"))
    pipeline = ScanPipeline(settings)
    policy = settings.policy
    lab_dns = policy.name_server is not None and not ip_address(policy.name_server).is_loopback
    if policy.lab_mode and lab_dns and spec.host_names:
        require_lab_namespace()  # before the first lookup at the lab's DNS server
    # The targets are resolved and checked here, before anything is sent or written.
    scan = await pipeline.prepare(spec)
    try:
        count = scan.hosts_scanned
        check_size(count, yes=yes, rate=settings.rate)
        if dns_note and not quiet:
            click.echo(f"midprobe: note: {dns_note}", err=True)
        header = ScanHeader(
            targets=str(spec), ports=format_ports(settings.ports), engine=scan.engine, addresses=count
        )
        if policy.lab_mode and not stays_on_loopback(spec, policy.name_server):
            require_lab_namespace()  # everything else checked: the last word before the first packet
        if verbose_timing is not None:
            click.echo(
                f"midprobe: scanning {count:,} address(es), {len(settings.ports)} TCP port(s) with the "
                f"{scan.engine} engine, timing {verbose_timing}",
                err=True,
            )
        # The table on stdout ends with the summary; any other output gets it on stderr (as nmap
        # keeps its normal output on the terminal with -oX).
        summary_on_stderr = not quiet and not (output_format == "table" and output_path is None)
        complete = False
        overflows_before = read_overflows()
        try:
            with (
                _output(output_path) as stream,
                ProgressDisplay(
                    count, enabled=False if quiet else None, stdout_is_output=stream is None
                ) as progress,
            ):
                # On the bar's terminal the table prints through the bar's console, above the bar.
                writer = make_writer(output_format, stream, console=progress.console, summary=not quiet)
                pipeline.on_progress = progress.update
                writer.begin(header)
                try:
                    async for report in pipeline.reports(scan):
                        writer.write(report)
                    complete = True
                finally:
                    # Also on an error or Ctrl-C: the output stays a whole document (ECC XML closes)
                    # that says it is incomplete, instead of claiming every address was scanned.
                    writer.end(pipeline.stats, complete=complete)
        finally:
            if summary_on_stderr and pipeline.stats.engine:  # the scan ran (or was stopped running)
                click.echo(_stderr_summary(pipeline.stats, header, output_path, complete=complete), err=True)
            if pipeline.stats.incomplete:
                warning = incomplete_warning(pipeline.stats.incomplete, overflows_before, read_overflows())
                click.echo(f"midprobe: warning: {warning}", err=True)
    finally:
        await scan.aclose()  # a scan refused here never started; one that ran is stopped
    return pipeline.stats


def _stderr_summary(stats: ScanStats, header: ScanHeader, path: Path | None, *, complete: bool) -> str:
    """``midprobe: 6 host(s) up, 256 addresses scanned in 3.24 s (connect scan), results in FILE``."""
    text = f"midprobe: {summary_line(stats)}"
    if path is not None:
        text += f", results in {path}"
    if not complete:
        text += f"; {interrupted_text(stats.scanned, header.addresses)}"
    return text


def _engine_choice(engine: str, *, syn_scan: bool, connect_scan: bool) -> str:
    """``--engine``, or what nmap's ``-sS``/``-sT`` asked for; two different answers are an error."""
    asked = {name for name, flag in (("syn", syn_scan), ("connect", connect_scan)) if flag}
    if engine != "auto":
        asked.add(engine)
    if len(asked) > 1:
        flags = " and ".join(
            [f"--engine {engine}"] * (engine != "auto") + ["-sS"] * syn_scan + ["-sT"] * connect_scan
        )
        raise ConfigError(f"{flags} ask for different scan engines: give one", field="--engine")
    return asked.pop() if asked else engine


@click.command("scan", cls=NmapFlagsCommand)
@click.argument("targets", nargs=-1)
@defaults_file_option("scan", "MIDPROBE_SCAN_CONFIG")
@click.option(
    "-p",
    "--ports",
    "ports_text",
    default=DEFAULT_PORTS,
    show_default=True,
    metavar="PORTS",
    help="TCP ports in nmap syntax: 22,80,8000-8100, '-' for all, service names.",
)
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="TARGETS",
    help="Targets to leave out (same syntax, comma-separated; repeatable).",
)
@click.option(
    "-iL",
    "input_lists",
    multiple=True,
    metavar="FILE",
    help="Read targets from FILE (one or more per line, '#' comments; '-' = stdin).",
)
@click.option(
    "--nmap",
    "-sV",
    "nmap_services",
    is_flag=True,
    help="nmap service/version detection (-sV) on the open ports (needs nmap).",
)
@click.option("--os", "-O", "nmap_os", is_flag=True, help="nmap OS detection (-O) (needs nmap and root).")
@click.option(
    "--dns-server",
    "dns_servers",
    multiple=True,
    metavar="IP",
    envvar="MIDPROBE_DNS_SERVER",
    help="Resolve names (PTR; the first one also target host names) with this server (repeatable; "
    "env MIDPROBE_DNS_SERVER, set to the lab's inside `midprobe lab exec`); default: the system "
    "resolver, never with --lab.",
)
@click.option("-n", "no_dns", is_flag=True, help="Never look up host names (as nmap -n).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table, json (one object per host per line) or ecc (ECC input payload XML).",
)
@click.option(
    "-o",
    "--output",
    "output_path",
    type=OUTPUT_FILE,
    default=None,
    help="Write the results to FILE instead of stdout.",
)
@click.option(
    "--lab",
    "lab_mode",
    is_flag=True,
    envvar="MIDPROBE_LAB_MODE",
    help="Refuse every target outside the lab networks (198.18.0.0/15, 2001:db8::/32, 127.0.0.0/8, ::1); "
    "env MIDPROBE_LAB_MODE, set inside `midprobe lab exec`.",
)
@click.option("--yes", is_flag=True, help="Scan a huge range (more than 65,536 addresses) without a --rate.")
@click.option(
    "--rate",
    type=NumberType(NumberRange(0.001, 10_000_000)),
    default=None,
    metavar="N",
    help="At most N port probes per second.  [default: no limit, or -T's]",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINE_CHOICES),
    default="auto",
    show_default=True,
    help="Port scan engine: syn (raw sockets), connect, or auto (syn when allowed).",
)
@click.option("-sS", "syn_scan", is_flag=True, help="nmap's name for --engine syn.")
@click.option("-sT", "connect_scan", is_flag=True, help="nmap's name for --engine connect.")
@click.option(
    "-Pn",
    "no_ping",
    is_flag=True,
    help="No host discovery: port-scan every address, not only those that answer a ping sweep first.",
)
@click.option(
    "-T",
    "timing",
    type=click.Choice(TIMING_CHOICES),
    default=None,
    metavar="0-5",
    help="nmap's timing template (-T4, -T aggressive): sets --wait, --retries and --rate "
    "when they are not given (docs/scan.md). Default: 3 (normal).",
)
@click.option(
    "--wait",
    "wait_ms",
    type=integer(1, 60_000),
    default=None,
    metavar="MS",
    help="Longest wait for one port's answer.  [default: 1000, or -T's]",
)
@click.option(
    "--retries",
    type=integer(0, 10),
    default=None,
    help="Probes resent to a port that did not answer.  [default: 2, or -T's]",
)
@click.option("--no-banners", is_flag=True, help="Do not read banners on the open ports.")
@click.option(
    "--snmp-public",
    is_flag=True,
    help="Ask UDP 161 for sysObjectID/sysDescr with the community 'public' (no credentials needed).",
)
@click.option(
    "--credentials",
    "credential_files",
    multiple=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Credentials TOML (SSH and SNMP) for credentialed classification (docs/credentials.md).",
)
@click.option(
    "--ssh-credentials",
    "ssh_credential_files",
    multiple=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Like --credentials, taking only the file's SSH credentials.",
)
@click.option(
    "--snmp-credentials",
    "snmp_credential_files",
    multiple=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Like --credentials, taking only the file's SNMP credentials.",
)
@click.option(
    "--concurrency",
    type=integer(1, 1024),
    default=32,
    show_default=True,
    help="Hosts enriched (banners, DNS, nmap, SSH, SNMP) at the same time.",
)
@click.option(
    "--host-timeout",
    type=seconds(1.0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Longest time spent enriching one host.",
)
@click.option(
    "--queue",
    "queue_url",
    default=None,
    metavar="URL",
    help="Send the stages' ECC requests through this queue (sqlite:///path.db, postgresql://...) and "
    "keep them there, for midprobe ecc to show.  [default: a private in-memory queue]",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Also say on stderr what is scanned how (addresses, ports, engine, timing) before the scan.",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress bar, notes or summary (on stderr, or ending the table): only results and errors.",
)
def scan(
    targets: tuple[str, ...],
    ports_text: str,
    excludes: tuple[str, ...],
    input_lists: tuple[str, ...],
    nmap_services: bool,
    nmap_os: bool,
    dns_servers: tuple[str, ...],
    no_dns: bool,
    output_format: str,
    output_path: Path | None,
    lab_mode: bool,
    yes: bool,
    rate: float | None,
    engine: str,
    syn_scan: bool,
    connect_scan: bool,
    no_ping: bool,
    timing: str | None,
    wait_ms: int | None,
    retries: int | None,
    no_banners: bool,
    snmp_public: bool,
    credential_files: tuple[Path, ...],
    ssh_credential_files: tuple[Path, ...],
    snmp_credential_files: tuple[Path, ...],
    concurrency: int,
    host_timeout: float,
    queue_url: str | None,
    verbose: bool,
    quiet: bool,
) -> None:
    """Scan TARGETS (nmap syntax: 198.18.0.0/24, 10.0.0.1-20, host names, IPv6) and classify each host.

    The addresses that answer a ping sweep (not with -Pn) are port-scanned, and each host is
    reported as soon as it is done: open TCP ports, services and banners, its DNS name, the CMDB
    class the classifier chose and the evidence for it; with --credentials also what SSH and SNMP
    tell. Reports stream, so a /16 never sits in memory; the table of a scan of up to 4,096
    addresses is printed at the end, sorted by address. The summary goes to stderr unless the table
    on stdout ends with it.

    nmap's -sS, -sT, -sV, -O, -Pn, -T<0-5>, -v, -n, -p and -iL mean what they mean in nmap; its
    other flags are answered with the midprobe option to use.

    A host whose sends the kernel kept refusing (ENOBUFS: its neighbour table full) is reported
    incomplete, not down; a warning on stderr says what to raise, and the exit status is 1.
    """
    if verbose and quiet:
        raise ConfigError("-v/--verbose and -q/--quiet ask for opposite things: give one", field="--quiet")
    if queue_url is not None:
        from midprobe.runner.queue.url import open_queue  # a scan without --queue never loads it

        with open_queue(queue_url):  # a bad URL or an unwritable queue stops here, before anything is sent
            pass
    base_policy = TargetPolicy.lab() if lab_mode else TargetPolicy.unrestricted()
    ports = _tcp_ports(ports_text)
    spec = target_spec(targets, excludes, input_lists)
    resolver, dns_note = (
        (None, None) if no_dns and not dns_servers else name_resolver(dns_servers, base_policy)
    )
    # Target host names resolve through the first --dns-server (checked by name_resolver), in --lab
    # mode only there; the port scan stage's Shazzam probe resolves them.
    policy = (
        replace(base_policy, name_server=resolver.servers[0]) if dns_servers and resolver else base_policy
    )
    check_host_names(spec, policy)
    knobs = timing_template(timing).overridden(wait_ms=wait_ms, retries=retries, rate=rate)
    chosen_engine = _engine_choice(engine, syn_scan=syn_scan, connect_scan=connect_scan)
    nmap_syn = require_nmap(services=nmap_services, os_detection=nmap_os)
    sources = [CredentialSource(path) for path in credential_files]
    if ssh_credential_files or snmp_credential_files:  # the credentials package only when given
        from midprobe.probes.credentials import PROTOCOL_SNMP, PROTOCOL_SSH

        sources += [CredentialSource(path, PROTOCOL_SSH) for path in ssh_credential_files]
        sources += [CredentialSource(path, PROTOCOL_SNMP) for path in snmp_credential_files]
    store = load_credentials(sources)
    settings = ScanSettings(
        ports=ports,
        policy=policy,
        engine=chosen_engine,
        connect_wait_ms=knobs.wait_ms,
        retries=knobs.retries,
        rate=knobs.rate,
        sniff_banners=not no_banners,
        snmp_public=snmp_public,
        resolver=None if no_dns else resolver,
        nmap_services=nmap_services,
        nmap_os=nmap_os,
        nmap_syn=nmap_syn,
        credentials=store,
        host_concurrency=concurrency,
        host_timeout=host_timeout,
        ping=not no_ping,
        queue_url=queue_url,
    )
    note = None if no_dns else dns_note
    stats = aio.run(
        _run(
            spec,
            settings,
            yes=yes,
            output_format=cast(Format, output_format),
            output_path=output_path,
            dns_note=note,
            verbose_timing=knobs.describe() if verbose else None,
            quiet=quiet,
        ),
        stop_on_sigterm=True,
    )
    nothing_left_to_tear_down()
    if stats.incomplete:  # partial results: said on stderr and in the output, and in the exit status
        raise PartialResults
