"""``midprobe cmdb``: read the CMDB that discoveries fill (list, show, history, export, map)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.cli.options import (
    TEXT,
    instance_options,
    integer,
    output_option,
    queue_or_instance_option,
)
from midprobe.runner.cli.text import printable
from midprobe.runner.cmdb.map import (
    DRAWN,
    FORMATS,
    MapEdge,
    MapNode,
    NetworkMap,
    build_map,
    draw,
    order,
    render_dot,
    render_json,
)
from midprobe.runner.cmdb.model import CI_CLASSES, EXPLORATION_TABLES, RELATION_TYPES, ConfigurationItem
from midprobe.runner.cmdb.store import CmdbStore, open_cmdb

if TYPE_CHECKING:
    from midprobe.runner.instance.cmdb_client import InstanceCmdb

#: Rows of each exploration table `cmdb show` prints (--json prints all).
SHOWN_ROWS = 10


def _console() -> Console:
    # Piped output keeps whole lines, so sys_ids stay copyable.
    return Console(width=None if sys.stdout.isatty() else 250, highlight=False, markup=False, emoji=False)


def _open(queue_url: str, user: str | None, ca_file: Path | None) -> CmdbStore | InstanceCmdb:
    """The CMDB in the database, or read through the instance an ``https://`` queue names."""
    from midprobe.runner.instance.client import is_instance_url, open_instance

    if is_instance_url(queue_url):
        from midprobe.runner.instance.cmdb_client import InstanceCmdb

        return InstanceCmdb(open_instance(queue_url, user=user, ca_file=ca_file))
    if user is not None or ca_file is not None:
        raise ConfigError("--user and --ca go with an https:// queue (an instance)", field="--user")
    return open_cmdb(queue_url, must_exist=True)


@click.group("cmdb")
def cmdb() -> None:
    """Read the CMDB: configuration items, their interfaces, addresses, relations, history and map."""


@cmdb.command("list")
@queue_or_instance_option
@click.option(
    "--class", "ci_class", type=click.Choice(sorted(CI_CLASSES)), default=None, help="Only CIs of this class."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="A JSON array of CIs keyed by ServiceNow's field names, with their interfaces and addresses.",
)
@instance_options
def list_command(
    queue_url: str,
    ci_class: str | None,
    as_json: bool,
    instance_user: str | None,
    instance_ca_file: Path | None,
) -> None:
    """List the configuration items, by class then name."""
    with _open(queue_url, instance_user, instance_ca_file) as store:
        items = store.list_cis(sys_class_name=ci_class)
    if as_json:
        click.echo(json.dumps([_document(ci) for ci in items], indent=2))
        return
    table = Table(box=None, pad_edge=False)
    for column in (
        "sys_id",
        "class",
        "name",
        "ip_address",
        "mac_address",
        "serial_number",
        "os",
        "last_discovered",
    ):
        table.add_column(column, overflow="fold")
    for ci in items:
        table.add_row(
            ci.sys_id[:8],
            ci.sys_class_name.removeprefix("cmdb_ci_"),
            *(printable(v) for v in (ci.name, ci.ip_address, ci.mac_address, ci.serial_number)),
            printable(" ".join(filter(None, (ci.attributes.get("os"), ci.attributes.get("os_version"))))),
            ci.last_discovered[:19],
        )
    _console().print(table)
    click.echo(f"{len(items)} CI{'s' if len(items) != 1 else ''}", err=True)


def _document(item: ConfigurationItem) -> dict[str, Any]:
    """A CI as ``cmdb list --json`` and ``cmdb show --json`` print it: its fields, its network
    adapters (name, MAC, the addresses on each) and every address it holds."""
    return {
        **item.as_row(),
        "interfaces": [
            {"name": i.name, "mac_address": i.mac_address, "ip_addresses": list(i.ip_addresses)}
            for i in item.interfaces
        ],
        "ip_addresses": list(item.ip_addresses),
    }


@cmdb.command("show")
@click.argument("ci")
@queue_or_instance_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="The CI, its interfaces, relations and exploration tables as JSON.",
)
@instance_options
def show_command(
    ci: str, queue_url: str, as_json: bool, instance_user: str | None, instance_ca_file: Path | None
) -> None:
    """Show one CI (by sys_id, unique sys_id prefix, name or IP address): its fields, interfaces,
    relations, and what exploration found (ARP entries, forwarding table, VLANs, routes, TCP
    services and connections, disks, packages, processes; the first rows of each, all with --json)."""
    with _open(queue_url, instance_user, instance_ca_file) as store:
        item = store.get(ci)
        relations = store.relations(item.sys_id)
        names = {other.sys_id: other.name for other in store.list_cis()}
        explored = {table: store.exploration(item.sys_id, table) for table in EXPLORATION_TABLES}
    related = [
        {
            "type": relation.type,
            "direction": "parent" if relation.parent == item.sys_id else "child",
            "other": relation.child if relation.parent == item.sys_id else relation.parent,
            "discovery": relation.discovery,
        }
        for relation in relations
    ]
    document = _document(item)
    interfaces: list[dict[str, Any]] = document["interfaces"]
    if as_json:
        click.echo(json.dumps({**document, "relations": related, "exploration": explored}, indent=2))
        return
    for key, value in item.as_row().items():
        if value is not None:
            click.echo(f"{key}: {printable(value)}")
    click.echo("interfaces:")
    for interface in interfaces:
        addresses = ", ".join(interface["ip_addresses"]) or "-"
        click.echo(f"  {printable(interface['name'])}  {interface['mac_address'] or '-'}  {addresses}")
    extra = sorted(set(item.ip_addresses) - {a for i in item.interfaces for a in i.ip_addresses})
    for address in extra:
        click.echo(f"  (no adapter)  -  {address}")
    click.echo("relations:" if related else "relations: none")
    for relation in related:
        parent_word, child_word = str(relation["type"]).split("::")
        word = parent_word if relation["direction"] == "parent" else child_word
        other = str(relation["other"])
        click.echo(f"  {word} {printable(names.get(other, other))} ({other[:8]})")
    for table, rows in explored.items():
        if not rows:
            continue
        click.echo(f"{table}: {len(rows)} row{'s' if len(rows) != 1 else ''}")
        for row in rows[:SHOWN_ROWS]:
            click.echo("  " + "  ".join(f"{key}={printable(value)}" for key, value in row.items() if value))
        if len(rows) > SHOWN_ROWS:
            click.echo(f"  ... {len(rows) - SHOWN_ROWS} more (--json shows all)")


@cmdb.command("history")
@click.argument("ci")
@queue_or_instance_option
@click.option("--json", "as_json", is_flag=True, help="A JSON array of changes.")
@instance_options
def history_command(
    ci: str, queue_url: str, as_json: bool, instance_user: str | None, instance_ca_file: Path | None
) -> None:
    """The per-attribute change log of one CI: old value, new value, when, which discovery."""
    with _open(queue_url, instance_user, instance_ca_file) as store:
        item = store.get(ci)
        changes = store.history(item.sys_id)
    if as_json:
        click.echo(json.dumps([vars(change) for change in changes], indent=2))
        return
    click.echo(
        f"{printable(item.name)} ({item.sys_id}): first discovered {item.first_discovered[:19]}, "
        f"last {item.last_discovered[:19]}"
    )
    if not changes:
        click.echo("no changes recorded")
    for change in changes:
        click.echo(
            f"{change.at[:19]}  {change.field_name}: {printable(change.old_value) or '(none)'} -> "
            f"{printable(change.new_value) or '(none)'}  [{change.discovery or '-'}]"
        )


@cmdb.command("export")
@queue_or_instance_option
@click.option("--format", "form", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@output_option
@instance_options
def export_command(
    queue_url: str,
    form: str,
    output: Path | None,
    instance_user: str | None,
    instance_ca_file: Path | None,
) -> None:
    """Every CI, keyed by ServiceNow's field names, as JSON or CSV."""
    with _open(queue_url, instance_user, instance_ca_file) as store:
        text = store.export("csv" if form == "csv" else "json")
    if output is None:
        click.echo(text, nl=False)
        return
    _write(output, text.encode("utf-8"))


def _write(output: Path, data: bytes) -> None:
    try:
        output.write_bytes(data)
    except OSError as error:
        raise ConfigError(f"cannot write {output}: {error.strerror or error}", field="--output") from None


@cmdb.command("map")
@queue_or_instance_option
@click.option(
    "--format",
    "form",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text: groups of related CIs; dot: Graphviz source; svg, png: drawn by Graphviz; json: nodes and edges.",
)
@click.option(
    "--around",
    "around",
    type=TEXT,
    default=None,
    help="Only the CIs near this one (sys_id, prefix, name or IP).",
)
@click.option(
    "--depth",
    type=integer(0, 64),
    default=2,
    show_default=True,
    help="With --around: how many relations away.",
)
@click.option(
    "--type",
    "types",
    type=click.Choice(sorted(RELATION_TYPES)),
    multiple=True,
    help="Only relations of this type (repeatable; all by default).",
)
@output_option
@instance_options
def map_command(
    queue_url: str,
    form: str,
    around: str | None,
    depth: float,
    types: tuple[str, ...],
    output: Path | None,
    instance_user: str | None,
    instance_ca_file: Path | None,
) -> None:
    """The network map: CIs and the relations between them (Connects to, Runs on, Depends on)."""
    with _open(queue_url, instance_user, instance_ca_file) as store:
        centre = store.get(around).sys_id if around is not None else None
        network = build_map(store.list_cis(), store.relations(), types=types)
    if centre is not None:
        network = network.around(centre, int(depth))
    if form in DRAWN:
        if output is None and sys.stdout.isatty():
            raise ConfigError(f"--format {form} writes an image: give -o FILE or pipe it", field="--output")
        image = draw(network, form)
        if output is None:
            sys.stdout.buffer.write(image)
            sys.stdout.flush()
            return
        _write(output, image)
        return
    render = {"text": _map_text, "dot": render_dot, "json": render_json}[form]
    text = render(network)
    if output is None:
        click.echo(text, nl=False)
        return
    _write(output, text.encode("utf-8"))


def _label(node: MapNode) -> str:
    kind = node.sys_class_name.removeprefix("cmdb_ci_")
    return f"{printable(node.name)} ({kind}, {printable(node.ip_address) or '-'})"


def _map_text(network: NetworkMap) -> str:
    """Each group of related CIs, each CI with the relations it is the parent of, then the CIs alone."""
    by_id = {node.sys_id: node for node in network.nodes}
    outgoing: dict[str, list[MapEdge]] = {}
    for edge in network.edges:
        outgoing.setdefault(edge.parent, []).append(edge)
    lines: list[str] = []
    groups = network.components()
    related = [nodes for nodes in groups if len(nodes) > 1]
    alone = sorted((nodes[0] for nodes in groups if len(nodes) == 1), key=order)
    for number, nodes in enumerate(related, 1):
        lines.append(f"group {number}: {len(nodes)} CIs")
        for node in nodes:
            lines.append(f"  {_label(node)}")
            edges = sorted(outgoing.get(node.sys_id, ()), key=lambda e: (e.type, order(by_id[e.child])))
            lines.extend(f"    {edge.parent_word} {_label(by_id[edge.child])}" for edge in edges)
    if alone:
        lines.append(f"related to no other CI: {len(alone)}")
        lines.extend(f"  {_label(node)}" for node in alone)
    return "\n".join(lines or ["no CIs"]) + "\n"
