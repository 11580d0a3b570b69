"""Classification: the rules table decides, with evidence a person can read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midprobe.capabilities.errors import ConfigError
from midprobe.probes.classify import Classifier, NmapOsClass, Observations, default_classifier
from midprobe.probes.nmap.cmdb import OS_FAMILY_CMDB_CLASSES

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
        ("SunOS", "cmdb_ci_solaris_server"),
        ("FreeBSD", "cmdb_ci_unix_server"),
        ("Minix", "cmdb_ci_unix_server"),
        # The first word must be the kernel name itself, as SSHClassify's table had it.
        ("Linux-libre", "cmdb_ci_unix_server"),
        ("GNU/Linux", "cmdb_ci_unix_server"),
    ],
)
def test_first_word_of_uname(first_word: str, expected: str) -> None:
    assert classify(uname=f"{first_word} host 1.0")[0] == expected
    assert classify(uname=first_word)[0] == expected


def test_an_ssh_login_without_uname_is_a_unix_host() -> None:
    ci_class, confidence, evidence = classify(logged_in=frozenset({"ssh"}))
    assert ci_class == "cmdb_ci_unix_server"
    assert confidence == pytest.approx(0.3)
    assert evidence == ("logged in over SSH, but `uname -a` answered nothing: a UNIX-like host",)
    assert classify(logged_in=frozenset({"ssh"}), uname="  \n")[0] == "cmdb_ci_unix_server"


def test_uname_keeps_the_unix_fallbacks_from_voting() -> None:
    # A Linux host with a plain OpenSSH banner: only the banner and the port vote for UNIX.
    result = default_classifier().classify(
        Observations(
            "198.18.0.10",
            open_tcp_ports=frozenset({22}),
            banners={22: "SSH-2.0-OpenSSH_9.6"},
            uname="Linux web1 6.1.0 x86_64",
            logged_in=frozenset({"ssh"}),
        )
    )
    assert result.ci_class == "cmdb_ci_linux_server"
    assert result.scores == {"cmdb_ci_linux_server": 1.0, "cmdb_ci_unix_server": 0.5}


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
    # "starts with" (a trailing dot) takes the OID itself and everything under it, not a sibling.
    table = Classifier.from_toml(
        '[[rule]]\nclass = "cmdb_ci_ip_switch"\nweight = 1\nwhen.sys_object_id = ["1.3.6.1.4.1.9."]\n'
    )
    for oid, expected in (("1.3.6.1.4.1.9", True), (".1.3.6.1.4.1.9.1.1", True), (".1.3.6.1.4.1.99", False)):
        verdict = table.classify(Observations("198.18.0.10", sys_object_id=oid))
        assert (verdict.ci_class is not None) == expected, oid


def test_snmp_capabilities_and_login_vote_in_their_order() -> None:
    def seen(*capabilities: str) -> str | None:
        return classify(
            sys_object_id=".1.3.6.1.4.1.99999.1",
            snmp_capabilities=dict.fromkeys(capabilities, ""),
            logged_in=frozenset({"snmp"}),
        )[0]

    assert seen("routing", "switching", "printing") == "cmdb_ci_printer"
    assert seen("routing", "switching") == "cmdb_ci_ip_switch"
    assert seen("routing") == "cmdb_ci_ip_router"
    assert seen() == "cmdb_ci_netgear"
    # Without a login the unknown OID says nothing (the credential-less SNMP tap).
    assert classify(sys_object_id=".1.3.6.1.4.1.99999.1")[0] is None


def test_vendor_is_named_by_the_heaviest_rule_that_names_one() -> None:
    result = default_classifier().classify(
        Observations(
            "198.18.0.10",
            sys_object_id=".1.3.6.1.4.1.9.12.3.1.3.1",
            snmp_capabilities={"routing": "ipForwarding = 1 (forwarding)"},
        )
    )
    assert (result.ci_class, result.vendor) == ("cmdb_ci_ip_router", "Cisco")
    assert result.evidence == ("SNMP shows it routes: routing (ipForwarding = 1 (forwarding))",)
    assert default_classifier().classify(Observations("198.18.0.10", uname="Linux a 6.1")).vendor is None


def test_unless_keeps_a_rule_from_voting() -> None:
    table = Classifier.from_toml(
        """
[[rule]]
class = "cmdb_ci_ip_router"
weight = 1
vendor = "Juniper"
when.sys_object_id = [".1.3.6.1.4.1.2636."]
unless.sys_descr = "(?i)EX[0-9]"
unless.open_tcp_port = [9100]
"""
    )

    def verdict(**seen: object) -> str | None:
        observed = Observations("198.18.0.10", sys_object_id=".1.3.6.1.4.1.2636.1.1.1.2.31", **seen)  # type: ignore[arg-type]
        return table.classify(observed).ci_class

    assert verdict() == "cmdb_ci_ip_router"
    assert verdict(sys_descr="mx480 router") == "cmdb_ci_ip_router"
    assert verdict(sys_descr="ex4200-48t") is None
    assert verdict(open_tcp_ports=frozenset({9100})) is None


@pytest.mark.parametrize("family", sorted(OS_FAMILY_CMDB_CLASSES))
def test_the_table_agrees_with_the_nmap_host_scan_on_computers(family: str) -> None:
    # probes/nmap/cmdb.py keeps ServiceNow's own mapping for the host scan; for a general-purpose
    # machine of a family it names, the shared table must come to the same class.
    os_class = NmapOsClass(family, "general purpose", "", 100)
    verdict = default_classifier().classify(Observations("198.18.0.10", nmap_os_classes=(os_class,)))
    assert verdict.ci_class == OS_FAMILY_CMDB_CLASSES[family]


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
        ("[[rule]]\nclass='cmdb_ci_x'\nwieght=1\nwhen.open_tcp_port=[1]\n", r"unknown key\(s\) \['wieght'\]"),
        (
            "[[rule]]\nclass='cmdb_ci_x'\nweight=1\nwhen.open_tcp_port=[1]\nunless={}\n",
            "unless: must be a table",
        ),
        (
            "[[rule]]\nclass='cmdb_ci_x'\nweight=1\nwhen.open_tcp_port=[1]\nunless.colour='red'\n",
            "unknown condition",
        ),
        ("[[rule]]\nclass='cmdb_ci_x'\nweight=1\nwhen.open_tcp_port=[1]\nunless.uname='('\n", "unless.uname"),
        (
            "[[rule]]\nclass='cmdb_ci_x'\nweight=1\nwhen.open_tcp_port=[70000]\n",
            "when.open_tcp_port: must list TCP ports",
        ),
        ("[[rule]]\nclass='cmdb_ci_x'\nweight=1\nwhen.open_tcp_port=22\n", "must be a non-empty list"),
        ("[[rule]]\nclass='cmdb_ci_x'\nweight=1\nwhen.sys_object_id=['1.3.x']\n", "must list numeric OIDs"),
        ("[[rule]]\nclass='cmdb_ci_x'\nweight=1\nwhen.snmp_capability=['']\n", "must list non-empty strings"),
        ("[[rule]]\nclass='cmdb_ci_x'\nweight=1\nwhen.uname=['Linux']\n", "must be a regular expression"),
        (
            "[[rule]]\nclass='cmdb_ci_x'\nweight=1\nwhen.uname='x'\nvendor=''\n",
            "vendor: must be a non-empty string",
        ),
    ],
)
def test_bad_rules_tables_are_refused_with_the_entry_named(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Classifier.from_toml(table, source="my-rules.toml")
    assert "\n" not in str(caught.value)
    if message != "not valid TOML":
        assert str(caught.value).startswith("my-rules.toml: rule[1]: ")


def test_the_shipped_table_passes_every_check_its_loading_skips() -> None:
    """``default_classifier`` leaves the shipped patterns to compile when first searched; here they
    are all compiled, as any other table's are when it loads."""
    from importlib import resources

    text = resources.files("midprobe.probes.classify").joinpath("rules.toml").read_text(encoding="utf-8")
    checked = Classifier.from_toml(text, source="rules.toml")
    assert checked.rules == default_classifier().rules


def test_a_bad_pattern_is_left_for_its_first_search_only_when_asked() -> None:
    table = "[[rule]]\nclass='cmdb_ci_x'\nweight=1\nwhen.banner='('\n"
    with pytest.raises(ConfigError, match="bad regular expression"):
        Classifier.from_toml(table)
    assert len(Classifier.from_toml(table, check_patterns=False).rules) == 1


def test_the_shipped_table_documents_every_condition_it_knows() -> None:
    from importlib import resources

    from midprobe.probes.classify.engine import CONDITIONS

    text = resources.files("midprobe.probes.classify").joinpath("rules.toml").read_text(encoding="utf-8")
    header = text.split("\n[[rule]]", 1)[0]
    for condition in CONDITIONS:
        assert f"#   {condition} = " in header, condition
    used = {name for rule in default_classifier().rules for name in (*rule.when, *rule.unless)}
    assert used == set(CONDITIONS)


@given(st.frozensets(st.integers(1, 65535), max_size=20))
def test_any_port_set_gives_a_consistent_verdict(ports: frozenset[int]) -> None:
    result = default_classifier().classify(Observations("198.18.0.10", open_tcp_ports=ports))
    assert (result.ci_class is None) == (result.evidence == ())
    assert 0.0 <= result.confidence <= 1.0
    if result.ci_class is not None:
        assert result.scores[result.ci_class] == max(result.scores.values())
