"""``midprobe ecc``: put probe requests on the ECC queue and read records back."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.markup import escape as escape_markup
from rich.table import Table

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.cli.options import integer, queue_option
from midprobe.runner.cli.text import shown
from midprobe.runner.ecc.builders import new_output_record
from midprobe.runner.ecc.payload import pretty_payload
from midprobe.runner.ecc.record import (
    QUEUE_PROCESSING_TOPIC,
    QUEUE_SIDES,
    STATES,
    EccRecord,
    check_request_text,
    check_sys_id,
    check_sys_id_prefix,
    is_sys_id,
)
from midprobe.runner.queue.base import EccQueue
from midprobe.runner.queue.url import open_queue


def _parse_params(pairs: tuple[str, ...]) -> list[tuple[str, str]]:
    parsed = []
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise ConfigError(f"{pair!r} is not KEY=VALUE", field="--param")
        parsed.append((key.strip(), value))
    return parsed


@click.group("ecc")
def ecc() -> None:
    """Enqueue probe requests (ECC outputs) and read ECC records."""


@ecc.command("enqueue")
@queue_option
@click.option(
    "--agent",
    required=True,
    help="MID name: NAME or mid.server.NAME (mid.server.* = every Up agent, each gets a copy).",
)
@click.option(
    "--topic",
    required=True,
    help="Probe topic, one midprobe's probes handle: Shazzam, SSHCommand, SNMP, DNS, ... (docs/topics.md).",
)
@click.option("--source", default="", help="The target: an address, a range, a CIDR, a host name.")
@click.option("--name", "record_name", default=None, help="Probe name (default: the topic).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A probe parameter; repeatable.")
@click.option(
    "--priority",
    type=integer(0, 2),
    default=2,
    show_default=True,
    help="0 interactive, 1 expedited, 2 standard.",
)
@click.option("--correlator", default="", help="agent_correlator: ties records to a larger job.")
def enqueue(
    queue_url: str,
    agent: str,
    topic: str,
    source: str,
    record_name: str | None,
    params: tuple[str, ...],
    priority: int,
    correlator: str,
) -> None:
    """Put one probe request on the queue and print its sys_id.

    The topic must be one midprobe's probes handle, and the source and parameters must pass that
    probe's checks (as the agent will run them); a parameter the probe does not read is refused.
    """
    parameters = _parse_params(params)
    record = new_output_record(
        agent=agent,
        topic=topic,
        source=source,
        name=record_name,
        parameters=parameters,
        priority=priority,
        agent_correlator=correlator,
    )
    from midprobe.probes.registry import default_registry  # the probes: only for enqueue
    from midprobe.runner.agent.request_check import check_request

    check_request(default_registry(), record.topic, record.name, record.source, parameters)
    with open_queue(queue_url) as queue:
        click.echo(queue.enqueue(record))


@ecc.command("list")
@queue_option
@click.option(
    "--queue-side", type=click.Choice(QUEUE_SIDES), default=None, help="output (requests) or input (results)."
)
@click.option("--state", type=click.Choice(STATES), default=None)
@click.option("--agent", default=None, help="Only records of this agent (NAME or mid.server.NAME).")
@click.option("--topic", default=None)
@click.option("--response-to", default=None, metavar="SYS_ID", help="Only the inputs answering this output.")
@click.option("--limit", type=integer(1, 1_000_000), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="A JSON array of records keyed by ECC field names.")
@click.option(
    "--sys-ids",
    "only_ids",
    is_flag=True,
    help="Only the sys_ids, one a line (for scripts: midprobe ecc show $(midprobe ecc list ... --sys-ids)).",
)
@click.option(
    "--all",
    "show_claims",
    is_flag=True,
    help=f"Also list the agents' claim records (topic {QUEUE_PROCESSING_TOPIC}), hidden otherwise.",
)
def list_records(
    queue_url: str,
    queue_side: str | None,
    state: str | None,
    agent: str | None,
    topic: str | None,
    response_to: str | None,
    limit: int,
    as_json: bool,
    only_ids: bool,
    show_claims: bool,
) -> None:
    """List ECC records, oldest first (without the agents' claim records unless --all or --topic asks)."""
    if response_to is not None:
        check_sys_id(response_to, field_name="--response-to")
    if topic is not None:
        check_request_text(topic, field_name="--topic")
    with open_queue(queue_url, must_exist=True) as queue:
        records = queue.list(
            queue_side=queue_side,  # type: ignore[arg-type]
            state=state,  # type: ignore[arg-type]
            agent=agent,
            topic=topic,
            response_to=response_to,
            limit=limit,
            exclude_topic=None if show_claims or topic is not None else QUEUE_PROCESSING_TOPIC,
        )
    if as_json:
        click.echo(json.dumps([record.as_dict() for record in records], indent=2))
        return
    if only_ids:
        for record in records:
            click.echo(record.sys_id)
        return
    _print_table(records)


def _print_table(records: list[EccRecord]) -> None:
    table = Table(box=None, pad_edge=False)
    for column in (
        "sys_id",
        "queue",
        "state",
        "agent",
        "topic",
        "source",
        "priority",
        "response_to",
        "error_string",
    ):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            *(
                escape_markup(shown(value))
                for value in (
                    record.sys_id,
                    record.queue,
                    record.state,
                    record.agent,
                    record.topic,
                    record.source,
                    str(record.priority),
                    record.response_to or "",
                    record.error_string,
                )
            )
        )
    # Piped output keeps whole lines (no terminal width to fit), so sys_ids stay copyable.
    Console(width=None if sys.stdout.isatty() else 250).print(table)


#: Records named when a sys_id prefix is ambiguous.
_CANDIDATES_SHOWN = 10


def _by_sys_id(queue: EccQueue, sys_id: str) -> EccRecord:
    """The record whose sys_id is ``sys_id`` or, uniquely, starts with it (``ConfigError`` otherwise)."""
    prefix = check_sys_id_prefix(sys_id.lower(), field_name="SYS_ID")
    found = queue.list(sys_id_prefix=prefix, limit=_CANDIDATES_SHOWN + 1)
    if not found:
        raise ConfigError(
            f"no record with sys_id {prefix}{'' if is_sys_id(prefix) else '...'} in {queue.url}"
        )
    if len(found) > 1:
        shown_ids = ", ".join(record.sys_id for record in found[:_CANDIDATES_SHOWN])
        more = " and more" if len(found) > _CANDIDATES_SHOWN else ""
        raise ConfigError(
            f"sys_id {prefix}... is ambiguous: {shown_ids}{more}; give more characters", field="SYS_ID"
        )
    return found[0]


#: ``ecc show --format``: readable (text), the stored payload re-indented (xml), one JSON object (json).
SHOW_FORMATS = ("text", "xml", "json")


@ecc.command("show")
@click.argument("sys_id")
@queue_option
@click.option(
    "--format",
    "view",
    type=click.Choice(SHOW_FORMATS),
    default="text",
    show_default=True,
    help="text: the record and, for a result, one row per host as the scan's table; "
    "xml: every field and the payload as stored, re-indented; "
    "json: the record's fields, its payload and (for a result) its hosts as the scan's JSON.",
)
def show(sys_id: str, queue_url: str, view: str) -> None:
    """Show one record; a result (input) as one row per host. SYS_ID may be the start of one (unique)."""
    # The scan's table writer (and the probes its readers know): only for show.
    from midprobe.runner.cli.record_view import reports_json, write_view

    with open_queue(queue_url, must_exist=True) as queue:
        record = _by_sys_id(queue, sys_id)
        payload = queue.read_payload(record)
    if view == "text":
        write_view(record, payload, sys.stdout)
        return
    if view == "json":
        data: dict[str, object] = {**record.as_dict(), "payload": payload}
        hosts = reports_json(record, payload)
        if hosts is not None:
            data["hosts"] = hosts
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in record.as_dict().items():
        if key != "payload":
            click.echo(f"{key}: {shown('' if value is None else str(value))}")
    click.echo("payload:")
    click.echo(shown(pretty_payload(payload), keep="\n\t") if payload.strip() else "(empty)")
