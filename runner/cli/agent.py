"""``midprobe agent``: the daemon that polls an ECC queue, runs probes and writes results."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

from midprobe.capabilities.errors import ConfigError, MidprobeError
from midprobe.probes.credentials import CredentialStore
from midprobe.probes.credentials.sealing import MidKeyPair
from midprobe.probes.registry import default_registry
from midprobe.probes.safety import TargetPolicy, require_lab_namespace
from midprobe.runner.agent import logs
from midprobe.runner.agent.affinity import QueueAffinityStore
from midprobe.runner.agent.config import AgentConfig, load_agent_config
from midprobe.runner.agent.daemon import Agent, AgentStats, AgentTimings
from midprobe.runner.agent.identity import build_agent_setup
from midprobe.runner.agent.lifecycle import MidLifecycle
from midprobe.runner.agent.limits import ConcurrencyLimits, PoolSizes
from midprobe.runner.agent.probe_runner import ProbeRunner
from midprobe.runner.agent.upgrade import (
    FAILED_VARIABLE,
    INSTANCE_VARIABLE,
    ROLLBACK_VARIABLE,
    UPGRADE_VARIABLE,
    UpgradeFailed,
    Upgrader,
    failed_upgrade,
    roll_back,
)
from midprobe.runner.cli import aio
from midprobe.runner.cli.options import agent_setting, queue_option, seconds
from midprobe.runner.ecc.record import agent_short_name
from midprobe.runner.queue.lifecycle import midprobe_version
from midprobe.runner.queue.url import InstanceLocation, open_queue, parse_queue_url

#: Threads for blocking libraries (paramiko, python-nmap, the queue driver).
BLOCKING_THREADS = 32
#: Where an agent on an ``https://`` queue spools its results unless told (one folder per agent name).
DEFAULT_SPOOL_ROOT = Path("midprobe-spool")
#: Where an agent keeps its key pair unless told (one folder per agent name).
DEFAULT_STATE_ROOT = Path("midprobe-state")


def run_agent(
    config: AgentConfig,
    *,
    once: bool,
    drain_seconds: float = 30.0,
    alongside: Callable[[], Awaitable[object]] | None = None,
    on_answered: Callable[[str], None] | None = None,
    keep_keys: bool = True,
    upgrade_arguments: tuple[str, ...] | None = None,
) -> AgentStats:
    """Build an agent from ``config`` and run it to the end (used by the CLI and the demo).

    ``alongside``: a coroutine run in the same event loop; when it ends the agent stops
    (``discover run --local`` runs the orchestrator this way). ``on_answered``: called with each
    output's sys_id once its answer is written (``--local``'s orchestrator wakes on it). ``keep_keys``: the MID's key pair
    lives in its state folder (else a fresh pair in memory, for an agent embedded in the instance).
    ``upgrade_arguments``: the command line (after the program) the agent was started with; given,
    an agent on an instance upgrades itself when asked and restarts with them (docs/agent.md).
    """
    # An upgraded process (exec'd by the version before) finishes that upgrade under the same token,
    # or goes back to the version before if it cannot start; one that came back says why.
    finishing_upgrade = os.environ.pop(UPGRADE_VARIABLE, None)
    kept_instance = os.environ.pop(INSTANCE_VARIABLE, None)
    rollback = os.environ.pop(ROLLBACK_VARIABLE, None)
    came_back = failed_upgrade(os.environ.pop(FAILED_VARIABLE, None))
    agents: list[Agent] = []
    try:
        return _run_agent(
            config,
            once=once,
            drain_seconds=drain_seconds,
            alongside=alongside,
            on_answered=on_answered,
            keep_keys=keep_keys,
            upgrade_arguments=upgrade_arguments,
            upgrade=(finishing_upgrade, kept_instance, came_back),
            agents=agents,
        )
    except Exception as error:
        started = bool(agents) and agents[0].upgrade_finished
        if finishing_upgrade and rollback and upgrade_arguments is not None and not started:
            said = str(error) if isinstance(error, MidprobeError) else f"{type(error).__name__}: {error}"
            instance = agents[0].instance if agents else kept_instance or ""
            state_dir = config.state_dir or DEFAULT_STATE_ROOT / agent_short_name(config.name)
            failed = (finishing_upgrade, midprobe_version(), f"the new version did not start: {said}")
            logs.get_logger("midprobe.agent").error("the new version did not start, going back", error=said)
            roll_back(rollback, upgrade_arguments, state_dir.resolve(), failed, instance)
        raise


def _run_agent(
    config: AgentConfig,
    *,
    once: bool,
    drain_seconds: float,
    alongside: Callable[[], Awaitable[object]] | None,
    on_answered: Callable[[str], None] | None,
    keep_keys: bool,
    upgrade_arguments: tuple[str, ...] | None,
    upgrade: tuple[str | None, str | None, tuple[str, str, str] | None],
    agents: list[Agent],
) -> AgentStats:
    finishing_upgrade, kept_instance, came_back = upgrade
    policy = check_agent_config(config)
    state_dir = (
        (config.state_dir or DEFAULT_STATE_ROOT / agent_short_name(config.name)) if keep_keys else None
    )
    pools = PoolSizes.scaled(config.concurrency)
    # The key pair is made (at first start) only once the rest of the config is known to be good.
    keys = MidKeyPair.load_or_create(state_dir) if state_dir is not None else MidKeyPair.generate()
    setup = build_agent_setup(config, public_key=keys.public_key)
    timings = AgentTimings(
        poll_idle_seconds=config.poll_idle_seconds,
        poll_busy_seconds=config.poll_busy_seconds,
        lease_seconds=config.lease_seconds,
        registry_heartbeat_seconds=config.registry_heartbeat_seconds,
        drain_seconds=drain_seconds,
        queue_stats_seconds=config.queue_stats_seconds,
        page_items=config.page_items,
        upgrade_check_seconds=config.upgrade_check_seconds,
    )
    restart: list[tuple[Upgrader, Path, str, str]] = []

    async def main() -> AgentStats:
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(BLOCKING_THREADS, "midprobe-blocking")
        )
        with open_queue(
            config.queue_url,
            payload_cap=config.result_size_cap,
            **config.instance_login(),
            spool_dir=config.spool_dir or DEFAULT_SPOOL_ROOT / setup.registration.short_name,
        ) as queue:
            credentials = None
            if config.credentials_file is not None:
                credentials = CredentialStore.load(
                    config.credentials_file, affinity=QueueAffinityStore(queue)
                )
            runner = ProbeRunner(
                registry=default_registry(),
                identity=setup.identity,
                policy=policy,
                limits=ConcurrencyLimits(pools=pools),
                probe_timeout_seconds=config.probe_timeout_seconds,
                credentials=credentials,
            )
            lifecycle = MidLifecycle(
                keys=keys, state_dir=state_dir, local_credentials=config.credentials_file is not None
            )
            upgrader = None
            # Upgrades come from the instance (an https:// queue); the HTTPS client is imported for it only.
            if (
                upgrade_arguments is not None
                and state_dir is not None
                and isinstance(parse_queue_url(config.queue_url), InstanceLocation)
            ):
                from midprobe.runner.queue.https import HttpsQueue

                if isinstance(queue, HttpsQueue):
                    upgrader = Upgrader(queue, state_dir.resolve(), upgrade_arguments)
            agent = Agent(
                queue,
                runner,
                setup.registration,
                timings=timings,
                pools=pools,
                lifecycle=lifecycle,
                on_answered=on_answered,
                upgrader=None if once else upgrader,
                finishing_upgrade=finishing_upgrade,
                failed_upgrade=came_back,
            )
            agents.append(agent)
            if kept_instance:
                agent.instance = kept_instance
            if alongside is None:
                stats = await agent.run(once=once)
                if agent.restart_into is not None and upgrader is not None:
                    python, sys_id = agent.restart_into
                    restart.append((upgrader, python, sys_id, agent.instance))
                return stats
            serving = asyncio.create_task(agent.run(once=once, install_signal_handlers=False))
            try:
                await alongside()
            finally:
                agent.request_stop()
                stats = await serving
            return stats

    stats = aio.run(main())
    for upgrader, python, sys_id, instance in restart:
        try:
            upgrader.exec_into(python, sys_id, instance)  # returns only if the exec failed
        except UpgradeFailed as failed:
            with open_queue(config.queue_url, **config.instance_login()) as queue:
                queue.end_upgrade(sys_id, succeeded=False, reason=str(failed))
            raise
    return stats


def check_agent_config(config: AgentConfig) -> TargetPolicy:
    """What must hold before the agent registers (also its ``--self-test``); its target policy."""
    policy = _policy(config)  # a DNS server outside the lab stops here
    if config.lab_mode:
        require_lab_namespace()  # lab mode promises nothing leaves the lab: not from a routed namespace
    if config.credentials_file is not None:
        CredentialStore.load(config.credentials_file)  # a bad file stops here, before the agent registers
    if config.instance_ca_file is not None or config.instance_cert_file is not None:
        # so does a bad CA file or client certificate, whatever the queue
        from midprobe.runner.queue.https import tls_context

        tls_context(config.instance_ca_file, config.instance_cert_file, config.instance_key_file)
    return policy


def _policy(config: AgentConfig) -> TargetPolicy:
    """The lab policy or none, with host names resolved through ``config.dns_server`` when set."""
    server = config.dns_server or None
    policy = TargetPolicy.lab(server) if config.lab_mode else TargetPolicy.unrestricted(name_server=server)
    if server is not None and not policy.permits(server):
        raise ConfigError(
            f"the DNS server {server} is outside the {policy.name} networks", field="dns_server"
        )
    return policy


@click.command("agent")
@click.option(
    "--name", envvar="MIDPROBE_NAME", default=None, help="This agent's MID name (env MIDPROBE_NAME)."
)
@queue_option
@click.option("--once", is_flag=True, help="Drain what is ready, wait for it to finish, and exit.")
@click.option(
    "--concurrency",
    type=agent_setting("concurrency"),
    default=None,
    help="Probe runs at once, split 10:20:25 over the priority pools [55].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Agent TOML file ([agent] table); environment MIDPROBE_* and flags override it.",
)
@click.option(
    "--capabilities",
    "capabilities_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Capabilities TOML: the [[mid_server]] named like this agent gives its capabilities.",
)
@click.option(
    "--credentials",
    "credentials_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Credentials TOML for SSH and SNMP probes.",
)
@click.option(
    "--lab", "lab_mode", is_flag=True, default=None, help="Refuse every target outside the lab networks."
)
@click.option(
    "--dns-server",
    "dns_server",
    default=None,
    metavar="ADDR",
    help="Resolve host names in requests through this DNS server (with --lab: the lab's; else names are refused).",
)
@click.option(
    "--poll-idle",
    "poll_idle_seconds",
    type=agent_setting("poll_idle_seconds"),
    default=None,
    help="Seconds between polls when idle [40].",
)
@click.option(
    "--poll-busy",
    "poll_busy_seconds",
    type=agent_setting("poll_busy_seconds"),
    default=None,
    help="Seconds between polls when busy [5].",
)
@click.option(
    "--lease",
    "lease_seconds",
    type=agent_setting("lease_seconds"),
    default=None,
    help="Lease on claimed work, renewed while it runs [120].",
)
@click.option(
    "--drain",
    "drain_seconds",
    type=seconds(0.0),
    default=30.0,
    show_default=True,
    help="On SIGTERM, seconds to finish in-flight work before releasing it.",
)
@click.option(
    "--user",
    "instance_user",
    default=None,
    help="With an https:// queue: the instance user (password from env MIDPROBE_INSTANCE_PASSWORD).",
)
@click.option(
    "--ca",
    "instance_ca_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With an https:// queue: the instance's CA file to trust [the system's CAs].",
)
@click.option(
    "--cert",
    "instance_cert_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With an https:// queue: a client certificate the instance issued (mutual TLS; with --key).",
)
@click.option(
    "--key",
    "instance_key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The unencrypted PEM key of --cert.",
)
@click.option(
    "--spool",
    "spool_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With an https:// queue: folder keeping results until the instance has them [midprobe-spool/NAME].",
)
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of this MID's own key pair, made at first start [midprobe-state/NAME].",
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None)
@click.option(
    "--self-test",
    is_flag=True,
    help="Check that this installation can run this MID (imports, configuration, the queue reached) and exit.",
)
def agent(
    name: str | None,
    queue_url: str,
    once: bool,
    concurrency: int | None,
    config_file: Path | None,
    capabilities_file: Path | None,
    credentials_file: Path | None,
    lab_mode: bool | None,
    dns_server: str | None,
    poll_idle_seconds: float | None,
    poll_busy_seconds: float | None,
    lease_seconds: float | None,
    drain_seconds: float,
    instance_user: str | None,
    instance_ca_file: Path | None,
    instance_cert_file: Path | None,
    instance_key_file: Path | None,
    spool_dir: Path | None,
    state_dir: Path | None,
    log_level: str | None,
    self_test: bool,
) -> None:
    """Poll the ECC queue, run the probes addressed to this agent, and write their results.

    The queue is a database (sqlite:///..., postgresql://...) or an instance, https://HOST:PORT,
    with --user (password from env MIDPROBE_INSTANCE_PASSWORD, or a client certificate: --cert,
    --key) and --ca.

    Logs are JSON lines on stderr. With --once, a summary line is printed on stdout.
    """
    # --queue's default must not hide the config file's queue_url: only a --queue (or its
    # environment variable) given overrides it.
    given = (
        click.get_current_context().get_parameter_source("queue_url") != click.core.ParameterSource.DEFAULT
    )
    config = load_agent_config(
        config_file,
        overrides={
            "name": name,
            "queue_url": queue_url if given else None,
            "concurrency": concurrency,
            "capabilities_file": capabilities_file,
            "credentials_file": credentials_file,
            "lab_mode": lab_mode,
            "dns_server": dns_server,
            "poll_idle_seconds": poll_idle_seconds,
            "poll_busy_seconds": poll_busy_seconds,
            "lease_seconds": lease_seconds,
            "log_level": log_level,
            "instance_user": instance_user,
            "instance_ca_file": instance_ca_file,
            "instance_cert_file": instance_cert_file,
            "instance_key_file": instance_key_file,
            "spool_dir": spool_dir,
            "state_dir": state_dir,
        },
    )
    logs.configure(config.log_level)
    if self_test:
        from midprobe.runner.agent.selftest import self_test as run_self_test

        click.echo(run_self_test(config, check_agent_config))
        return
    stats = run_agent(config, once=once, drain_seconds=drain_seconds, upgrade_arguments=tuple(sys.argv[1:]))
    if once:
        click.echo(json.dumps({"agent": config.name, **vars(stats)}))
