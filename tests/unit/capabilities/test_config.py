"""The capabilities TOML: the issue's exact shape loads, and every error names the file, entry and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from midprobe.capabilities.config import load_config, parse_config
from midprobe.capabilities.errors import ConfigError, NotAllowedByCapability, TargetSpecError
from midprobe.capabilities.ipranges import IPRange
from midprobe.capabilities.model import Capability, CapabilityDefinition, MidServer, MidStatus
from midprobe.capabilities.selection import SelectionPolicy, SelectionRequest, Step
from midprobe.capabilities.value_tests import ValueTestRegistry

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "capabilities"

HEADER = """
[[capability]]
name = "SSH"
[[capability]]
name = "Resolve DNS"
value_test = "resolve_dns"
"""

GOOD_MID = """
[[mid_server]]
name = "mid-first"
status = "Up"
validated = true
"""


def test_the_issue_shape_loads_as_written() -> None:
    config = load_config(FIXTURES / "issue-shape.toml")
    assert config.definitions == (
        CapabilityDefinition("SSH"),
        CapabilityDefinition("Resolve DNS", "resolve_dns"),
    )
    assert config.mid_servers == (
        MidServer(
            name="mid-sandiego",
            status=MidStatus.UP,
            validated=True,
            applications=("Discovery",),
            ip_ranges=(IPRange.parse("10.0.0.0/8"), IPRange.parse("192.168.1.10-192.168.1.50")),
            excluded_ip_ranges=(IPRange.parse("10.9.0.0/16"),),
            capabilities=(
                Capability("SSH"),
                Capability("Resolve DNS", "sandiego.service-now.com"),
                Capability("ALL"),
            ),
            nmap_installed=False,
        ),
    )
    assert config.policy == SelectionPolicy()


def test_the_issue_shape_selects_by_its_rules() -> None:
    config = load_config(FIXTURES / "issue-shape.toml")
    selector = config.selector()
    request = SelectionRequest.build(
        ["Resolve DNS=lnxlab01.sandiego.service-now.com"], application="Discovery", ip="10.1.2.3"
    )
    assert selector.select(config.mid_servers, request).names == ("mid-sandiego",)
    excluded = SelectionRequest.build(["SSH"], application="Discovery", ip="10.9.0.1")
    assert selector.select(config.mid_servers, excluded).rejected == {
        "mid-sandiego": "10.9.0.1 is in its excluded IP range 10.9.0.0/16"
    }
    elsewhere = SelectionRequest.build(["Resolve DNS=dbsrv101.sanjose.service-now.com"])
    assert selector.select(config.mid_servers, elsewhere).step is Step.ALL  # its ALL capability catches it


def test_the_worked_example_loads_with_nmap_and_the_cloud_management_values() -> None:
    config = load_config(FIXTURES / "example.toml")
    corp = config.mid_server("mid-corp")
    assert "Nmap" in corp.capability_names()
    assert str(config.mid_server("mid-uswest").capabilities[0]) == "Cloud Management:us-west"


def test_all_needs_no_capability_entry_and_redundant_builtin_entries_are_harmless() -> None:
    text = '[[capability]]\nname = "ALL"\n[[mid_server]]\nname = "m"\nstatus = "Up"\ncapabilities = [{ name = "ALL" }]\n'
    config = parse_config(text)
    assert config.definitions == ()
    assert config.mid_servers[0].capabilities == (Capability("ALL"),)


def test_optional_keys_default_to_servicenow_defaults() -> None:
    config = parse_config('[[mid_server]]\nname = "m"\nstatus = "up"\n')
    assert config.mid_servers == (MidServer("m", MidStatus.UP),)
    assert not config.mid_servers[0].validated
    assert not config.mid_servers[0].nmap_installed


def test_an_empty_file_is_an_empty_config() -> None:
    config = parse_config("", source="empty.toml")
    assert (config.definitions, config.mid_servers) == ((), ())


def test_the_selection_table_sets_the_fallback_policy() -> None:
    text = GOOD_MID + '[selection]\ndefault_mid_server = "mid-first"\ninclude_upgrading_and_paused = true\n'
    assert parse_config(text).policy == SelectionPolicy("mid-first", True)


APPLICATIONS = (
    HEADER
    + GOOD_MID
    + '[[mid_server]]\nname = "mid-second"\nstatus = "Up"\nvalidated = true\n'
    + '[[application]]\nname = "Discovery"\ndefault_mid_server = "mid-second"\n'
    + '[[application]]\nname = "Service Mapping"\naccepts_degraded = true\n'
    + '[[application]]\nname = "ALL"\ndefault_mid_server = "mid-first"\n'
)


def test_each_application_names_its_default_mid_and_all_names_the_fallback() -> None:
    config = parse_config(APPLICATIONS)
    selector = config.selector()
    mids = config.mid_servers  # neither has SSH: the default tier decides
    chosen = {
        application: selector.select(mids, SelectionRequest.build(["SSH"], application=application)).names
        for application in ("Discovery", "Service Mapping", "Orchestration")
    }
    assert chosen == {
        "Discovery": ("mid-second",),
        "Service Mapping": ("mid-first",),
        "Orchestration": ("mid-first",),
    }
    assert config.policy.application("Service Mapping").takes_degraded
    assert config.policy.application("Discovery").takes_degraded  # the built-in rule, not configured


def test_other_statuses_in_the_selection_table_open_the_whole_ladder() -> None:
    text = (
        '[[mid_server]]\nname = "mid-down"\nstatus = "Down"\nvalidated = true\n'
        + "[selection]\ninclude_other_statuses = true\n"
    )
    config = parse_config(HEADER + text)
    assert config.selector().select(config.mid_servers, SelectionRequest.build()).names == ("mid-down",)


def test_a_user_registered_value_test_can_be_named_in_the_file() -> None:
    registry = ValueTestRegistry()
    registry.register("site", lambda mid, requested: requested.startswith(mid))
    config = parse_config('[[capability]]\nname = "Site"\nvalue_test = "site"\n', value_tests=registry)
    assert config.definitions == (CapabilityDefinition("Site", "site"),)


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        (
            GOOD_MID
            + '[[mid_server]]\nname = "mid-sandiego"\nstatus = "Up"\ncapabilities = [{ name = "Nmap" }]\n',
            NotAllowedByCapability,
            "cfg.toml: mid_server[2] \"mid-sandiego\": capabilities[1]: 'Nmap' cannot be assigned by hand: "
            "the Nmap capability is added automatically when nmap is installed (set nmap_installed = true) "
            "and removed when it is not",
        ),
        (
            HEADER
            + '[[mid_server]]\nname = "m2"\nstatus = "Up"\ncapabilities = [{ name = "SSH" }, { name = "nmap" }]\n',
            NotAllowedByCapability,
            "cfg.toml: mid_server[1] \"m2\": capabilities[2]: 'nmap' cannot be assigned by hand",
        ),
        (
            HEADER
            + GOOD_MID
            + '[[mid_server]]\nname = "m2"\nstatus = "Up"\ncapabilities = [{ name = "WMI" }]\n',
            ConfigError,
            "cfg.toml: mid_server[2] \"m2\": capabilities[1].name: capability 'WMI' is not defined; "
            "add a [[capability]] entry for it (defined: ALL, Resolve DNS, SSH)",
        ),
        (
            '[[mid_server]]\nname = "m"\nstatus = "Up"\ncapabilities = [{ name = "ssh" }]\n' + HEADER,
            ConfigError,
            "cfg.toml: mid_server[1] \"m\": capabilities[1].name: capability 'ssh' is not defined (did you mean 'SSH'?)",
        ),
        (
            '[[mid_server]]\nname = "m"\nstatus = "Sleeping"\n',
            ConfigError,
            "cfg.toml: mid_server[1] \"m\": status: unknown MID server status 'Sleeping' (one of: Up, Down, Paused,",
        ),
        ('[[mid_server]]\nname = "m"\n', ConfigError, 'cfg.toml: mid_server[1] "m": status: is required'),
        ('[[mid_server]]\nstatus = "Up"\n', ConfigError, "cfg.toml: mid_server[1]: name: is required"),
        (
            '[[mid_server]]\nname = 7\nstatus = "Up"\n',
            ConfigError,
            "cfg.toml: mid_server[1]: name: must be a string, got an integer",
        ),
        (
            '[[mid_server]]\nname = "m"\nstatus = "Up"\nvalidated = "yes"\n',
            ConfigError,
            'cfg.toml: mid_server[1] "m": validated: must be true or false, got a string',
        ),
        (
            '[[mid_server]]\nname = "m"\nstatus = "Up"\nip_ranges = ["10.0.0.0/8", "10.0.0.1/8"]\n',
            TargetSpecError,
            'cfg.toml: mid_server[1] "m": ip_ranges[2]: is not an IP range (ALL, an address, a CIDR block or first-last)',
        ),
        (
            '[[mid_server]]\nname = "m"\nstatus = "Up"\nexcluded_ip_ranges = ["10.0.0.9-10.0.0.1"]\n',
            TargetSpecError,
            'cfg.toml: mid_server[1] "m": excluded_ip_ranges[1]: is not an IP range',
        ),
        (
            '[[mid_server]]\nname = "m"\nstatus = "Up"\nip_ranges = "10.0.0.0/8"\n',
            ConfigError,
            'cfg.toml: mid_server[1] "m": ip_ranges: must be a list of strings, got a string',
        ),
        (
            '[[mid_server]]\nname = "m"\nstatus = "Up"\napplications = [""]\n',
            ConfigError,
            'cfg.toml: mid_server[1] "m": applications[1]: application name must be a non-empty string',
        ),
        (
            '[[mid_server]]\nname = "m"\nstatus = "Up"\ncapabilities = ["SSH"]\n',
            ConfigError,
            'cfg.toml: mid_server[1] "m": capabilities[1]: must be an inline table, got a string',
        ),
        (
            HEADER
            + '[[mid_server]]\nname = "m"\nstatus = "Up"\ncapabilities = [{ name = "SSH", valeu = "x" }]\n',
            ConfigError,
            "cfg.toml: mid_server[1] \"m\": capabilities[1].valeu: unknown key (did you mean 'value'?)",
        ),
        (
            HEADER
            + '[[mid_server]]\nname = "m"\nstatus = "Up"\ncapabilities = [{ name = "SSH", value = 5 }]\n',
            ConfigError,
            'cfg.toml: mid_server[1] "m": capabilities[1].value: must be a string, got an integer',
        ),
        (
            '[[mid_server]]\nname = "m"\nstatus = "Up"\nip_range = ["ALL"]\n',
            ConfigError,
            "cfg.toml: mid_server[1] \"m\": ip_range: unknown key (did you mean 'ip_ranges'?)",
        ),
        (
            GOOD_MID + GOOD_MID,
            ConfigError,
            "cfg.toml: mid_server[2] \"mid-first\": name: MID server 'mid-first' is defined twice",
        ),
        (
            HEADER + '[[capability]]\nname = "SSH"\n',
            ConfigError,
            "cfg.toml: capability[3] \"SSH\": name: capability 'SSH' is defined twice",
        ),
        (
            '[[capability]]\nname = "ALL"\n[[capability]]\nname = "ALL"\n',
            ConfigError,
            "cfg.toml: capability[2] \"ALL\": name: capability 'ALL' is defined twice",
        ),
        (
            '[[capability]]\nname = "Site"\nvalue_test = "site_match"\n',
            ConfigError,
            "cfg.toml: capability[1] \"Site\": value_test: no value test named 'site_match' is registered "
            "(registered: resolve_dns)",
        ),
        (
            '[[capability]]\nname = "Nmap"\nvalue_test = "resolve_dns"\n',
            ConfigError,
            'cfg.toml: capability[1] "Nmap": value_test: the built-in capability Nmap cannot have a value test',
        ),
        (
            '[[capability]]\nname = ""\n',
            ConfigError,
            'cfg.toml: capability[1] "": name: capability name must be a non-empty',
        ),
        (
            '[capability]\nname = "SSH"\n',
            ConfigError,
            "cfg.toml: capability: must be a list of tables, written [[capability]]",
        ),
        (
            "mid_servers = []\n",
            ConfigError,
            "cfg.toml: mid_servers: unknown key (did you mean 'mid_server'?)",
        ),
        (
            GOOD_MID + '[selection]\ndefault_mid_server = "mid-frist"\n',
            ConfigError,
            "cfg.toml: selection: default_mid_server: names no [[mid_server]]: 'mid-frist' (did you mean 'mid-first'?)",
        ),
        ("[[mid_server]\n", ConfigError, "cfg.toml: not valid TOML: "),
        (
            GOOD_MID + '[[application]]\nname = "Discovery"\ndefault_mid_server = "mid-frist"\n',
            ConfigError,
            'cfg.toml: application[1] "Discovery": default_mid_server: names no [[mid_server]]: '
            "'mid-frist' (did you mean 'mid-first'?)",
        ),
        (
            '[[application]]\nname = "Discovery"\n[[application]]\nname = "Discovery"\n',
            ConfigError,
            "cfg.toml: application[2] \"Discovery\": name: application 'Discovery' is defined twice",
        ),
        (
            '[[application]]\nname = "ALL"\naccepts_degraded = true\n',
            ConfigError,
            'cfg.toml: application[1] "ALL": accepts_degraded: ALL stands for every application',
        ),
        (
            '[[application]]\nname = "Discovery"\naccepts_degraded = "yes"\n',
            ConfigError,
            'cfg.toml: application[1] "Discovery": accepts_degraded: must be true or false, got a string',
        ),
        (
            GOOD_MID
            + '[[mid_server]]\nname = "mid-second"\nstatus = "Up"\n'
            + '[[application]]\nname = "ALL"\ndefault_mid_server = "mid-second"\n'
            + '[selection]\ndefault_mid_server = "mid-first"\n',
            ConfigError,
            "cfg.toml: selection: default_mid_server: the ALL application's default MID server is also set",
        ),
        (
            '[[application]]\nname = "Discovery"\ndefault_mid = "m"\n',
            ConfigError,
            'cfg.toml: application[1] "Discovery": default_mid: unknown key (did you mean',
        ),
    ],
)
def test_errors_name_the_file_entry_and_field(text: str, error: type[ConfigError], message: str) -> None:
    with pytest.raises(error) as raised:
        parse_config(text, source="cfg.toml")
    assert str(raised.value).startswith(message), str(raised.value)
    assert "\n" not in str(raised.value)
    assert raised.value.source == "cfg.toml"


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=rf"^{missing}: cannot read the file: No such file or directory$"):
        load_config(missing)


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=rf"^{path}: cannot read the file: 'utf-8' codec can't decode"):
        load_config(path)


def test_an_unknown_mid_name_is_named_with_a_suggestion() -> None:
    config = parse_config(GOOD_MID, source="cfg.toml")
    with pytest.raises(
        ConfigError, match=r"^cfg.toml: no MID server named 'mid-frst' \(did you mean 'mid-first'\?\)"
    ):
        config.mid_server("mid-frst")


_MID_M = '[[mid_server]]\nname = "m"\nstatus = "Up"\n'
_PASTED = ('ip_ranges = ["hunter2"]', 'ip_ranges = "hunter2"', '"hunter2" = 1', 'validated = "hunter2"')


@pytest.mark.parametrize("text", [*(_MID_M + line for line in _PASTED), '"hunter2" = 1', "capabilities = 1"])
def test_errors_never_quote_the_value_that_was_written(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, source="cfg.toml")
    assert "hunter2" not in str(raised.value)
    assert str(raised.value).startswith("cfg.toml: ")


def test_a_misspelt_key_is_still_named() -> None:
    with pytest.raises(
        ConfigError, match=r"mid_server\[1\] \"m\": statsu: unknown key \(did you mean 'status'\?\)"
    ):
        parse_config('[[mid_server]]\nname = "m"\nstatus = "Up"\nstatsu = "Up"\n', source="cfg.toml")
