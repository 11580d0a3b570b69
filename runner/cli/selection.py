"""``midprobe select`` (which MID servers may run a probe) and ``midprobe capabilities`` (what this host offers)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from midprobe.capabilities.config import CapabilityConfig, load_config
from midprobe.capabilities.errors import ConfigError
from midprobe.capabilities.ipranges import IPAddress, parse_address
from midprobe.capabilities.model import Capability
from midprobe.capabilities.nmap import advertised_capabilities, detect_nmap
from midprobe.capabilities.selection import SelectionRequest
from midprobe.runner.cli.options import seconds

_CONFIG_HELP = "Capabilities TOML: [[capability]] and [[mid_server]] tables (see docs/capabilities.md)."


@click.command("select")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help=_CONFIG_HELP + " With --queue: only its [[capability]] definitions are used.",
)
@click.option(
    "--queue",
    "queue_url",
    metavar="URL",
    default=None,
    help="Choose among the agents registered in this ECC queue instead of the file's MID servers.",
)
@click.option(
    "--live-within",
    type=seconds(0.001, 365 * 86_400.0),
    default=120.0,
    show_default=True,
    help="With --queue: an agent silent for longer than this many seconds counts as Down.",
)
@click.option("--application", metavar="APP", help="Only MID servers serving this application (or ALL).")
@click.option("--ip", "ip_text", metavar="ADDR", help="Only MID servers whose IP ranges hold this address.")
@click.option(
    "--capability",
    "capability_texts",
    multiple=True,
    metavar="NAME[=VALUE]",
    help='A requested capability; repeatable. E.g. --capability SSH --capability "Resolve DNS=host.example.com".',
)
@click.option("--json", "as_json", is_flag=True, help='Print {"step", "mid_servers", "rejected"} as JSON.')
@click.option(
    "--explain", is_flag=True, help="Also print the step and why each other MID was rejected (stderr)."
)
@click.option(
    "--default-mid",
    metavar="NAME",
    help="Fallback: the default MID of application ALL, used when no Up MID fits "
    "(an application's own default comes from the file's [[application]]).",
)
@click.option(
    "--include-upgrading",
    is_flag=True,
    help="Fallback: consider Upgrading/Paused MID servers when no Up MID fits.",
)
@click.option(
    "--include-other-statuses",
    is_flag=True,
    help="Fallback: then MID servers of any other status (Down, Draining, ...); implies --include-upgrading.",
)
def select_command(
    config_path: Path | None,
    queue_url: str | None,
    live_within: float,
    application: str | None,
    ip_text: str | None,
    capability_texts: tuple[str, ...],
    as_json: bool,
    explain: bool,
    default_mid: str | None,
    include_upgrading: bool,
    include_other_statuses: bool,
) -> None:
    """Choose the MID servers that may run a probe, by ServiceNow's rules.

    Filters status (Up and validated; Degraded too for Discovery) > application > IP range >
    capabilities, then tries the capability steps exact > wildcard (*) > ALL; the first step that
    finds a MID wins. The fallbacks walk ServiceNow's status ladder: Up, the default MID, Upgrading or
    Paused, the default MID, other statuses, the default MID whatever its status. Prints the
    chosen names one per line (none: nothing, exit 0). An undefined capability name is a
    BadArgumentException (exit 2).
    """
    if config_path is None and queue_url is None:
        raise ConfigError("give --config FILE, --queue URL, or both", field="select")
    config = load_config(config_path) if config_path is not None else CapabilityConfig("<queue>", (), ())
    if queue_url is not None:
        config = _config_from_queue(queue_url, live_within, config)
    policy = config.policy
    if default_mid is not None:
        config.mid_server(default_mid)  # an unknown name is an error, not a silent no-op
        policy = dataclasses.replace(policy, default_mid_server=default_mid)
    if include_upgrading or include_other_statuses:
        policy = dataclasses.replace(policy, include_upgrading_and_paused=True)
    if include_other_statuses:
        policy = dataclasses.replace(policy, include_other_statuses=True)
    request = SelectionRequest(
        tuple(Capability.parse_request(text) for text in capability_texts),
        application,
        _parse_ip(ip_text),
    )
    result = config.selector(policy=policy).select(config.mid_servers, request)
    if as_json:
        click.echo(json.dumps(result.to_json(include_tier=policy.has_fallback), indent=2))
    else:
        for name in result.names:
            click.echo(name)
    if explain:
        tier = f", tier {result.tier}" if policy.has_fallback and result.tier else ""
        click.echo(f"step: {result.step or 'none'}{tier}", err=True)
        for rejection in result.rejections:
            click.echo(f"rejected {rejection.mid_server}: {rejection.reason}", err=True)


def _config_from_queue(url: str, live_within: float, configured: CapabilityConfig) -> CapabilityConfig:
    """MID servers from the agents registered in the queue; silent agents count as Down."""
    from midprobe.runner.agent.identity import definitions_from_registrations, mid_server_from_registration
    from midprobe.runner.queue.url import open_queue

    with open_queue(url) as queue:
        registered = queue.list_agents()
        live = {agent.name for agent in queue.list_agents(live_within_seconds=live_within)}
    mids = tuple(mid_server_from_registration(agent, live=agent.name in live) for agent in registered)
    definitions = definitions_from_registrations(registered, configured.definitions)
    return dataclasses.replace(configured, source=url, definitions=definitions, mid_servers=mids)


def _parse_ip(text: str | None) -> IPAddress | None:
    if text is None:
        return None
    try:
        return parse_address(text)
    except ConfigError as error:
        raise ConfigError(error.message, field="--ip") from None


@click.command("capabilities")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help=_CONFIG_HELP + " Needs --mid.",
)
@click.option(
    "--mid", "mid_name", metavar="NAME", help="The [[mid_server]] this host runs as. Needs --config."
)
@click.option(
    "--nmap",
    "nmap_executable",
    default="nmap",
    show_default=True,
    envvar="MIDPROBE_NMAP",
    metavar="PATH",
    help="The nmap to check: a name looked up on PATH, or a path (env MIDPROBE_NMAP).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the detection and capabilities as JSON.")
def capabilities_command(
    config_path: Path | None, mid_name: str | None, nmap_executable: str, as_json: bool
) -> None:
    """Show what this host would advertise: Nmap (only if a working nmap is found, and why) plus,
    with --config and --mid, the capabilities assigned to that MID server.
    """
    if (config_path is None) != (mid_name is None):
        raise click.UsageError("--config and --mid go together")
    mid = load_config(config_path).mid_server(mid_name) if config_path and mid_name else None
    detection = detect_nmap(nmap_executable)
    advertised = [str(capability) for capability in advertised_capabilities(mid, detection)]
    if as_json:
        document = {
            "mid_server": mid.name if mid else None,
            "nmap": dataclasses.asdict(detection),
            "capabilities": advertised,
        }
        click.echo(json.dumps(document, indent=2))
        return
    if mid is not None:
        validated = "validated" if mid.validated else "not validated"
        click.echo(f"MID server: {mid.name} ({mid.status}, {validated})")
    click.echo(f"nmap: {'found' if detection.found else 'not available'}: {detection.reason}")
    click.echo(f"advertises: {', '.join(advertised) or 'nothing'}")
    if mid is not None and mid.nmap_installed != detection.found:
        click.echo(
            f"note: {config_path} says nmap_installed = {str(mid.nmap_installed).lower()} for {mid.name}; "
            "what this host advertises follows the detection above"
        )


__all__ = ["capabilities_command", "select_command"]
