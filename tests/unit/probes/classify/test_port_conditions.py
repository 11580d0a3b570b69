"""The two port conditions of a classification rule: any of the ports, or every one of them."""

from __future__ import annotations

from midprobe.probes.classify import Classifier, Observations

RULES = """
[[rule]]
class = "cmdb_ci_win_server"
weight = 0.5
when.all_open_tcp_ports = [139, 445]
evidence = "SMB ports 139 and 445 open"

[[rule]]
class = "cmdb_ci_printer"
weight = 0.5
when.open_tcp_port = [515, 9100]
evidence = "a printing port open"
"""


def _classes(*ports: int) -> str | None:
    classifier = Classifier.from_toml(RULES)
    return classifier.classify(Observations("198.18.0.10", open_tcp_ports=frozenset(ports))).ci_class


def test_all_open_tcp_ports_needs_every_port() -> None:
    assert _classes(139, 445, 22) == "cmdb_ci_win_server"
    assert _classes(139) is None
    assert _classes(445, 22) is None


def test_open_tcp_port_needs_any_one_port() -> None:
    assert _classes(9100) == "cmdb_ci_printer"
    assert _classes(515, 22) == "cmdb_ci_printer"
    assert _classes(22) is None
