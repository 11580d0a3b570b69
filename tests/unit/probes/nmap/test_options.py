"""The Nmap option allow-list: typed parameters become an exact argv; nothing else gets through."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.nmap import (
    application_scan,
    discovery,
    host_scan,
    options,
    os_scan,
    script_scan,
    service_scan,
)
from midprobe.probes.nmap.common import NmapProbe
from midprobe.probes.nmap.options import (
    APPLICATION_SCAN_SCRIPTS,
    SAFE_NSE_SCRIPTS,
    NmapInvocation,
    parse_ports,
    parse_targets,
)

ALL_PROBES: tuple[NmapProbe, ...] = (  # type: ignore[type-arg]
    host_scan.PROBE,
    application_scan.PROBE,
    discovery.PROBE,
    service_scan.PROBE,
    os_scan.PROBE,
    script_scan.PROBE,
)
#: The least each probe needs besides its source.
MINIMAL_PARAMETERS: dict[str, dict[str, str]] = {
    "NmapApplicationScan": {"ports": "22"},
    "NmapScript": {"scripts": "banner"},
}
SCRIPT_DB = Path("/usr/share/nmap/scripts/script.db")


def invocations(probe: NmapProbe, source: str, parameters: Mapping[str, str]) -> list[NmapInvocation]:  # type: ignore[type-arg]
    params = probe.parse_params(source, parameters)
    return [plan(60.0) for plan in probe.plan(params)]


def argv(probe: NmapProbe, source: str, parameters: Mapping[str, str]) -> tuple[str, ...]:  # type: ignore[type-arg]
    (invocation,) = invocations(probe, source, parameters)
    return invocation.argv()


def refused(probe: NmapProbe, source: str, parameters: Mapping[str, str]) -> ProbeParameterError:  # type: ignore[type-arg]
    with pytest.raises(ProbeParameterError) as caught:
        invocations(probe, source, parameters)
    assert "\n" not in str(caught.value)
    return caught.value


def test_host_scan_is_exactly_the_servicenow_option_set() -> None:
    line = argv(host_scan.PROBE, "198.18.0.10", {"ports": "22,80,443"})
    assert line == (
        "nmap",
        "-PS",
        "-PA",
        "-O",
        "-p",
        "22,80,443",
        "-T4",
        "-v",
        "-Pn",
        "-r",
        "--reason",
        "--system-dns",
        "--host-timeout",
        "54000ms",
        "-oX",
        "-",
        "198.18.0.10",
    )


def test_host_scan_defaults_to_the_classification_ports() -> None:
    line = argv(host_scan.PROBE, "198.18.0.10", {})
    ports = line[line.index("-p") + 1]
    assert ports == options.DEFAULT_PORTS
    assert {"22", "135", "161", "5985"} <= set(ports.split(","))


def test_application_scan_runs_once_per_port_with_the_safe_scripts_for_it() -> None:
    runs = invocations(application_scan.PROBE, "198.18.0.10", {"ports": "22,80,9999"})
    assert [run.argv()[:4] for run in runs] == [("nmap", "-sS", "-sV", "-p")] * 3
    lines = {run.argv()[4]: run.argv() for run in runs}
    assert "--script=ssh-hostkey" in lines["22"]
    assert "--script=http-title" in lines["80"]
    assert not any(token.startswith("--script") for token in lines["9999"])  # no scripts for unknown ports
    assert all("-n" in line and "-sS" in line and "-sV" in line for line in lines.values())


def test_application_scan_scripts_named_in_the_request_apply_to_every_port() -> None:
    runs = invocations(application_scan.PROBE, "198.18.0.10", {"ports": "22,80", "scripts": "banner"})
    assert all("--script=banner" in run.argv() for run in runs)


def test_application_scan_needs_ports() -> None:
    assert refused(application_scan.PROBE, "198.18.0.10", {}).parameter == "ports"
    assert refused(application_scan.PROBE, "198.18.0.10", {"ports": "1-100"}).parameter == "ports"


def test_discovery_lists_hosts_down_and_skips_dns_by_default() -> None:
    line = argv(discovery.PROBE, "198.18.0.0/28", {})
    assert line[:2] == ("nmap", "-sn")
    assert "-v" in line
    assert "-n" in line
    assert line[-1] == "198.18.0.0/28"
    pinged = argv(discovery.PROBE, "198.18.0.0/28", {"ping_ports": "22,80", "resolve_names": "true"})
    assert {"-PS22,80", "-PA22,80", "-PE", "--system-dns"} <= set(pinged)


def test_service_os_and_script_scans() -> None:
    line = argv(
        service_scan.PROBE,
        "198.18.0.10",
        {"ports": "22", "scan_technique": "connect", "version_intensity": "2", "scripts": "banner,ssl-cert"},
    )
    assert line[1:5] == ("-sT", "-sV", "--version-intensity", "2")
    assert "--script=banner,ssl-cert" in line
    line = argv(os_scan.PROBE, "198.18.0.10", {"osscan_guess": "yes", "max_os_tries": "2", "timing": "3"})
    assert {"-O", "--osscan-guess", "-T3"} <= set(line)
    assert line[line.index("--max-os-tries") + 1] == "2"
    line = argv(script_scan.PROBE, "198.18.0.10", {"ports": "80", "scripts": "http-title"})
    assert "--script=http-title" in line
    assert "-sV" not in line
    assert refused(script_scan.PROBE, "198.18.0.10", {"ports": "80"}).parameter == "scripts"


def test_targets_ranges_networks_and_ipv6() -> None:
    assert parse_targets("198.18.0.10-13").nmap_arguments() == ("198.18.0.10/31", "198.18.0.12/31")
    assert parse_targets("198.18.0.10-198.18.0.10, 198.18.1.0/30").nmap_arguments() == (
        "198.18.0.10",
        "198.18.1.0/30",
    )
    assert parse_targets("198.18.0.17/28").nmap_arguments() == ("198.18.0.16/28",)
    six = argv(discovery.PROBE, "2001:db8::1", {})
    assert "-6" in six
    assert six[-1] == "2001:db8::1"


@pytest.mark.parametrize(
    "parameters",
    [
        {"ports": "22 --script=evil"},
        {"ports": "22;reboot"},
        {"ports": "22,80 -oN /etc/passwd"},
        {"ports": "-"},
        {"ports": "0"},
        {"ports": "65536"},
        {"ports": "80-22"},
        {"ports": "T:22"},
        {"-oN": "/etc/passwd"},
        {"--script": "vuln"},
        {"arguments": "-sV --script=evil"},
        {"options": "-oN /etc/passwd"},
        {"extra_args": "-iL /etc/shadow"},
        {"timeout_ms": "60000 --script=evil"},
        {"timeout_ms": "0"},
        {"timeout_ms": "-1"},
        {"timeout_ms": "99999999999"},
    ],
)
def test_host_scan_refuses_injection(parameters: dict[str, str]) -> None:
    error = refused(host_scan.PROBE, "198.18.0.10", parameters)
    assert error.parameter == next(iter(parameters))
    assert next(iter(parameters)) in str(error)


@pytest.mark.parametrize(
    "scripts",
    [
        "-oN /etc/passwd",
        "ssl-enum-ciphers",  # discovery + intrusive
        "http-vuln-cve2017-5638",
        "safe",
        "default or safe",
        "http-*",
        "/tmp/evil.nse",
        "http-title --script-args=x",
        "http-title,,ssh-brute",
        "../../tmp/evil",
    ],
)
def test_scripts_outside_the_allow_list_are_refused(scripts: str) -> None:
    for probe in (script_scan.PROBE, service_scan.PROBE, application_scan.PROBE):
        error = refused(probe, "198.18.0.10", {"ports": "80", "scripts": scripts})
        assert error.parameter == "scripts"


@pytest.mark.parametrize(
    "source",
    [
        "198.18.0.10 -oN /etc/passwd",
        "198.18.0.10;reboot",
        "$(reboot)",
        "-iL /etc/passwd",
        "lab.example.test",
        "198.18.0.999",
        "198.18.0.20-10",
        "fe80::1%eth0",
        "10.0.0.0/8",
        "198.18.0.10,2001:db8::1",
        "",
    ],
)
def test_bad_sources_are_refused(source: str) -> None:
    for probe in ALL_PROBES:
        assert refused(probe, source, MINIMAL_PARAMETERS.get(probe.topic, {})).parameter == "source"


@pytest.mark.parametrize(
    ("probe", "parameters", "name"),
    [
        (discovery.PROBE, {"timing": "4 -d"}, "timing"),
        (discovery.PROBE, {"timing": "6"}, "timing"),
        (discovery.PROBE, {"resolve_names": "maybe"}, "resolve_names"),
        (discovery.PROBE, {"ping_ports": "80 -PU"}, "ping_ports"),
        (service_scan.PROBE, {"scan_technique": "udp"}, "scan_technique"),
        (service_scan.PROBE, {"scan_technique": "-sU"}, "scan_technique"),
        (service_scan.PROBE, {"version_intensity": "10"}, "version_intensity"),
        (os_scan.PROBE, {"max_os_tries": "9"}, "max_os_tries"),
        (os_scan.PROBE, {"osscan_guess": "--osscan-limit"}, "osscan_guess"),
        (host_scan.PROBE, {"scripts": "banner"}, "scripts"),  # the host scan runs no scripts at all
    ],
)
def test_values_that_do_not_convert_are_refused_by_name(
    probe: NmapProbe,  # type: ignore[type-arg]
    parameters: dict[str, str],
    name: str,
) -> None:
    assert refused(probe, "198.18.0.10", parameters).parameter == name


def test_ecc_envelope_fields_are_ignored_not_refused() -> None:
    envelope = {"topic": "NmapHostScan", "sys_id": "0" * 32, "agent": "mid.server.lab1", "source": "x"}
    assert argv(host_scan.PROBE, "198.18.0.10", {**envelope, "ports": "22"})[-1] == "198.18.0.10"


def test_ports_round_trip() -> None:
    ports = parse_ports(" 22, 80 ,8000-8002")
    assert str(ports) == "22,80,8000-8002"
    assert list(ports) == [22, 80, 8000, 8001, 8002]
    assert len(ports) == 5


#: What a token of any argv may look like: a constant option, a number, a port list, a target, a script list.
SAFE_TOKEN = re.compile(
    r"^(nmap|-[A-Za-z0-9]{1,3}|--[a-z-]+|-P[SA][0-9,-]+|-T[0-5]|\d+|\d+ms|[0-9,-]+|[0-9a-f.:/]+"
    r"|--script=[a-z0-9,-]+)$"
)


@settings(max_examples=300, deadline=None)
@given(
    probe_index=st.integers(0, len(ALL_PROBES) - 1),
    source=st.one_of(st.sampled_from(["198.18.0.10", "198.18.0.0/30", "198.18.0.1-3"]), st.text(max_size=30)),
    parameters=st.dictionaries(
        st.sampled_from(
            [
                "ports",
                "scripts",
                "timing",
                "timeout_ms",
                "resolve_names",
                "ping_ports",
                "scan_technique",
                "version_intensity",
                "osscan_guess",
                "osscan_limit",
                "max_os_tries",
                "-oN",
                "arguments",
            ]
        ),
        st.one_of(
            st.text(max_size=30),
            st.sampled_from(
                ["22", "22,80", "1-3", "4", "true", "banner", "http-title,ssl-cert", "syn", "60000"]
            ),
        ),
        max_size=5,
    ),
)
def test_any_request_is_refused_or_becomes_only_allow_listed_tokens(
    probe_index: int, source: str, parameters: dict[str, str]
) -> None:
    probe = ALL_PROBES[probe_index]
    try:
        runs = invocations(probe, source, parameters)
    except ProbeParameterError as error:
        refused_parameter = error.parameter
    else:
        refused_parameter = None
    if refused_parameter is not None:  # refused, naming the bad parameter (or a required one missing)
        assert refused_parameter in {"source", "ports", "scripts", *parameters}
        return
    for run in runs:
        for token in run.argv():
            assert SAFE_TOKEN.match(token), token
            if token.startswith("--script="):
                assert set(token.removeprefix("--script=").split(",")) <= SAFE_NSE_SCRIPTS


def test_every_allow_listed_script_is_in_nmaps_safe_category() -> None:
    if not SCRIPT_DB.exists():
        pytest.skip("nmap's script.db is not installed")
    categories: dict[str, str] = {}
    for line in SCRIPT_DB.read_text().splitlines():
        found = re.search(r'filename = "([^"]+)\.nse", categories = \{([^}]*)\}', line)
        if found:
            categories[found[1]] = found[2]
    for name in sorted(SAFE_NSE_SCRIPTS):
        assert name in categories, f"{name} is not an installed NSE script"
        assert '"safe"' in categories[name], f"{name} is not in the safe category: {categories[name]}"
        for forbidden in ("intrusive", "vuln", "brute", "exploit", "dos", "malware"):
            assert f'"{forbidden}"' not in categories[name], name
    for port, scripts in APPLICATION_SCAN_SCRIPTS.items():
        assert set(scripts) <= SAFE_NSE_SCRIPTS, port
