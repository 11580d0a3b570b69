"""``midprobe demo``: a discovery against the lab, through the ECC queue, end to end.

Brings up the lab, enqueues a Shazzam port scan of the lab subnet (and a
HeartbeatProbe) into an embedded SQLite ECC queue, runs the agent once inside
the lab's scanner namespace, names the hosts that answered with a DNS probe
through the same queue, and prints the hosts, their names and open ports.
"""

from __future__ import annotations

import ipaddress
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from midprobe.capabilities.errors import LabError
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.payload import decode_input_payload
from midprobe.runner.ecc.record import PRIORITY_INTERACTIVE
from midprobe.runner.lab import Lab
from midprobe.runner.queue.url import open_queue, sqlite_url

DEMO_AGENT = "demo-mid"
DEMO_PORTS = "22,23,25,53,80,135,139,443,445,515,631,3389,5985,8080,9100"


def shazzam_rows(results: tuple[ET.Element, ...]) -> list[tuple[str, str, str]]:
    """(ip, host name, open ports) for each host in Shazzam ``<result>`` elements."""
    rows = []
    for result in results:
        for host in result.iter("host"):
            ports = sorted(
                {
                    int(scanner.get("port", "0"))
                    for scanner in host.iter("scanner")
                    if scanner.get("result") == "open"
                }
            )
            name = ".".join(part for part in (host.get("hostName"), host.get("domainName")) if part)
            rows.append((host.get("ip", "?"), name, ", ".join(map(str, ports))))
    return rows


def dns_names(results: tuple[ET.Element, ...]) -> dict[str, str]:
    """ip -> name from the ``<host>`` elements of a ``DNS`` result (docs/dns.md)."""
    return {
        host.get("ip", ""): host.get("name", "")
        for result in results
        for host in result.iter("host")
        if host.get("status") == "ok" and host.get("name")
    }


def _midprobe_command() -> str:
    """How to call midprobe from the user's shell: ``midprobe`` when on PATH, else its full path."""
    installed = Path(sys.executable).parent / "midprobe"
    on_path = shutil.which("midprobe")
    if on_path is not None and Path(on_path).resolve() == installed.resolve():
        return "midprobe"
    return str(installed) if installed.exists() else "midprobe"


def _run_agent_once(lab: Lab, url: str) -> str:
    """Run ``midprobe agent --once --lab`` in the scanner namespace; return its summary line."""
    argv = [sys.executable, "-m", "midprobe.runner", "agent", "--name", DEMO_AGENT, "--queue", url]
    argv += ["--once", "--lab", "--poll-busy", "0.5", "--log-level", "warning"]
    completed = lab.run(argv, check=False, timeout=600)
    if completed.returncode != 0:
        raise LabError(f"the agent failed (exit {completed.returncode}): {completed.stderr.strip()[-500:]}")
    return completed.stdout.strip()


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where the SQLite ECC queue (ecc.db) is written.",
)
@click.option(
    "--keep-lab", is_flag=True, help="Leave the lab running (remove it later with `midprobe lab down`)."
)
def demo(workdir: Path, keep_lab: bool) -> None:
    """Bring up the lab, run a discovery through the ECC queue, print what was found."""
    console = Console(width=None if sys.stdout.isatty() else 120)
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "ecc.db"
    for stale in (database, workdir / "ecc.db-wal", workdir / "ecc.db-shm"):
        stale.unlink(missing_ok=True)
    url = sqlite_url(database)

    console.print("[bold]1. Bringing up the lab[/bold] (network namespaces, real sshd/snmpd/dnsmasq)")
    lab = Lab.up()
    try:
        hosts = Table("host", "address", "profile", "services", box=None)
        for host in lab.hosts:
            hosts.add_row(host.name, host.address, host.profile, ", ".join(host.services) or "(silent)")
        console.print(hosts)

        console.print(f"\n[bold]2. Enqueueing probe requests[/bold] into {url}")
        scan = new_output_record(
            agent=DEMO_AGENT, topic="Shazzam", source=lab.network, parameters={"ports": DEMO_PORTS}
        )
        heartbeat = new_output_record(agent=DEMO_AGENT, topic="HeartbeatProbe", priority=PRIORITY_INTERACTIVE)
        with open_queue(url) as queue:
            queue.enqueue_many([scan, heartbeat])
        console.print(f"   Shazzam {lab.network} ports {DEMO_PORTS}: {scan.sys_id}")
        console.print(f"   HeartbeatProbe (interactive priority): {heartbeat.sys_id}")

        console.print(
            f"\n[bold]3. Running the agent once[/bold] in the scanner namespace {lab.scanner_namespace}"
        )
        console.print(f"   {_run_agent_once(lab, url)}")
        with open_queue(url) as queue:
            answers = queue.list(queue_side="input", response_to=scan.sys_id)
            beat = queue.list(queue_side="input", response_to=heartbeat.sys_id)
            payloads = [queue.read_payload(record) for record in answers]
        for record in answers:
            if record.error_string:
                console.print(f"   [red]Shazzam failed:[/red] {record.error_string}")
        rows = [row for payload in payloads for row in shazzam_rows(decode_input_payload(payload).results)]
        rows.sort(key=lambda row: ipaddress.ip_address(row[0]))  # hosts are reported as they finish
        if beat:
            console.print(f"   HeartbeatProbe answered with result_code 0: {not beat[0].error_string}")

        addresses = [ip for ip, _, _ in rows]
        console.print(
            f"\n[bold]4. Naming the {len(addresses)} hosts that answered[/bold] (DNS probe, lab dnsmasq)"
        )
        names: dict[str, str] = {}
        if addresses:
            lookup = new_output_record(
                agent=DEMO_AGENT,
                topic="DNS",
                parameters={"ip_addresses": ",".join(addresses), "dns_servers": lab.dns_server},
            )
            with open_queue(url) as queue:
                queue.enqueue(lookup)
            console.print(f"   DNS for {len(addresses)} addresses via {lab.dns_server}: {lookup.sys_id}")
            console.print(f"   {_run_agent_once(lab, url)}")
            with open_queue(url) as queue:
                for record in queue.list(queue_side="input", response_to=lookup.sys_id):
                    names.update(dns_names(decode_input_payload(queue.read_payload(record)).results))

        console.print("\n[bold]5. Results[/bold] (decoded from the ECC input records)")
        table = Table("ip", "host name", "open TCP ports", box=None)
        for ip, shazzam_name, ports in rows:
            table.add_row(ip, names.get(ip, shazzam_name), ports or "(alive, nothing open)")
        console.print(table)

        console.print("\n[bold]6. Where the ECC records are[/bold]")
        command = _midprobe_command()
        console.print(f"   queue: {url}")
        console.print(f"   {command} ecc list --queue {url}")
        if answers:
            console.print(f"   {command} ecc show {answers[0].sys_id} --queue {url}")
    finally:
        if keep_lab:
            lab.detach()
            console.print(f"\nlab {lab.prefix} left running; `midprobe lab down` removes it")
        else:
            lab.down()
