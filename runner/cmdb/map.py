"""The network map: the CMDB's CIs as nodes and its relations as edges, drawn as text, DOT or JSON.

Pure (no database): ``midprobe cmdb map`` reads the CIs and relations from the store and hands
them here. ``around`` cuts the map to the neighbourhood of one CI (every CI within ``depth``
relations of it, whichever way they point), which is what one looks at on a network of
thousands; ``components`` groups the CIs that are related. Names come from devices and are not
trusted: the DOT and JSON writers escape them (the terminal text is the CLI's, escaped there).
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from midprobe.capabilities.errors import ToolError
from midprobe.runner.cmdb.model import ConfigurationItem, Relation

__all__ = [
    "DRAWN",
    "FORMATS",
    "MapEdge",
    "MapNode",
    "NetworkMap",
    "build_map",
    "draw",
    "order",
    "render_dot",
    "render_json",
]

FORMATS = ("text", "dot", "json", "svg", "png")
#: Formats Graphviz draws (``dot -T...``), written as bytes.
DRAWN = ("svg", "png")

#: How a class is drawn: (Graphviz shape, fill colour), by the class's family.
_NETWORK = ("box", "#cfe2f3")
_SERVER = ("box3d", "#d9ead3")
_LOOK: dict[str, tuple[str, str]] = {
    "cmdb_ci_ip_switch": _NETWORK,
    "cmdb_ci_netgear": _NETWORK,
    "cmdb_ci_ip_router": ("ellipse", "#cfe2f3"),
    "cmdb_ci_ip_firewall": ("octagon", "#f4cccc"),
    "cmdb_ci_wap_network": ("invtriangle", "#cfe2f3"),
    "cmdb_ci_ups": ("cylinder", "#fff2cc"),
    "cmdb_ci_storage_server": ("cylinder", "#d9ead3"),
    "cmdb_ci_printer": ("note", "#fff2cc"),
    "cmdb_ci_appl": ("component", "#ead1dc"),
}
_OTHER = ("box", "#eeeeee")
#: How a relation is drawn, by its type: links plain, dependencies dashed (the application map).
_EDGE_STYLE: dict[str, str] = {
    "Depends on::Used by": 'style=dashed, color="#cc0000", fontcolor="#cc0000"',
    "Runs on::Runs": "style=dotted",
}


def _look(sys_class_name: str) -> tuple[str, str]:
    if sys_class_name in _LOOK:
        return _LOOK[sys_class_name]
    return _SERVER if sys_class_name.endswith("_server") else _OTHER


@dataclass(frozen=True)
class MapNode:
    """One CI on the map."""

    sys_id: str
    name: str
    sys_class_name: str
    ip_address: str | None


@dataclass(frozen=True)
class MapEdge:
    """``parent -[type]-> child`` (``type`` is ServiceNow's ``Parent word::Child word``)."""

    parent: str
    child: str
    type: str
    discovery: str | None

    @property
    def parent_word(self) -> str:
        return self.type.split("::", 1)[0]


@dataclass(frozen=True)
class NetworkMap:
    """Nodes sorted by name, edges by type then ends; every edge joins two nodes of the map."""

    nodes: tuple[MapNode, ...]
    edges: tuple[MapEdge, ...]

    def node(self, sys_id: str) -> MapNode | None:
        return next((node for node in self.nodes if node.sys_id == sys_id), None)

    def around(self, sys_id: str, depth: int) -> NetworkMap:
        """The CIs within ``depth`` relations of ``sys_id`` (either direction) and the edges among them."""
        if depth < 0:
            raise ValueError("depth must not be negative")
        neighbours: dict[str, set[str]] = defaultdict(set)
        for edge in self.edges:
            neighbours[edge.parent].add(edge.child)
            neighbours[edge.child].add(edge.parent)
        reached = {sys_id: 0}
        waiting = deque([sys_id])
        while waiting:
            current = waiting.popleft()
            if reached[current] == depth:
                continue
            for other in sorted(neighbours[current]):
                if other not in reached:
                    reached[other] = reached[current] + 1
                    waiting.append(other)
        return NetworkMap(
            tuple(node for node in self.nodes if node.sys_id in reached),
            tuple(edge for edge in self.edges if edge.parent in reached and edge.child in reached),
        )

    def components(self) -> list[list[MapNode]]:
        """The connected groups of CIs, largest first (then by the first name), each sorted by name."""
        group: dict[str, str] = {node.sys_id: node.sys_id for node in self.nodes}

        def root(sys_id: str) -> str:
            while group[sys_id] != sys_id:
                group[sys_id] = group[group[sys_id]]
                sys_id = group[sys_id]
            return sys_id

        for edge in self.edges:
            group[root(edge.parent)] = root(edge.child)
        members: dict[str, list[MapNode]] = defaultdict(list)
        for node in self.nodes:
            members[root(node.sys_id)].append(node)
        return sorted(members.values(), key=lambda nodes: (-len(nodes), order(nodes[0])))


def order(node: MapNode) -> tuple[str, str]:
    """How the map sorts CIs: by name (case-blind), then sys_id."""
    return (node.name.casefold(), node.sys_id)


def build_map(
    cis: Iterable[ConfigurationItem], relations: Iterable[Relation], *, types: Iterable[str] = ()
) -> NetworkMap:
    """The map of ``cis``; relations to CIs not among them (merged away) are left out.

    ``types``: only relations of these types (all when empty).
    """
    nodes = sorted((MapNode(ci.sys_id, ci.name, ci.sys_class_name, ci.ip_address) for ci in cis), key=order)
    known = {node.sys_id for node in nodes}
    wanted = frozenset(types)
    edges = sorted(
        (
            MapEdge(relation.parent, relation.child, relation.type, relation.discovery)
            for relation in relations
            if relation.parent in known
            and relation.child in known
            and (not wanted or relation.type in wanted)
        ),
        key=lambda edge: (edge.type, edge.parent, edge.child),
    )
    return NetworkMap(tuple(nodes), tuple(edges))


def _dot_text(text: str) -> str:
    """``text`` for inside a DOT quoted string: quotes and backslashes escaped, and every character
    that is not printable (line breaks, terminal escapes, lone surrogates) written as ``\\xNN``."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\\\x{ord(ch):02x}")  # a visible backslash, then the code
    return "".join(out)


def _dot_string(*lines: str) -> str:
    """A DOT quoted string of ``lines`` joined by Graphviz's own line break (``\\n``)."""
    return '"' + "\\n".join(_dot_text(line) for line in lines) + '"'


def render_dot(network: NetworkMap) -> str:
    """A Graphviz digraph: a node per CI, shaped and coloured by its class, an arrow per relation
    named by its parent word (dependencies dashed and red)."""
    lines = [
        "digraph cmdb {",
        '  node [style=filled, fontname="Helvetica", fontsize=10];',
        "  edge [fontsize=9];",
    ]
    for node in network.nodes:
        label = _dot_string(node.name, node.sys_class_name.removeprefix("cmdb_ci_"), node.ip_address or "-")
        shape, colour = _look(node.sys_class_name)
        lines.append(f'  {_dot_string(node.sys_id)} [label={label}, shape={shape}, fillcolor="{colour}"];')
    for edge in network.edges:
        lines.append(
            f"  {_dot_string(edge.parent)} -> {_dot_string(edge.child)} [label={_dot_string(edge.parent_word)}"
            + (f", {_EDGE_STYLE[edge.type]}" if edge.type in _EDGE_STYLE else "")
            + "];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_json(network: NetworkMap) -> str:
    """``{"nodes": [...], "edges": [...]}`` keyed by ServiceNow's field names where they exist."""
    document = {
        "nodes": [
            {
                "sys_id": node.sys_id,
                "name": node.name,
                "sys_class_name": node.sys_class_name,
                "ip_address": node.ip_address,
            }
            for node in network.nodes
        ],
        "edges": [
            {"parent": edge.parent, "child": edge.child, "type": edge.type, "discovery": edge.discovery}
            for edge in network.edges
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def draw(network: NetworkMap, form: str) -> bytes:
    """The map drawn by Graphviz's ``dot`` (``svg`` or ``png``), through the ``graphviz`` binding.

    ``ToolError`` when Graphviz is not installed or fails. Laying out thousands of CIs takes
    Graphviz a while: draw a neighbourhood (``around``) or write DOT for such maps.
    """
    import graphviz  # only when drawing: the other formats need no Graphviz

    if form not in DRAWN:
        raise ValueError(f"{form!r} is not a drawn format")
    source = render_dot(network).encode("utf-8")
    try:
        return bytes(graphviz.pipe("dot", form, source, quiet=True))
    except graphviz.ExecutableNotFound:
        raise ToolError("Graphviz's dot is not installed (Debian package graphviz)") from None
    except graphviz.CalledProcessError as error:
        detail = (error.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise ToolError(f"Graphviz could not draw the map: {detail[-1] if detail else error}") from None
