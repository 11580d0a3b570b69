"""``midprobe demo``: a discovery against the lab, through the ECC queue, end to end.

Brings up the lab, writes a discovery schedule and the lab's credentials, runs
``midprobe discover run --local --lab`` inside the lab's scanner namespace (every phase
through an embedded SQLite ECC queue), and prints the discovery's status and the CMDB.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from midprobe.capabilities.errors import LabError
from midprobe.runner.lab import Lab
from midprobe.runner.lab.credentials_file import lab_credentials_toml
from midprobe.runner.queue.url import sqlite_url

DEMO_AGENT = "demo-mid"
#: Where ``instance serve --listen 127.0.0.1:8443`` (the serve command's default) puts the console.
CONSOLE_ADDRESS = "https://127.0.0.1:8443/console"
DEMO_PORTS = "22,23,25,53,80,135,139,443,445,515,631,3389,5985,8080,9100"


def _midprobe_command() -> str:
    """How to call midprobe from the user's shell: ``midprobe`` when on PATH, else its full path."""
    installed = Path(sys.executable).parent / "midprobe"
    on_path = shutil.which("midprobe")
    if on_path is not None and Path(on_path).resolve() == installed.resolve():
        return "midprobe"
    return str(installed) if installed.exists() else "midprobe"


def _in_lab(lab: Lab, *args: str, timeout: float = 600) -> str:
    """Run ``midprobe ARGS`` in the scanner namespace; its stdout (stderr passes through on failure)."""
    completed = lab.run([sys.executable, "-m", "midprobe.runner", *args], check=False, timeout=timeout)
    if completed.returncode != 0:
        raise LabError(
            f"midprobe {args[0]} failed (exit {completed.returncode}): {completed.stderr.strip()[-500:]}"
        )
    return completed.stdout


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where the SQLite ECC queue and CMDB (ecc.db), the schedule and the lab credentials are written.",
)
@click.option(
    "--keep-lab", is_flag=True, help="Leave the lab running (remove it later with `midprobe lab down`)."
)
def demo(workdir: Path, keep_lab: bool) -> None:
    """Bring up the lab, run a discovery of it through the ECC queue, print the CMDB it filled."""
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

        credentials = workdir / "creds.toml"
        credentials.touch(mode=0o600)
        credentials.chmod(0o600)
        credentials.write_text(lab_credentials_toml(lab), encoding="utf-8")
        schedule = workdir / "lab.toml"
        schedule.write_text(
            f'name = "demo"\nranges = ["{lab.network}"]\ncredentials = "creds.toml"\nports = "{DEMO_PORTS}"\n',
            encoding="utf-8",
        )
        console.print(f"\n[bold]2. Discovering {lab.network}[/bold] with the schedule {schedule}")
        console.print("   scanning (Shazzam) -> classification (SSH, SNMP, Nmap) -> identification (CMDB),")
        console.print(f"   each phase through the ECC queue {url}, an agent embedded in the same process")
        out = _in_lab(lab, "discover", "run", str(schedule), "--queue", url, "--local", "--lab")
        status_id = out.split()[0]

        console.print(f"\n[bold]3. The discovery's status[/bold] ({status_id})")
        console.print(
            _in_lab(lab, "discover", "status", status_id, "--queue", url).rstrip(), markup=False, emoji=False
        )

        console.print("\n[bold]4. The CMDB it filled[/bold] (one CI per device)")
        click.echo(_in_lab(lab, "cmdb", "list", "--queue", url).rstrip())

        console.print("\n[bold]5. Where to look next[/bold]")
        command = _midprobe_command()
        click.echo(f"   {command} cmdb show linux1 --queue {url}")
        click.echo(f"   {command} discover status {status_id} --queue {url}")
        click.echo(f"   {command} ecc list --queue {url}")
        console.print("\n   The web console (no instance runs after the demo; serve its queue to browse it):")
        click.echo(
            f"   MIDPROBE_INSTANCE_PASSWORD=... {command} instance user add operator --role admin --queue {url}"
        )
        click.echo(f"   {command} instance serve --queue {url} --listen 127.0.0.1:8443")
        click.echo(f"   then open {CONSOLE_ADDRESS} (log in as operator)")
    finally:
        if keep_lab:
            lab.detach()
            console.print(
                f"\nlab {lab.prefix} left running; `midprobe lab down --prefix {lab.prefix}` removes it"
            )
        else:
            lab.down()
