"""Classification: the rules table decides, with evidence a person can read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import ConfigError
from midprobe.probes.classify import Classifier, NmapOsClass, Observations, default_classifier

DEBIAN_SSH = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"


def classify(**seen: object) -> tuple[str | None, float, tuple[str, ...]]:
    result = default_classifier().classify(Observations(address="198.18.0.10", **seen))  # type: ignore[arg-type]
    return result.ci_class, result.confidence, result.evidence


def test_nothing_observed_is_unknown() -> None:
    assert classify() == (None, 0.0, ())


def test_uname_decides_over_everything_credential_less() -> None:
    ci_class, confidence, evidence = classify(
        uname="SunOS sol1 5.11 11.4.0.15.0 i86pc i386 i86pc",
        open_tcp_ports=frozenset({22, 135}),
    )
    assert ci_class == "cmdb_ci_solaris_server"
    assert confidence == 1.0
    assert evidence[0] == "uname says SunOS"


@pytest.mark.parametrize(
    ("first_word", "expected"),
    [
        ("Linux", "cmdb_ci_linux_server"),
        ("AIX", "cmdb_ci_aix_server"),
        ("HP-UX", "cmdb_ci_hpux_server"),
        ("Darwin", "cmdb_ci_osx_server"),
        ("FreeBSD", "cmdb_ci_unix_server"),
    ],
)
def test_first_word_of_uname(first_word: str, expected: str) -> None:
    assert classify(uname=f"{first_word} host 1.0")[0] == expected


def test_linux_server_from_ports_and_debian_ssh_banner() -> None:
    ci_class, confidence, evidence = classify(open_tcp_ports=frozenset({22, 80}), banners={22: DEBIAN_SSH})
    assert ci_class == "cmdb_ci_linux_server"
    assert 0 < confidence < 1
    assert any("Debian" in reason for reason in evidence)


def test_plain_openssh_without_distribution_is_a_unix_server() -> None:
    assert (
        classify(open_tcp_ports=frozenset({22}), banners={22: "SSH-2.0-OpenSSH_9.6"})[0]
        == "cmdb_ci_unix_server"
    )


def test_windows_ports() -> None:
    ci_class, _, evidence = classify(open_tcp_ports=frozenset({135, 139, 445, 3389}))
    assert ci_class == "cmdb_ci_win_server"
    assert "Windows management port 135 open" in evidence


def test_printer_by_port_alone_and_by_snmp() -> None:
    assert classify(open_tcp_ports=frozenset({9100}))[0] == "cmdb_ci_printer"
    ci_class, confidence, evidence = classify(
        open_tcp_ports=frozenset({80, 9100}),
        sys_object_id="1.3.6.1.4.1.11.2.3.9.1",
        sys_descr="HP ETHERNET MULTI-ENVIRONMENT",
    )
    assert ci_class == "cmdb_ci_printer"
    assert confidence == 1.0
    assert any("1.3.6.1.4.1.11.2.3.9.1" in reason for reason in evidence)


def test_cisco_switch_and_router_are_told_apart_by_sysdescr() -> None:
    switch = classify(
        sys_object_id=".1.3.6.1.4.1.9.1.1208",
        sys_descr="Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version 15.2(7)E2",
    )
    router = classify(
        sys_object_id=".1.3.6.1.4.1.9.1.2068",
        sys_descr="Cisco IOS Software [Amsterdam], ISR Software (X86_64_LINUX_IOSD-UNIVERSALK9-M), IOS-XE 17.3",
    )
    assert switch[0] == "cmdb_ci_ip_switch"
    assert router[0] == "cmdb_ci_ip_router"


def test_sys_object_id_is_exact_unless_the_pattern_ends_with_a_dot() -> None:
    # ".1.3.6.1.4.1.8072.3.2.10" is an "is" entry: a longer OID does not match it.
    assert classify(sys_object_id=".1.3.6.1.4.1.8072.3.2.10")[0] == "cmdb_ci_linux_server"
    assert classify(sys_object_id=".1.3.6.1.4.1.8072.3.2.101")[0] is None


def test_nmap_votes_are_scaled_by_accuracy() -> None:
    sure = default_classifier().classify(
        Observations("198.18.0.10", nmap_os_classes=(NmapOsClass("Linux", "general purpose", "Linux", 100),))
    )
    unsure = default_classifier().classify(
        Observations("198.18.0.10", nmap_os_classes=(NmapOsClass("Linux", "general purpose", "Linux", 50),))
    )
    assert sure.ci_class == unsure.ci_class == "cmdb_ci_linux_server"
    assert sure.confidence == pytest.approx(0.8)
    assert unsure.confidence == pytest.approx(0.4)


def test_nmap_device_type_printer() -> None:
    seen = Observations("198.18.0.10", nmap_os_classes=(NmapOsClass("embedded", "printer", "HP", 95),))
    assert default_classifier().classify(seen).ci_class == "cmdb_ci_printer"


def test_ties_go_to_the_earlier_rule_in_the_table() -> None:
    table = """
[[rule]]
class = "cmdb_ci_win_server"
weight = 0.5
when.open_tcp_port = [135]
[[rule]]
class = "cmdb_ci_linux_server"
weight = 0.5
when.open_tcp_port = [22]
"""
    result = Classifier.from_toml(table).classify(
        Observations("198.18.0.10", open_tcp_ports=frozenset({22, 135}))
    )
    assert result.ci_class == "cmdb_ci_win_server"
    assert result.scores == {"cmdb_ci_win_server": 0.5, "cmdb_ci_linux_server": 0.5}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[[rule]]\nclass='cmdb_ci_x'\nweight=1\n", "needs at least one condition"),
        ("[[rule]]\nclass='cmdb_ci_x'\nweight=1\nwhen.colour='red'\n", "unknown condition"),
        ("[[rule]]\nclass='cmdb_ci_x'\nweight=0\nwhen.open_tcp_port=[1]\n", "weight"),
        ("[[rule]]\nclass='server'\nweight=1\nwhen.open_tcp_port=[1]\n", "class"),
        ("[[rule]]\nclass='cmdb_ci_x'\nweight=1\nwhen.banner='('\n", "bad regular expression"),
        ("[[rule", "not valid TOML"),
    ],
)
def test_bad_rules_tables_are_refused_with_the_entry_named(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Classifier.from_toml(table, source="my-rules.toml")


@given(st.frozensets(st.integers(1, 65535), max_size=20))
def test_any_port_set_gives_a_consistent_verdict(ports: frozenset[int]) -> None:
    result = default_classifier().classify(Observations("198.18.0.10", open_tcp_ports=ports))
    assert (result.ci_class is None) == (result.evidence == ())
    assert 0.0 <= result.confidence <= 1.0
    if result.ci_class is not None:
        assert result.scores[result.ci_class] == max(result.scores.values())
