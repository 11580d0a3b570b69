"""``midprobe lab``: bring up, inspect, enter and remove the network-namespace lab.

``lab up`` leaves the lab running after the command exits (its state lives under
/run/midprobe/lab/<prefix>/); several labs may run at once, each under its own prefix.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from midprobe.capabilities.errors import LabError
from midprobe.runner.cli.options import integer
from midprobe.runner.lab import Lab, LabRecord, cleanup_leftovers, list_labs
from midprobe.runner.lab.credentials_file import lab_credentials_toml
from midprobe.runner.lab.lab import MAX_EXTRA_HOSTS, teardown
from midprobe.runner.lab.neighbours import neighbour_report, read_ntables
from midprobe.runner.lab.netns import set_resolver
from midprobe.runner.lab.profiles import load_profile

#: The environment variable naming the lab ``lab status``, ``lab exec`` and ``lab down`` work on.
LAB_PREFIX_ENV = "MIDPROBE_LAB_PREFIX"

_prefix_option = click.option(
    "--prefix",
    default=None,
    metavar="PREFIX",
    envvar=LAB_PREFIX_ENV,
    show_envvar=True,
    help="Which lab (mp + 6 hex digits); needed when several run.",
)


@click.group("lab")
def lab() -> None:
    """The lab: real hosts (sshd, snmpd, dnsmasq, HTTP) in network namespaces on 198.18.0.0/24."""


@lab.command("up")
@click.option("--hosts", "extra_hosts", type=integer(0, MAX_EXTRA_HOSTS), default=0, show_default=True,
              help="Extra cheap Linux hosts (sshd + snmpd) for benchmarks.")  # fmt: skip
@click.option("--profile", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Lab profile TOML (default: fixtures/lab/default.toml).")  # fmt: skip
@click.option("--large", is_flag=True, help="Add a /22 of addresses (about 10 % alive) for sweep benchmarks.")
@click.option("--scale", type=integer(16, 24), default=None, metavar="N",
              help="Add one namespace answering for every address of the routed 198.19.0.0/N "
                   "(N 16..24): ping, TCP 22, 80, 443 open, other ports closed.")  # fmt: skip
@click.option("--prefix", default=None, metavar="PREFIX", help="Use this prefix instead of a random one.")
@click.option("--json", "as_json", is_flag=True, help="Print the lab (credentials included) as JSON.")
def up(
    extra_hosts: int, profile: Path | None, large: bool, scale: int | None, prefix: str | None, as_json: bool
) -> None:
    """Bring up a lab and leave it running; print its hosts and the credentials to use."""
    if profile is not None:
        load_profile(profile)  # a bad profile is refused before any namespace is made
    others = [r.prefix for r in list_labs() if r.status == "up"]
    started = Lab.up(profile, hosts=extra_hosts, large=large, scale=scale, prefix=prefix, detach=True)
    if as_json:
        click.echo(json.dumps(_as_dict(started), indent=2))
        return
    if others:
        click.echo(f"note: other labs are running too ({', '.join(others)}); this one is separate.")
    _print_lab(started, credentials=True)
    # With other labs about, a plain `lab down` may not know which one is meant: name it.
    down = f"midprobe lab down --prefix {started.prefix}" if others else "midprobe lab down"
    click.echo(f"\nenter it: midprobe lab exec --prefix {started.prefix} -- CMD ...; remove it: {down}")


@lab.command("status")
@_prefix_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (credentials included).")
@click.option("--credentials", "show_credentials", is_flag=True, help="Also print the credentials.")
@click.option(
    "--credentials-toml",
    "credentials_toml",
    is_flag=True,
    help="Print only the running lab's credentials, as a credentials TOML file for scan --credentials "
    "(midprobe lab status --credentials-toml > creds.toml).",
)
def status(prefix: str | None, as_json: bool, show_credentials: bool, credentials_toml: bool) -> None:
    """List the labs on this machine; with one running lab (or --prefix), show its hosts."""
    if credentials_toml:
        if as_json or show_credentials:
            raise LabError(
                "--credentials-toml prints the credentials file alone: leave out --json and --credentials"
            )
        click.echo(lab_credentials_toml(Lab.attach(_pick(prefix).prefix)), nl=False)
        return
    records = list_labs()
    chosen = [r for r in records if r.prefix == prefix] if prefix else records
    if prefix and not chosen:
        raise LabError(f"no lab {prefix} on this machine")
    if as_json:
        labs = [_as_dict(Lab.attach(r.prefix)) if r.state else {"prefix": r.prefix} for r in chosen]
        for item, record in zip(labs, chosen, strict=True):
            item["status"] = record.status
        click.echo(json.dumps(labs, indent=2))
        return
    if not chosen:
        click.echo("no lab is running (start one with `midprobe lab up`)")
        return
    for record in chosen:
        click.echo(f"{record.prefix}  {record.status:<9} {_owner_text(record)}")
    for line in neighbour_report(read_ntables()):
        click.echo(line)
    up_labs = [r for r in chosen if r.state is not None and r.status == "up"]
    if len(up_labs) == 1:
        click.echo("")
        _print_lab(Lab.attach(up_labs[0].prefix), credentials=show_credentials)


@lab.command("exec", context_settings={"ignore_unknown_options": True})
@_prefix_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(prefix: str | None, command: tuple[str, ...]) -> None:
    """Run COMMAND in the lab's scanner namespace (198.18.0.1): midprobe lab exec -- CMD ARGS...

    Inside, midprobe commands run in lab mode (MIDPROBE_LAB_MODE=1) and resolve names through the
    lab's DNS server (MIDPROBE_DNS_SERVER; other programs through the namespace's resolv.conf),
    and this midprobe's own folder of programs comes first on PATH.
    """
    target = Lab.attach(_pick(prefix).prefix)
    env = lab_exec_environment(dict(os.environ), target.dns_server)
    if target.dns_server:
        set_resolver(target.scanner_namespace, target.dns_server)
    # Replace this process, so the command owns the terminal and its exit status is ours.
    os.execvpe("ip", ["ip", "netns", "exec", target.scanner_namespace, *command], env)  # noqa: S606


def lab_exec_environment(environ: dict[str, str], dns_server: str) -> dict[str, str]:
    """What ``lab exec`` runs its command with: lab mode on, the lab's DNS, this midprobe on PATH."""
    programs = str(Path(sys.executable).parent)
    path = environ.get("PATH", "")
    environ["PATH"] = programs if not path else f"{programs}{os.pathsep}{path}"
    environ["MIDPROBE_LAB_MODE"] = "1"
    if dns_server:
        environ["MIDPROBE_DNS_SERVER"] = dns_server
    return environ


@lab.command("down")
@_prefix_option
@click.option("--all", "everything", is_flag=True,
              help="Remove every lab `lab up` started and every leftover of a crashed run.")  # fmt: skip
@click.option(
    "--force", is_flag=True, help="With --all: also labs a running process (e.g. a test session) holds."
)
def down(prefix: str | None, everything: bool, force: bool) -> None:
    """Remove a lab (the one `lab up` started, or --prefix) and the leftovers of crashed runs."""
    if force and not everything:
        raise LabError("--force only goes with --all")
    removed: list[str] = []
    if everything:
        removed += cleanup_leftovers(include_detached=True, include_live=force)
    else:
        if prefix is not None:
            record = next((r for r in list_labs() if r.prefix == prefix), None)
            if record is None:
                raise LabError(f"no lab {prefix} on this machine")
            teardown(prefix, daemons_=Lab.attach(prefix).daemons if record.state else ())
            removed.append(prefix)
        else:
            detached = [
                r for r in list_labs() if r.state is not None and r.status == "up" and not r.owner_alive
            ]
            if len(detached) > 1:
                raise LabError(
                    f"several labs are running ({', '.join(r.prefix for r in detached)}); "
                    "choose one with --prefix or remove them all with --all"
                )
            if detached:
                teardown(detached[0].prefix, daemons_=Lab.attach(detached[0].prefix).daemons)
                removed.append(detached[0].prefix)
        removed += cleanup_leftovers(include_detached=False)
    if removed:
        click.echo(f"removed {len(removed)} lab(s): {', '.join(removed)}")
    else:
        click.echo("no lab to remove")
    held = [r for r in list_labs() if r.owner_alive]
    for record in held:
        click.echo(f"left running: {record.prefix} ({_owner_text(record)})")


def _pick(prefix: str | None) -> LabRecord:
    """The running lab ``prefix``, or the only running lab; LabError naming them when several run."""
    records = [r for r in list_labs() if r.state is not None and r.status == "up"]
    if prefix is not None:
        for record in records:
            if record.prefix == prefix:
                return record
        raise LabError(f"no running lab {prefix}")
    if not records:
        raise LabError("no lab is running; start one with `midprobe lab up`")
    if len(records) > 1:
        raise LabError(
            f"several labs are running ({', '.join(r.prefix for r in records)}); choose one with --prefix"
        )
    return records[0]


def _owner_text(record: LabRecord) -> str:
    if record.state is None:
        return "namespaces without state (leftover of a crashed run)"
    owner = record.state.get("owner_pid")
    if owner is None:
        return "started by `midprobe lab up`"
    return f"held by process {owner}" if record.owner_alive else f"its process {owner} died"


def _as_dict(started: Lab) -> dict[str, Any]:
    creds = started.credentials
    return {
        "prefix": started.prefix,
        "scanner_namespace": started.scanner_namespace,
        "scanner_address": started.scanner_address,
        "scanner_address6": started.scanner_address6,
        "network": started.network,
        "network6": started.network6,
        "dns_server": started.dns_server,
        "dns_zone": started.dns_zone,
        "workdir": str(started.workdir),
        "hosts": [
            {
                "name": h.name,
                "profile": h.profile,
                "address": h.address,
                "address6": h.address6,
                "namespace": h.namespace,
                "fqdn": h.fqdn,
                "services": list(h.services),
                "open_tcp_ports": list(h.open_tcp_ports),
                "sys_name": h.sys_name,
                "sys_descr": h.sys_descr,
                "sys_object_id": h.sys_object_id,
            }
            for h in started.hosts
        ],
        "large": (
            {
                "namespace": started.large.namespace,
                "network": started.large.network,
                "gateway": started.large.gateway,
                "alive": list(started.large.alive),
                "open_tcp_ports": list(started.large.open_tcp_ports),
            }
            if started.large
            else None
        ),
        "scale": (
            {
                "namespace": started.scale.namespace,
                "network": started.scale.network,
                "gateway": started.scale.gateway,
                "open_tcp_ports": list(started.scale.open_tcp_ports),
            }
            if started.scale
            else None
        ),
        "credentials": {
            "ssh_user": creds.ssh_user,
            "ssh_password": creds.ssh_password,
            "ssh_private_key": str(creds.ssh_private_key),
            "snmp_community": creds.snmp_community,
            "snmpv3_user": creds.snmpv3_user,
            "snmpv3_auth_protocol": creds.snmpv3_auth_protocol,
            "snmpv3_auth_key": creds.snmpv3_auth_key,
            "snmpv3_priv_protocol": creds.snmpv3_priv_protocol,
            "snmpv3_priv_key": creds.snmpv3_priv_key,
        },
    }


def _print_lab(shown: Lab, *, credentials: bool) -> None:
    click.echo(f"lab {shown.prefix} is up (profile {shown.profile_source})")
    click.echo(
        f"scanner  {shown.scanner_address} {shown.scanner_address6} in namespace {shown.scanner_namespace}; "
        f"hosts on {shown.network} and {shown.network6}"
    )
    if shown.dns_server:
        click.echo(f"dns      {shown.dns_server} serves {shown.dns_zone} (forward and reverse)")
    rows = [("HOST", "ADDRESS", "IPV6", "PROFILE", "SERVICES", "TCP PORTS", "DNS NAME")]
    rows += [
        (
            h.name,
            h.address,
            h.address6 or "-",
            h.profile,
            ",".join(h.services) or "-",
            ",".join(str(p) for p in h.open_tcp_ports) or "-",
            h.fqdn or "-",
        )
        for h in shown.hosts
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if shown.large:
        click.echo(
            f"large    {shown.large.network} via {shown.large.gateway}: {len(shown.large.alive)} alive addresses, "
            f"TCP {','.join(str(p) for p in shown.large.open_tcp_ports)}, the rest silent"
        )
    if shown.scale:
        click.echo(
            f"scale    {shown.scale.network} via {shown.scale.gateway}: every address answers, "
            f"TCP {','.join(str(p) for p in shown.scale.open_tcp_ports)} open, the other ports closed"
        )
    if credentials:
        c = shown.credentials
        click.echo("credentials (generated for this run; test-only):")
        click.echo(f"  ssh     user {c.ssh_user}  password {c.ssh_password}  key {c.ssh_private_key}")
        click.echo(f"  snmp    v1/v2c community {c.snmp_community}")
        click.echo(
            f"  snmpv3  user {c.snmpv3_user}  auth {c.snmpv3_auth_protocol} {c.snmpv3_auth_key}  "
            f"priv {c.snmpv3_priv_protocol} {c.snmpv3_priv_key}"
        )
