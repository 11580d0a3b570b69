"""N lab SSH hosts x 5 commands: midprobe's SSHCommand probe against the OpenSSH client run N-wide.

Brings up the default lab plus extra Linux hosts (``--hosts``), then runs the same 5 commands on
every Linux host, all from the lab's scanner namespace with the lab's ed25519 key: OpenSSH
(``ssh -o BatchMode=yes -i key``, one process per command, ``xargs -P N``, with its default key
exchange and with ``curve25519-sha256``, the one paramiko negotiates), midprobe's SSHCommand as
an agent runs it (one request per command, N at once, through the runner's connection pool: the
commands of one host share its connection), SSHCommand without the pool (one connection per
command, all at once, at most 7 per host), and midprobe's SSHClassify way (one connection per
host running the 5 commands). The headline: pooled SSHCommand N-wide against OpenSSH N-wide with
``curve25519-sha256``, goal 2.0x.
Usage: .venv/bin/python bench/bench_ssh.py [--hosts 32]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from headline import headline  # noqa: E402

from midprobe.probes.base import ProbeContext, SharedResources  # noqa: E402
from midprobe.probes.credentials import CredentialStore  # noqa: E402
from midprobe.probes.safety import TargetPolicy  # noqa: E402
from midprobe.probes.ssh.channel import CommandOutput  # noqa: E402
from midprobe.probes.ssh.command import SSHCommandParams, SSHCommandProbe, SSHCommandResult  # noqa: E402
from midprobe.probes.ssh.known_hosts import InMemoryKnownHosts  # noqa: E402
from midprobe.probes.ssh.session import ssh_connection  # noqa: E402
from midprobe.runner.lab import Lab  # noqa: E402

COMMANDS = ("uname -a", "hostname", "cat /etc/os-release", "id", "cat /proc/loadavg")


@dataclass(frozen=True)
class Run:
    tool: str
    seconds: float
    succeeded: int


def openssh(lab: Lab, addresses: Sequence[str], width: int, kex: str | None = None) -> Run:
    """``xargs -P width`` over one ``ssh`` per (host, command), inside the scanner namespace.

    ``kex`` None: OpenSSH's default key exchange (sntrup761x25519 on Debian 12, costly in CPU);
    ``curve25519-sha256`` is what paramiko negotiates with the same sshd.
    """
    key = lab.credentials.ssh_private_key
    lines = "".join(f"{address} {command}\n" for address in addresses for command in COMMANDS)
    argv = [
        "xargs", "-P", str(width), "-L", "1",
        "ssh", "-n", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=15",
        # Debian's ssh_config turns GSSAPI on; with no KDC in the lab it only adds DNS waits.
        "-o", "GSSAPIAuthentication=no",
        *(["-o", f"KexAlgorithms={kex}"] if kex else []),
        "-i", str(key), "-l", lab.credentials.ssh_user,
    ]  # fmt: skip
    started = time.perf_counter()
    done = lab.run(argv, input=lines, check=False, timeout=600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(f"openssh: xargs exited {done.returncode}: {done.stderr.strip()[:300]}")
    # Every command prints at least one line; count the hosts' names as a check.
    succeeded = len(addresses) * len(COMMANDS) if done.returncode == 0 else 0
    return Run(f"OpenSSH client, {width}-wide, kex {kex or 'default'}", seconds, succeeded)


def credentials(lab: Lab, folder: Path) -> CredentialStore:
    path = folder / "bench-credentials.toml"
    path.write_text(
        "[[credential]]\n"
        'id = "lab-key"\n'
        'type = "ssh_private_key"\n'
        f'user = "{lab.credentials.ssh_user}"\n'
        f'private_key_file = "{lab.credentials.ssh_private_key}"\n'
    )
    return CredentialStore.load(path)


def midprobe_per_command(
    lab: Lab, store: CredentialStore, addresses: Sequence[str], width: int | None = None
) -> Run:
    """One SSHCommand request per (host, command) in xargs' order; ``width``: that many at once,
    through one connection pool as the agent's runner keeps it (None: all at once, no pool)."""
    probe = SSHCommandProbe(InMemoryKnownHosts())
    shared = SharedResources() if width is not None else None
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=store, shared=shared)
    params = [probe.parse_params(address, {"name": command}) for address in addresses for command in COMMANDS]
    at_once = asyncio.Semaphore(width or len(params))

    async def one(p: SSHCommandParams) -> SSHCommandResult:
        async with at_once:
            result = await probe.run(p, context)
            probe.encode_results(result)  # the ECC payload is part of the job
            return result

    async def everything() -> list[SSHCommandResult | BaseException]:
        try:
            return await asyncio.gather(*(one(p) for p in params), return_exceptions=True)
        finally:
            if shared is not None:
                await shared.close()

    with lab.namespace_thread() as thread:
        started = time.perf_counter()
        results = thread.run_async(everything)
        seconds = time.perf_counter() - started
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        print(f"midprobe SSHCommand: {len(failures)} failed, first: {failures[0]}")
    succeeded = sum(1 for r in results if not isinstance(r, BaseException) and r.output.exit_status == 0)
    tool = (
        f"midprobe SSHCommand, {width}-wide, pooled connections"
        if width is not None
        else "midprobe SSHCommand, all at once, 1 connection/command"
    )
    return Run(tool, seconds, succeeded)


def midprobe_per_host(lab: Lab, store: CredentialStore, addresses: Sequence[str]) -> Run:
    known_hosts = InMemoryKnownHosts()

    async def one_host(address: str) -> list[CommandOutput]:
        async with ssh_connection(
            address, 22, store=store, known_hosts=known_hosts, deadline=time.monotonic() + 300
        ) as connection:
            return [await connection.run(command) for command in COMMANDS]

    async def everything() -> list[list[CommandOutput] | BaseException]:
        return await asyncio.gather(*(one_host(a) for a in addresses), return_exceptions=True)

    with lab.namespace_thread() as thread:
        started = time.perf_counter()
        results = thread.run_async(everything)
        seconds = time.perf_counter() - started
    succeeded = sum(
        sum(1 for output in outputs if output.exit_status == 0)
        for outputs in results
        if not isinstance(outputs, BaseException)
    )
    return Run("midprobe, 1 connection/host (SSHClassify way)", seconds, succeeded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=32, help="Linux SSH hosts to use (default 32)")
    args = parser.parse_args()
    extra = max(0, args.hosts - 1)  # the default lab has one Linux server already
    print(f"bringing up the lab with {extra} extra Linux hosts ...", flush=True)
    started = time.perf_counter()
    with Lab.up(hosts=extra) as lab:
        print(f"lab up in {time.perf_counter() - started:.1f} s")
        addresses = [h.address for h in lab.hosts_with("ssh") if h.profile.startswith("linux")][: args.hosts]
        width = len(addresses)
        store = credentials(lab, lab.workdir)
        total = width * len(COMMANDS)
        print(f"{width} hosts x {len(COMMANDS)} commands = {total} command runs, key auth (ed25519)")
        runs = [
            openssh(lab, addresses, width),
            openssh(lab, addresses, width, "curve25519-sha256"),
            midprobe_per_command(lab, store, addresses, width),
            midprobe_per_command(lab, store, addresses),
            midprobe_per_host(lab, store, addresses),
        ]
    reference, pooled = runs[1], runs[2]
    print(f"{'tool':<56} {'seconds':>8} {'cmds/s':>8} {'ok':>5} {'ratio':>7}")
    for run in runs:
        print(
            f"{run.tool:<56} {run.seconds:>8.2f} {run.succeeded / run.seconds:>8.1f} {run.succeeded:>5} "
            f"{reference.seconds / run.seconds:>6.2f}x"
        )
    print(f"ratio: {reference.tool}'s time divided by that tool's (above 1: faster)")
    headline(
        f"SSHCommand, {width} SSH hosts x {len(COMMANDS)} commands, {width}-wide",
        f"{pooled.seconds:.2f} s",
        f"OpenSSH client {width}-wide, curve25519-sha256: {reference.seconds:.2f} s",
        reference.seconds / pooled.seconds,
        target=2.0,
        same_results=pooled.succeeded == reference.succeeded == total,
    )
    if any(run.succeeded != total for run in runs):
        print("WARNING: not every command succeeded; see above")
        sys.exit(1)


if __name__ == "__main__":
    main()
