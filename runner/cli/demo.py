"""``midprobe demo``: the instance, a MID Server and a discovery of the lab, end to end over HTTPS.

Brings up the lab, serves the instance (``midprobe instance serve``) on the scanner's lab address,
starts a MID Server in another lab host's namespace that reaches the instance only over HTTPS,
validates it (``midprobe mid validate``: until then it gets no work and no credentials), runs a
discovery of the lab through the instance (``midprobe discover run --queue https://...``) and
prints its status and the CMDB. The instance, the MID and the lab are left running, with a forward
from a 127.0.0.1 port of this machine to the instance, so the console can be opened in a browser;
``midprobe lab down --prefix PREFIX`` stops them all (``--stop`` does it at the end of the demo).
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import click
from rich.console import Console
from rich.table import Table

from midprobe.capabilities.errors import LabError
from midprobe.runner.lab import Lab
from midprobe.runner.lab.credentials_file import lab_credentials_toml
from midprobe.runner.queue.url import sqlite_url

DEMO_AGENT: Final = "demo-mid"
OPERATOR: Final = "operator"
#: The lab host whose namespace the MID Server runs in (it reaches the instance across the lab's bridge).
AGENT_HOST: Final = "web1"
INSTANCE_PORT: Final = 8443
#: The port on this machine's 127.0.0.1 that forwards to the console (a free one if it is taken).
CONSOLE_PORT: Final = 8443
DEMO_PORTS: Final = "22,23,25,53,80,135,139,443,445,515,631,3389,5985,8080,9100"
START_SECONDS: Final = 60.0
"""How long the instance may take to listen, and the MID to register."""


def _midprobe_command() -> str:
    """How to call midprobe from the user's shell: ``midprobe`` when on PATH, else its path."""
    installed = Path(sys.executable).parent / "midprobe"
    on_path = shutil.which("midprobe")
    if on_path is not None and Path(on_path).resolve() == installed.resolve():
        return "midprobe"
    return _shown(installed) if installed.exists() else "midprobe"


def _shown(path: str | Path) -> str:
    """A path as the user types it from where they ran the demo: relative below the current folder."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _runner(namespace: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, sys.executable, "-m", "midprobe.runner", *args]


def _in_lab(lab: Lab, *args: str, env: Mapping[str, str] | None = None, timeout: float = 600) -> str:
    """Run ``midprobe ARGS`` in the scanner namespace; its stdout (stderr passes through on failure)."""
    completed = lab.run(
        [sys.executable, "-m", "midprobe.runner", *args], check=False, timeout=timeout, env=env
    )
    if completed.returncode != 0:
        raise LabError(
            f"midprobe {' '.join(args[:2])} failed (exit {completed.returncode}): {completed.stderr.strip()[-500:]}"
        )
    return completed.stdout


def _background(
    argv: list[str], log: Path, env: Mapping[str, str], pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    """``argv`` in its own session, writing to ``log``: it outlives the demo (``lab down`` ends it)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},  # its lines reach the log as written
            start_new_session=True,
            pass_fds=pass_fds,
        )


def _wait_for(what: str, done: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``done()``, looking every tenth of a second for at most ``START_SECONDS``."""
    deadline = time.monotonic() + START_SECONDS
    while not done():
        if process.poll() is not None or time.monotonic() > deadline:
            said = log.read_text(encoding="utf-8", errors="replace").strip()[-500:]
            raise LabError(f"{what} did not come up: {said or 'it wrote nothing'}")
        time.sleep(0.1)


def _console_listener() -> socket.socket:
    """A listening socket on this machine's 127.0.0.1: ``CONSOLE_PORT``, or any free port when it is taken."""
    for port in (CONSOLE_PORT, 0):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", port))
        except OSError as error:
            listener.close()
            if error.errno == errno.EADDRINUSE and port:
                continue
            raise LabError(f"cannot listen on 127.0.0.1:{port}: {error.strerror}") from None
        listener.listen(64)
        return listener
    raise LabError("no free port on 127.0.0.1")  # pragma: no cover - port 0 always binds


def _forward_console(lab: Lab, target: str) -> int:
    """Forward a 127.0.0.1 port of this machine to ``target`` in the scanner namespace; the port."""
    listener = _console_listener()
    try:
        fd = listener.fileno()
        argv = [sys.executable, "-m", "midprobe.runner.lab.forward", "--fd", str(fd)]
        argv += ["--namespace", lab.scanner_namespace, "--target", target]
        argv += ["--log", str(lab.workdir / "console-forward.log")]  # in the lab's folder: `lab down` ends it
        _background(argv, lab.workdir / "console-forward.log", {}, pass_fds=(fd,))
        return int(listener.getsockname()[1])
    finally:
        listener.close()


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where the instance's database (ecc.db: queue, CMDB, users), its TLS folder, the schedule, "
    "the lab credentials, the operator's password and the logs are written.",
)
@click.option(
    "--stop",
    is_flag=True,
    help="Stop the instance and the MID and remove the lab at the end [leave them running for the console].",
)
def demo(workdir: Path, stop: bool) -> None:
    """Bring up the lab, the instance and a validated MID Server, discover the lab over HTTPS, print the CMDB and the console's address."""
    console = Console(width=None if sys.stdout.isatty() else 120)
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "ecc.db"
    for stale in (database, workdir / "ecc.db-wal", workdir / "ecc.db-shm"):
        stale.unlink(missing_ok=True)
    for log in ("instance.log", "agent.log"):
        (workdir / log).unlink(missing_ok=True)
    shutil.rmtree(workdir / "agent-state", ignore_errors=True)
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
            f'name = "demo"\nranges = ["{lab.network}"]\nports = "{DEMO_PORTS}"\n', encoding="utf-8"
        )
        passwords = {OPERATOR: secrets.token_urlsafe(18), DEMO_AGENT: secrets.token_urlsafe(18)}
        password_file = workdir / "operator-password"
        password_file.touch(mode=0o600)
        password_file.chmod(0o600)
        password_file.write_text(passwords[OPERATOR] + "\n", encoding="utf-8")
        from midprobe.runner.instance.auth import open_users

        with open_users(url) as users:
            users.add(OPERATOR, passwords[OPERATOR], ("admin",))
            users.add(DEMO_AGENT, passwords[DEMO_AGENT], ("mid_server",), mids=(DEMO_AGENT,))

        listen = f"{lab.scanner_address}:{INSTANCE_PORT}"
        console.print(
            f"\n[bold]2. Serving the instance[/bold] on {listen} in the lab (Table API, MID endpoints, console)"
        )
        instance_log = workdir / "instance.log"
        instance = _background(
            [
                *_runner(lab.scanner_namespace, "instance", "serve", "--queue", url, "--listen", listen),
                *("--credentials", str(credentials)),
            ],
            instance_log,
            {},
        )
        _wait_for(
            "the instance",
            lambda: "CA fingerprint" in instance_log.read_text(encoding="utf-8"),
            instance,
            instance_log,
        )
        base, ca = "", ""
        for line in instance_log.read_text(encoding="utf-8").splitlines():
            base = line if line.startswith("https://") else base
            ca = line.removeprefix("CA: ") if line.startswith("CA: ") else ca
        shown_ca = _shown(ca)
        click.echo(f"   {base} (CA {shown_ca}); users {OPERATOR} (admin) and {DEMO_AGENT} (mid_server)")
        click.echo(f"   it seals the lab's credentials ({credentials.name}) to each validated MID's own key")

        agent_host = lab.host(AGENT_HOST)
        console.print(
            f"\n[bold]3. Starting MID Server {DEMO_AGENT}[/bold] on {agent_host.name} ({agent_host.address}), "
            f"reaching the instance over HTTPS"
        )
        agent_log = workdir / "agent.log"
        agent_args = [
            "agent",
            "--name",
            DEMO_AGENT,
            "--queue",
            base,
            "--user",
            DEMO_AGENT,
            "--ca",
            ca,
            "--lab",
        ]
        agent_args += ["--state", str(workdir / "agent-state"), "--poll-idle", "2", "--poll-busy", "1"]
        agent = _background(
            _runner(agent_host.namespace, *agent_args),
            agent_log,
            {"MIDPROBE_INSTANCE_PASSWORD": passwords[DEMO_AGENT]},
        )
        from midprobe.runner.queue.url import open_queue

        with open_queue(url) as queue:
            _wait_for(f"MID {DEMO_AGENT}", lambda: queue.get_agent(DEMO_AGENT) is not None, agent, agent_log)
        as_operator = ["--queue", base, "--user", OPERATOR, "--ca", ca]
        operator_env = {"MIDPROBE_INSTANCE_PASSWORD": passwords[OPERATOR]}
        command = _midprobe_command()
        click.echo(f"   $ {command} mid list --queue {base} --user {OPERATOR} --ca {shown_ca}")
        click.echo(_in_lab(lab, "mid", "list", *as_operator, env=operator_env).rstrip())
        click.echo(
            f"   $ {command} mid validate {DEMO_AGENT} --queue {base} --user {OPERATOR} --ca {shown_ca}"
        )
        click.echo(_in_lab(lab, "mid", "validate", DEMO_AGENT, *as_operator, env=operator_env).rstrip())

        console.print(
            f"\n[bold]4. Discovering {lab.network}[/bold] through the instance, with the schedule {_shown(schedule)}"
        )
        console.print("   scanning (Shazzam) -> classification (SSH, SNMP, Nmap) -> identification (CMDB),")
        console.print(
            f"   each phase an ECC output the instance queues for {DEMO_AGENT}, which answers it over HTTPS"
        )
        out = _in_lab(lab, "discover", "run", str(schedule), *as_operator, "--lab", env=operator_env)
        status_id = out.split()[0]

        console.print(f"\n[bold]5. The discovery's status[/bold] ({status_id})")
        status = _in_lab(lab, "discover", "status", status_id, *as_operator, env=operator_env)
        console.print(status.rstrip(), markup=False, emoji=False)

        console.print("\n[bold]6. The CMDB it filled[/bold] (one CI per device)")
        click.echo(_in_lab(lab, "cmdb", "list", *as_operator, env=operator_env).rstrip())

        port = _forward_console(lab, f"{lab.scanner_address}:{INSTANCE_PORT}")
        console.print("\n[bold]7. The web console[/bold]")
        click.echo(
            f"   open https://127.0.0.1:{port}/console (forwarded to the instance at {base} in the lab)"
        )
        click.echo(f"   log in as {OPERATOR}, password in {_shown(password_file)}")
        click.echo(f"   the certificate is signed by the instance's own CA: {shown_ca}")
        click.echo(
            f"   the database, for the commands: {command} cmdb show linux1 --queue {sqlite_url(_shown(database))}"
        )
    except BaseException:
        lab.down()
        raise
    if stop:
        lab.down()
        console.print(f"\nlab {lab.prefix} removed; the instance and the MID stopped with it")
    else:
        lab.detach()
        console.print(
            f"\nThe instance, {DEMO_AGENT} and lab {lab.prefix} keep running; "
            f"`{command} lab down --prefix {lab.prefix}` stops them all"
        )
