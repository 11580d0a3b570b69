"""``midprobe mid``: the MID lifecycle as an operator drives it on the instance.

Validate, invalidate, rekey, pause, resume, drain, pin and upgrade MIDs, list them with their status,
version, validation and issues, acknowledge and resolve their issues, and hand them credentials
sealed to each one's own key. The queue is the instance's database (``sqlite:///``,
``postgresql://``) or the instance itself (``https://``, with ``--user`` of the admin role, the
password from ``MIDPROBE_INSTANCE_PASSWORD``, and ``--ca``).

Other modules add commands to the group lazily: an entry ``NAME: "module:attribute"`` in
``MID_COMMANDS`` is imported only when ``midprobe mid NAME`` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from midprobe.runner.cli.main import LazyGroup
from midprobe.runner.cli.options import instance_options as shared_instance_options
from midprobe.runner.cli.options import queue_option, queue_or_instance_option
from midprobe.runner.cli.text import printable
from midprobe.runner.queue.base import AgentRegistration, EccQueue

F = TypeVar("F", bound=Callable[..., Any])

#: Commands of the ``mid`` group that live in other modules, imported when they run.
MID_COMMANDS: dict[str, str] = {"setup": "midprobe.runner.cli.mid_setup:setup"}
#: A MID that has not heartbeated for this long is shown Down.
LIVE_WITHIN_SECONDS = 120.0


def instance_options(function: F) -> F:
    """``--queue URL``, and for an ``https://`` queue ``--user`` (of the admin role) and ``--ca``:
    the options every command that reaches an instance takes (``runner/cli/options.py``)."""
    return queue_or_instance_option(shared_instance_options(function))


def _open(queue_url: str, user: str | None, ca_file: Path | None) -> EccQueue:
    from midprobe.runner.queue.https import tls_context
    from midprobe.runner.queue.url import open_queue

    if ca_file is not None:
        tls_context(ca_file)  # a bad CA file stops here, whatever the queue
    return open_queue(queue_url, user=user, ca_file=ca_file)


def _registered(queue: EccQueue, name: str) -> AgentRegistration:
    from midprobe.runner.queue.lifecycle import registered_agent

    return registered_agent(queue, name)


@click.group("mid", cls=LazyGroup, lazy_commands=MID_COMMANDS)
def mid() -> None:
    """MID Servers: set one up on this machine, and their lifecycle: validation, keys, pause and drain, versions, upgrades, issues (docs/agent.md)."""


def _action(verb: str) -> click.Command:
    """One ``mid VERB NAME`` command: the MID action ``verb`` (the console's MID page offers the same)."""
    from midprobe.runner.queue.lifecycle import MID_ACTIONS

    action = MID_ACTIONS[verb]

    @instance_options
    @click.argument("name")
    def command(name: str, queue_url: str, instance_user: str | None, instance_ca_file: Path | None) -> None:
        with _open(queue_url, instance_user, instance_ca_file) as queue:
            changed = action.apply(queue, name)
        click.echo(f"{changed.short_name}: {action.done}")

    command.__doc__ = action.summary
    return mid.command(verb)(command)


for _verb in ("validate", "invalidate", "rekey", "pause", "resume", "drain"):
    _action(_verb)


@mid.command("pin")
@click.argument("name")
@click.argument("version")
@instance_options
def pin_command(
    name: str, version: str, queue_url: str, instance_user: str | None, instance_ca_file: Path | None
) -> None:
    """Pin MID NAME to VERSION: it gets work only while it runs exactly that version."""
    from midprobe.runner.queue.lifecycle import major_version

    major_version(version)
    with _open(queue_url, instance_user, instance_ca_file) as queue:
        _registered(queue, name)
        changed = queue.update_agent(name, pinned_version=version)
    click.echo(f"{changed.short_name}: pinned to {version}")


@mid.command("unpin")
@click.argument("name")
@instance_options
def unpin_command(
    name: str, queue_url: str, instance_user: str | None, instance_ca_file: Path | None
) -> None:
    """Unpin MID NAME: any version the instance accepts may work."""
    with _open(queue_url, instance_user, instance_ca_file) as queue:
        _registered(queue, name)
        changed = queue.update_agent(name, pinned_version="")
    click.echo(f"{changed.short_name}: not pinned")


def _shown_status(agent: AgentRegistration, live: bool) -> str:
    return agent.status if live else "Down"


@mid.command("list")
@instance_options
def list_command(queue_url: str, instance_user: str | None, instance_ca_file: Path | None) -> None:
    """Every MID: status, version, validated, open issues, why it gets no work, an upgrade under way."""
    from midprobe.runner.queue.lifecycle import SETTING_ACCEPTED_MAJOR, work_refusal

    with _open(queue_url, instance_user, instance_ca_file) as queue:
        agents = queue.list_agents()
        live = {agent.name for agent in queue.list_agents(live_within_seconds=LIVE_WITHIN_SECONDS)}
        accepted = queue.get_setting(SETTING_ACCEPTED_MAJOR)
        issues = queue.list_issues()
        upgrades = queue.list_upgrades()
    # Newest first: the first row of each MID is its latest upgrade.
    latest_upgrade = {row.agent: row for row in reversed(upgrades)}
    open_count: dict[str, int] = {}
    for issue in issues:
        open_count[issue.agent] = open_count.get(issue.agent, 0) + 1
    click.echo(f"{'NAME':<20} {'STATUS':<10} {'VERSION':<10} {'VALIDATED':<9} {'ISSUES':<6} NOTE")
    for agent in agents:
        refusal = work_refusal(agent, accepted)
        notes = [f"no work: {refusal}"] if refusal else []
        if agent.pinned_version:
            notes.append(f"pinned {agent.pinned_version}")
        if agent.rekey_requested:
            notes.append("rekey requested")
        latest = latest_upgrade.get(agent.name)
        if latest is not None and latest.state in ("Requested", "Upgrading"):
            notes.append(f"upgrade to {latest.to_version} {latest.state.lower()}")
        click.echo(
            f"{printable(agent.short_name):<20} {_shown_status(agent, agent.name in live):<10} "
            f"{printable(agent.version or '-'):<10} {'yes' if agent.validated else 'no':<9} "
            f"{open_count.get(agent.name, 0):<6} {printable('; '.join(notes))}".rstrip()
        )
    if accepted:
        click.echo(f"(the instance accepts MID versions {accepted}.x)")


@mid.command("upgrade")
@click.argument("name", required=False)
@click.option("--version", "version", default=None, help="The version to go to [the newest wheel served].")
@click.option("--all", "every", is_flag=True, help="Every unpinned MID, at its next upgrade check.")
@instance_options
def upgrade_command(
    name: str | None,
    version: str | None,
    every: bool,
    queue_url: str,
    instance_user: str | None,
    instance_ca_file: Path | None,
) -> None:
    """Upgrade MID NAME (or --all) to a wheel the instance serves (instance serve --wheels DIR).

    NAME upgrades within a heartbeat; --all sets the version every unpinned MID goes to at its
    next upgrade check (hourly). Each attempt is kept: ``midprobe mid upgrades``.
    """
    from midprobe.capabilities.errors import ConfigError
    from midprobe.runner.queue.https import HttpsQueue
    from midprobe.runner.queue.lifecycle import SETTING_MID_VERSION, check_version

    if (name is None) == (not every):
        raise ConfigError("give a MID's NAME or --all, not both", field="NAME")
    if version is not None:
        check_version(version, "--version")
    with _open(queue_url, instance_user, instance_ca_file) as queue:
        if not isinstance(queue, HttpsQueue) and version is None:
            raise ConfigError(
                "give --version: the wheels are the instance's (or use --queue https://...)",
                field="--version",
            )
        if every:
            if isinstance(queue, HttpsQueue):
                version = queue.upgrade_all(version)
            else:
                assert version is not None
                queue.set_setting(SETTING_MID_VERSION, version)
            click.echo(f"every unpinned MID: upgrade to {version} at its next check")
            return
        assert name is not None
        agent = _registered(queue, name)
        if agent.pinned_version:
            raise ConfigError(
                f"MID {agent.short_name} is pinned to {agent.pinned_version}: a pinned MID never upgrades"
                " (mid unpin NAME first)",
                field="NAME",
            )
        if isinstance(queue, HttpsQueue):
            requested = queue.request_newest_upgrade(name, version)
        else:
            assert version is not None
            requested = queue.request_upgrade(name, version)
    click.echo(
        f"{requested.short_agent}: upgrade from {requested.from_version or '-'} to {requested.to_version} requested"
    )


@mid.command("upgrades")
@click.argument("name", required=False)
@instance_options
def upgrades_command(
    name: str | None, queue_url: str, instance_user: str | None, instance_ca_file: Path | None
) -> None:
    """The upgrade history (of NAME, or of every MID), newest first: each attempt and how it ended."""
    with _open(queue_url, instance_user, instance_ca_file) as queue:
        found = queue.list_upgrades(name)
    for upgrade in found:
        ended = "-" if upgrade.ended is None else f"{upgrade.ended:%Y-%m-%d %H:%M:%S}"
        click.echo(
            f"{upgrade.sys_id}  {upgrade.state:<10} {printable(upgrade.short_agent):<16} "
            f"{printable(upgrade.from_version or '-'):>10} -> {printable(upgrade.to_version):<10} "
            f"{upgrade.started:%Y-%m-%d %H:%M:%S}  {ended}  {printable(upgrade.reason)}".rstrip()
        )


@mid.command("issues")
@click.argument("name", required=False)
@click.option("--all", "include_resolved", is_flag=True, help="Resolved issues too.")
@instance_options
def issues_command(
    name: str | None,
    include_resolved: bool,
    queue_url: str,
    instance_user: str | None,
    instance_ca_file: Path | None,
) -> None:
    """MID issues (of NAME, or of every MID), newest first: New and Acknowledged ones unless --all."""
    with _open(queue_url, instance_user, instance_ca_file) as queue:
        found = queue.list_issues(name, include_resolved=include_resolved)
    for issue in found:
        click.echo(
            f"{issue.sys_id}  {issue.state:<12} {printable(issue.short_agent):<16} {printable(issue.kind):<20} "
            f"x{issue.count:<4} {issue.updated:%Y-%m-%d %H:%M:%S}  [{issue.source}] {printable(issue.message)}"
        )


@mid.group("issue")
def issue_group() -> None:
    """Acknowledge or resolve one MID issue by its id (``midprobe mid issues`` lists them)."""


def _issue_state(verb: str, state: str, help_text: str) -> None:
    @instance_options
    @click.argument("issue_id", metavar="ID")
    def command(
        issue_id: str, queue_url: str, instance_user: str | None, instance_ca_file: Path | None
    ) -> None:
        from midprobe.runner.ecc.record import check_sys_id
        from midprobe.runner.queue.lifecycle import check_issue_state

        check_sys_id(issue_id, field_name="ID")
        with _open(queue_url, instance_user, instance_ca_file) as queue:
            changed = queue.set_issue_state(issue_id, check_issue_state(state))
        click.echo(f"{changed.sys_id}: {changed.state}")

    command.__doc__ = help_text
    issue_group.command(verb)(command)


_issue_state("ack", "Acknowledged", "Acknowledge issue ID: someone is on it.")
_issue_state("resolve", "Resolved", "Resolve issue ID.")


@mid.command("credentials")
@click.argument("credentials_file", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", "names", multiple=True, help="Only this MID (repeatable) [every validated MID].")
@queue_option
def credentials_command(credentials_file: Path, names: tuple[str, ...], queue_url: str) -> None:
    """Seal the credentials FILE to each validated MID's own key and hand it over through the queue.

    For a queue that is a database; an instance served over HTTPS does this itself
    (``midprobe instance serve --credentials FILE``). Nothing leaves this machine in clear.
    """
    from midprobe.probes.credentials.sealing import portable_document
    from midprobe.runner.instance.credentials import deliver_credentials
    from midprobe.runner.queue.url import open_queue

    document = portable_document(credentials_file)
    with open_queue(queue_url) as queue:
        delivered = deliver_credentials(queue, document, set(names) if names else None)
    click.echo(
        f"sealed for {len(delivered)} MIDs: {', '.join(n.removeprefix('mid.server.') for n in delivered) or '-'}"
    )


@mid.command("auto-validate")
@click.argument("choice", type=click.Choice(["on", "off"]))
@queue_option
def auto_validate_command(choice: str, queue_url: str) -> None:
    """Validate every MID as it registers (on), or wait for ``mid validate`` (off, the default).

    For a private lab or test database only: with it on, any agent that can reach the queue works.
    """
    from midprobe.runner.queue.lifecycle import SETTING_AUTO_VALIDATE
    from midprobe.runner.queue.url import open_queue

    with open_queue(queue_url) as queue:
        queue.set_setting(SETTING_AUTO_VALIDATE, "true" if choice == "on" else "false")
    click.echo(f"auto-validate: {choice}")


__all__ = ["MID_COMMANDS", "instance_options", "mid"]
