"""``midprobe discover``: run a discovery schedule through the ECC queue, and watch or stop it."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import click

from midprobe.capabilities.clusters import MidCluster, cluster_named
from midprobe.capabilities.config import load_config
from midprobe.capabilities.errors import ConfigError, QueueError, TargetNotAllowed
from midprobe.capabilities.selection import SelectionPolicy
from midprobe.probes.safety import TargetPolicy
from midprobe.runner.cli.options import instance_options, queue_or_instance_option
from midprobe.runner.cli.progress import addresses_text, follower_for, summary
from midprobe.runner.cli.text import printable
from midprobe.runner.cmdb.database import open_database
from midprobe.runner.cmdb.store import CmdbStore
from midprobe.runner.discovery.orchestrator import Orchestrator
from midprobe.runner.discovery.schedule import Schedule, load_schedule
from midprobe.runner.discovery.status import DiscoveryStatus, StatusStore
from midprobe.runner.instance.client import InstanceClient, is_instance_url, open_instance
from midprobe.runner.queue.url import open_queue

#: Seconds between two passes of the orchestrator while a discovery runs.
ADVANCE_INTERVAL_SECONDS = 0.2
#: How long ``--local`` waits for its embedded agent to register before giving up.
AGENT_START_SECONDS = 30.0
#: Seconds between two looks at a discovery an instance runs.
INSTANCE_POLL_SECONDS = 0.5
#: How long ``run`` keeps following through an instance outage (a restart) before it gives up.
INSTANCE_OUTAGE_SECONDS = 120.0


def _instance(queue_url: str, user: str | None, ca_file: Path | None) -> InstanceClient | None:
    """The instance client for an ``https://`` queue; ``None`` for a database (where --user and --ca are refused)."""
    if is_instance_url(queue_url):
        return open_instance(queue_url, user=user, ca_file=ca_file)
    if user is not None or ca_file is not None:
        raise ConfigError("--user and --ca go with an https:// queue (an instance)", field="--user")
    return None


def _check_lab(schedule: Schedule) -> None:
    lab = TargetPolicy.lab()
    outside = schedule.targets.first_outside(lab.allowed or ())
    if outside is not None:
        raise TargetNotAllowed(str(outside), "lab mode: the schedule's ranges must lie in 198.18.0.0/15")
    for server in schedule.dns_servers:
        if not lab.permits(server):
            raise TargetNotAllowed(f"DNS server {server}", "lab mode: dns_servers must be lab addresses")


@click.group("discover")
def discover() -> None:
    """Run discovery schedules: scanning, classification and identification through the ECC queue."""


@discover.command("run")
@click.argument("schedule_file", metavar="SCHEDULE", type=click.Path(dir_okay=False, path_type=Path))
@queue_or_instance_option
@click.option(
    "--follow",
    is_flag=True,
    help="Show progress until the discovery ends: on a terminal a live display (phases, devices "
    "done, errors, elapsed), elsewhere one summary line per change.",
)
@click.option("--local", is_flag=True, help="Also run an agent in this process, so no daemon is needed.")
@click.option("--name", "agent_name", default=None, help="The embedded agent's MID name (with --local).")
@click.option(
    "--lab",
    "lab_mode",
    is_flag=True,
    envvar="MIDPROBE_LAB_MODE",
    help="Refuse every range outside the lab networks (env MIDPROBE_LAB_MODE; set inside `midprobe lab exec`).",
)
@click.option(
    "--capabilities",
    "capabilities_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='Capabilities TOML: its [[cluster]] tables (mid = "cluster:NAME"), [[application]] default MIDs and [selection] rules.',
)
@instance_options
def run_command(
    schedule_file: Path,
    queue_url: str,
    follow: bool,
    local: bool,
    agent_name: str | None,
    lab_mode: bool,
    capabilities_file: Path | None,
    instance_user: str | None,
    instance_ca_file: Path | None,
) -> None:
    """Start a discovery of SCHEDULE, print its status id, and orchestrate it until it ends.

    The agents that run the probes are the ones registered on the queue (``midprobe agent``),
    or, with --local, one embedded here. With an https:// queue the instance runs the discovery
    (its credentials file, its variables and key files read here, is sent to it over TLS; each MID
    gets it sealed to its own key) and this command follows it until it ends.
    """
    schedule = load_schedule(schedule_file)
    capabilities = load_config(capabilities_file) if capabilities_file is not None else None
    clusters = capabilities.clusters if capabilities is not None else ()
    policy = capabilities.policy if capabilities is not None else None
    if schedule.mid_choice == "cluster" and (capabilities is not None or not is_instance_url(queue_url)):
        cluster_named(clusters, schedule.mid or "")  # a schedule naming an unknown cluster stops here
    if lab_mode:
        _check_lab(schedule)
    instance = _instance(queue_url, instance_user, instance_ca_file)
    if instance is not None:
        if local:
            raise ConfigError(
                "--local runs an agent beside a database queue, not an instance", field="--local"
            )
        with instance:
            _run_on_instance(instance, schedule, capabilities_file, follow)
        return
    if local:
        from midprobe.runner.agent.config import AgentConfig
        from midprobe.runner.cli.agent import run_agent

        name = agent_name or f"local-{socket.gethostname()}"
        if lab_mode and schedule.host_names and not schedule.dns_servers:
            raise ConfigError(
                "lab mode resolves host names only through the lab's DNS server: "
                f"give the schedule's dns_servers to resolve {schedule.host_names[0]!r}",
                field="dns_servers",
            )
        config = AgentConfig(
            name=name,
            queue_url=queue_url,
            credentials_file=schedule.credentials,
            lab_mode=lab_mode,
            # The schedule's DNS server resolves the host names its ranges hold (and PTR names).
            dns_server=schedule.dns_servers[0] if schedule.dns_servers else "",
            poll_idle_seconds=1.0,
            poll_busy_seconds=0.5,
        )

        # The orchestrator's next pass starts as soon as the embedded agent has written an answer.
        answered = threading.Event()

        async def orchestrate() -> None:
            await asyncio.to_thread(_wait_for_agent, queue_url, name)
            await asyncio.to_thread(
                _orchestrate, schedule, queue_url, follow, clusters, policy, wake=answered
            )

        run_agent(
            config,
            once=False,
            drain_seconds=5.0,
            alongside=orchestrate,
            on_answered=lambda _sys_id: answered.set(),
            keep_keys=False,
        )
        return
    _orchestrate(schedule, queue_url, follow, clusters, policy)


def _read_text(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else "not UTF-8 text"
        raise ConfigError(f"cannot read {path}: {reason}", field=option) from None


def _run_on_instance(
    instance: InstanceClient, schedule: Schedule, capabilities_file: Path | None, follow: bool
) -> None:
    """Start the discovery on the instance, print its id, and follow it (through an instance restart) to its end."""
    credentials = None
    if schedule.credentials is not None:
        from midprobe.probes.credentials.sealing import portable_document

        # Checked here (a bad file stops, named, before anything is sent), its variables and key
        # files read on this machine: the instance gets a self-contained document.
        credentials = portable_document(schedule.credentials)
    capabilities = _read_text(capabilities_file, "--capabilities") if capabilities_file is not None else None
    started = instance.start_discovery(schedule, credentials=credentials, capabilities=capabilities)
    click.echo(started.sys_id)
    sys.stdout.flush()
    outage: float | None = None
    with follower_for(follow=follow) as follower:
        while True:
            try:
                status: DiscoveryStatus = instance.get(started.sys_id)
                follower.update(instance, started.sys_id)
            except QueueError:
                outage = outage if outage is not None else time.monotonic()
                if time.monotonic() - outage > INSTANCE_OUTAGE_SECONDS:
                    raise
                time.sleep(INSTANCE_POLL_SECONDS)
                continue
            outage = None
            if status.done:
                break
            time.sleep(INSTANCE_POLL_SECONDS)
        follower.finish(instance, started.sys_id)


def _wait_for_agent(queue_url: str, name: str) -> None:
    """Until the embedded agent (this process) has registered and is Up; then validate it.

    A registration under the name is not enough: an earlier run's agent left its own (Down)
    behind, and selecting MIDs before this one is Up would find none and end the discovery.
    The embedded agent is this very process, so it is validated here as it registers (its key
    pair lives in memory only; its credentials are the schedule's, read by this process).
    """
    deadline = time.monotonic() + AGENT_START_SECONDS
    me = (platform.node(), os.getpid())
    with open_queue(queue_url) as queue:
        while True:
            agent = queue.get_agent(name)
            if agent is not None and (agent.host, agent.pid) == me and agent.status == "Up":
                if not agent.validated:
                    queue.update_agent(name, validated=True)
                return
            if time.monotonic() > deadline:
                raise ConfigError(f"the embedded agent {name!r} did not register", field="--local")
            time.sleep(0.05)


def _orchestrate(
    schedule: Schedule,
    queue_url: str,
    follow: bool,
    clusters: Sequence[MidCluster],
    policy: SelectionPolicy | None,
    *,
    wake: threading.Event | None = None,
) -> None:
    """Start the discovery and advance it until it ends: a pass every
    :data:`ADVANCE_INTERVAL_SECONDS`, or at once when ``wake`` is set (an answer was written)."""
    with open_queue(queue_url) as queue:
        database = open_database(queue_url)
        try:
            status = StatusStore(database)
            orchestrator = Orchestrator(queue, status, CmdbStore(database), clusters=clusters, policy=policy)
            status_id = orchestrator.start(schedule)
            click.echo(status_id)
            sys.stdout.flush()
            with follower_for(follow=follow) as follower:
                while True:
                    if wake is not None:
                        wake.clear()  # before the pass: an answer written during it wakes the next
                    progress = orchestrator.advance(status_id)
                    if progress.done:
                        break
                    follower.update(status, status_id)
                    if wake is None:
                        time.sleep(ADVANCE_INTERVAL_SECONDS)
                    else:
                        wake.wait(ADVANCE_INTERVAL_SECONDS)
                follower.finish(status, status_id)
        finally:
            database.close()


@discover.command("status")
@click.argument("status_id", metavar="ID")
@queue_or_instance_option
@click.option("--json", "as_json", is_flag=True, help="The status, counts per phase and device log as JSON.")
@instance_options
def status_command(
    status_id: str, queue_url: str, as_json: bool, instance_user: str | None, instance_ca_file: Path | None
) -> None:
    """A discovery's state, counts per phase, and what happened to each device."""
    instance = _instance(queue_url, instance_user, instance_ca_file)
    if instance is not None:
        with instance:
            status = instance.get(status_id)
            log = instance.device_log(status_id)
    else:
        database = open_database(queue_url, must_exist=True)
        try:
            store = StatusStore(database)
            status = store.get(status_id)
            log = store.device_log(status.sys_id)
        finally:
            database.close()
    if as_json:
        click.echo(json.dumps({**status.as_dict(), "log": log}, indent=2))
        return
    click.echo(
        f"{status.sys_id}  {printable(status.name)}  started {status.started[:19]}"
        + (f", finished {status.finished[:19]}" if status.finished else "")
    )
    click.echo(summary(status))
    if status.addresses.total:
        click.echo(addresses_text(status.addresses))
    if status.note:
        click.echo(f"note: {printable(status.note)}")
    for entry in log:
        click.echo(f"  {entry['device']:<18} {entry['phase']:<15} {printable(entry['message'])}")


@discover.command("list")
@queue_or_instance_option
@click.option("--json", "as_json", is_flag=True)
@instance_options
def list_command(
    queue_url: str, as_json: bool, instance_user: str | None, instance_ca_file: Path | None
) -> None:
    """Every discovery on this queue (or instance), newest first."""
    instance = _instance(queue_url, instance_user, instance_ca_file)
    if instance is not None:
        with instance:
            found = instance.list()
    else:
        database = open_database(queue_url, must_exist=True)
        try:
            found = StatusStore(database).list_all()
        finally:
            database.close()
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in found], indent=2))
        return
    for status in found:
        click.echo(f"{status.sys_id}  {status.started[:19]}  {printable(status.name):<20} {summary(status)}")


@discover.command("cancel")
@click.argument("status_id", metavar="ID")
@queue_or_instance_option
@instance_options
def cancel_command(
    status_id: str, queue_url: str, instance_user: str | None, instance_ca_file: Path | None
) -> None:
    """Cancel a discovery: what is still queued is answered with an error and never runs."""
    instance = _instance(queue_url, instance_user, instance_ca_file)
    if instance is not None:
        with instance:
            status, count = instance.cancel(status_id)
        click.echo(f"{status.sys_id}: Cancelled, {count} outputs cancelled")
        return
    with open_queue(queue_url) as queue:
        database = open_database(queue_url, must_exist=True)
        try:
            store = StatusStore(database)
            status = store.get(status_id)
            if status.done:
                raise ConfigError(f"discovery {status.sys_id} is already {status.state}", field="ID")
            count = Orchestrator(queue, store, CmdbStore(database)).cancel(
                status.sys_id, reason="cancelled by user"
            )
        finally:
            database.close()
    click.echo(f"{status.sys_id}: Cancelled, {count} outputs cancelled")
