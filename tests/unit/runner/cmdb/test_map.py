"""The network map: which CIs and relations it holds, the neighbourhood cut, and DOT that Graphviz draws."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from midprobe.runner.cmdb.map import NetworkMap, build_map, render_dot, render_json
from midprobe.runner.cmdb.model import ConfigurationItem, Relation

CONNECTS = "Connects to::Connected by"
RUNS_ON = "Runs on::Runs"


def ci(sys_id: str, name: str, kind: str = "cmdb_ci_ip_switch", ip: str | None = None) -> ConfigurationItem:
    return ConfigurationItem(
        sys_id, kind, name, ip, None, None, {}, "2026-12-01T12:00:00", "2026-12-01T12:00:00", "d1"
    )


def rel(parent: str, child: str, kind: str = CONNECTS) -> Relation:
    return Relation(f"{parent}-{child}", parent, child, kind, "d1", "t", "t")


# core - dist1 - access1 - linux1 (Runs on: app1), core - dist2; router1 alone.
CIS = [
    ci("c", "core"),
    ci("d1", "dist1"),
    ci("d2", "dist2"),
    ci("a1", "access1"),
    ci("l1", "linux1", "cmdb_ci_linux_server", "198.18.0.10"),
    ci("p1", "app1", "cmdb_ci_appl"),
    ci("r1", "router1", "cmdb_ci_ip_router"),
]
RELATIONS = [
    rel("c", "d1"),
    rel("c", "d2"),
    rel("d1", "a1"),
    rel("a1", "l1"),
    rel("p1", "l1", RUNS_ON),
    rel("a1", "gone"),  # a CI merged away: not on the map
]


@pytest.fixture
def network() -> NetworkMap:
    return build_map(CIS, RELATIONS)


def names(network: NetworkMap) -> list[str]:
    return [node.name for node in network.nodes]


def test_edges_to_cis_not_on_the_map_are_left_out(network: NetworkMap) -> None:
    assert len(network.edges) == 5
    assert all(network.node(e.parent) and network.node(e.child) for e in network.edges)


def test_relation_types_filter_the_edges(network: NetworkMap) -> None:
    runs_on = build_map(CIS, RELATIONS, types=[RUNS_ON])
    assert [(e.parent, e.child) for e in runs_on.edges] == [("p1", "l1")]
    assert names(runs_on) == names(network)  # the CIs stay, related or not


def test_around_follows_relations_both_ways_to_the_depth(network: NetworkMap) -> None:
    assert names(network.around("a1", 0)) == ["access1"]
    assert names(network.around("a1", 1)) == ["access1", "dist1", "linux1"]
    two = network.around("a1", 2)
    assert names(two) == ["access1", "app1", "core", "dist1", "linux1"]
    assert {(e.parent, e.child) for e in two.edges} == {("c", "d1"), ("d1", "a1"), ("a1", "l1"), ("p1", "l1")}
    assert names(network.around("r1", 5)) == ["router1"]
    with pytest.raises(ValueError, match="depth"):
        network.around("a1", -1)


def test_components_group_related_cis_largest_first(network: NetworkMap) -> None:
    groups = [[node.name for node in nodes] for nodes in network.components()]
    assert groups == [["access1", "app1", "core", "dist1", "dist2", "linux1"], ["router1"]]


def test_json_lists_nodes_and_edges_by_servicenow_names(network: NetworkMap) -> None:
    document = json.loads(render_json(network))
    assert document["nodes"][0] == {
        "sys_id": "a1",
        "name": "access1",
        "sys_class_name": "cmdb_ci_ip_switch",
        "ip_address": None,
    }
    assert {"parent": "p1", "child": "l1", "type": RUNS_ON, "discovery": "d1"} in document["edges"]


HOSTILE = 'sw"; x -> y [label="pwned"]; \\\n\x1b[31m\ud800'


def test_dot_is_drawn_by_graphviz_with_hostile_names_kept_as_text() -> None:
    if shutil.which("dot") is None:
        pytest.fail("graphviz's dot is missing; run `make system-deps`", pytrace=False)
    network = build_map(
        [ci("s", HOSTILE), ci("l", "linux1", "cmdb_ci_linux_server", "198.18.0.10")], [rel("s", "l")]
    )
    dot = render_dot(network)
    assert "\x1b" not in dot
    assert "\ud800" not in dot
    drawn = subprocess.run(["dot", "-Tjson"], input=dot.encode(), capture_output=True, check=True, timeout=30)
    graph = json.loads(drawn.stdout)
    labels = {node["name"]: node["label"] for node in graph["objects"]}
    assert set(labels) == {"s", "l"}  # no node "x" or "y" smuggled in by the name
    assert labels["l"] == "linux1\\nlinux_server\\n198.18.0.10"
    # Graphviz keeps a label's escapes (a doubled backslash draws one, \n breaks the line): the name's
    # backslash is drawn, then its line break, escape and surrogate as visible \xNN codes.
    assert labels["s"] == 'sw"; x -> y [label="pwned"]; ' + r"\\\\x0a\\x1b[31m\\xd800\nip_switch\n-"
    (edge,) = graph["edges"]
    assert edge["label"] == "Connects to"


def test_graphviz_draws_dependencies_dashed_and_links_plain() -> None:
    if shutil.which("dot") is None:
        pytest.fail("graphviz's dot is missing; run `make system-deps`", pytrace=False)
    network = build_map(
        [
            ci("a", "linux1", "cmdb_ci_linux_server"),
            ci("p", "printer1", "cmdb_ci_printer"),
            ci("s", "switch1"),
        ],
        [rel("a", "p", "Depends on::Used by"), rel("s", "a")],
    )
    drawn = subprocess.run(
        ["dot", "-Tjson"], input=render_dot(network).encode(), capture_output=True, check=True, timeout=30
    )
    styles = {edge["label"]: edge.get("style", "solid") for edge in json.loads(drawn.stdout)["edges"]}
    assert styles == {"Depends on": "dashed", "Connects to": "solid"}
