"""Checks ``midprobe scan`` makes before it sends anything: targets, size, DNS servers, credentials."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError, CredentialError, TargetNotAllowed, TargetSpecError
from midprobe.probes.credentials import PROTOCOL_SNMP, PROTOCOL_SSH
from midprobe.probes.safety import TargetPolicy
from midprobe.runner.scan.plan import (
    HUGE_RANGE,
    CredentialSource,
    check_host_names,
    check_size,
    load_credentials,
    name_resolver,
    target_spec,
)

CREDENTIALS = """
[[credential]]
id = "linux-admin"
type = "ssh_password"
user = "admin"
password = "pw-one-two-three"

[[credential]]
id = "ro"
type = "snmp"
community = "not-public-at-all"
"""


def test_target_list_file_with_comments_joins_the_arguments(tmp_path: Path) -> None:
    listing = tmp_path / "targets.txt"
    listing.write_text("# the lab\n198.18.0.10 198.18.0.11  # two hosts\n\n198.18.0.20-22\n")
    spec = target_spec(["198.18.0.1"], ["198.18.0.21"], [str(listing)])
    assert [str(target.address) for target in spec] == [
        "198.18.0.1",
        "198.18.0.10",
        "198.18.0.11",
        "198.18.0.20",
        "198.18.0.22",
    ]


def test_target_list_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("198.18.0.0/30\n"))
    assert target_spec([], [], ["-"]).count() == 4


def test_empty_target_list_is_an_error(tmp_path: Path) -> None:
    listing = tmp_path / "targets.txt"
    listing.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="names no targets"):
        target_spec([], [], [str(listing)])


def test_huge_range_boundary() -> None:
    check_size(HUGE_RANGE, yes=False, rate=None)  # a /16 is fine
    with pytest.raises(ConfigError, match="65,537 addresses"):
        check_size(HUGE_RANGE + 1, yes=False, rate=None)
    check_size(HUGE_RANGE + 1, yes=True, rate=None)
    check_size(HUGE_RANGE + 1, yes=False, rate=1000.0)


# The lab policy's refusals of addresses (a spec reaching outside, exclusions applied first) are the
# port scan stage's Shazzam probe's: tests/unit/runner/scan/test_stages.py.


def test_host_names_in_lab_mode_need_a_dns_server() -> None:
    spec = target_spec(["linux1.sandiego.lab.example.test"], [], [])
    with pytest.raises(TargetSpecError, match="--dns-server"):
        check_host_names(spec, TargetPolicy.lab())
    check_host_names(spec, TargetPolicy.lab("198.18.0.15"))  # resolved through it by the probe
    check_host_names(spec, TargetPolicy.unrestricted())  # the system resolver may answer
    check_host_names(target_spec(["198.18.0.10"], [], []), TargetPolicy.lab())


def test_dns_servers_are_addresses_inside_the_policy() -> None:
    resolver, note = name_resolver(["198.18.0.15"], TargetPolicy.lab())
    assert note is None
    assert resolver is not None
    assert resolver.servers == ("198.18.0.15",)
    with pytest.raises(ConfigError, match="bad --dns-server 'ns1'"):
        name_resolver(["ns1"], TargetPolicy.lab())
    with pytest.raises(TargetNotAllowed, match=r"DNS server 192\.0\.2\.53"):
        name_resolver(["192.0.2.53"], TargetPolicy.lab())


def test_lab_mode_never_asks_the_system_resolver(tmp_path: Path) -> None:
    # Not even one inside the lab networks: a stub on 127.0.0.53 forwards the question anywhere.
    for server in ("192.0.2.53", "127.0.0.53"):
        conf = tmp_path / "resolv.conf"
        conf.write_text(f"nameserver {server}\n")
        resolver, note = name_resolver([], TargetPolicy.lab(), resolv_conf=str(conf))
        assert resolver is None
        assert note is not None
        assert note.startswith("host names not looked up")
        assert "--dns-server" in note
    resolver, note = name_resolver([], TargetPolicy.unrestricted(), resolv_conf=str(conf))
    assert note is None
    assert resolver is not None
    assert resolver.servers == ("127.0.0.53",)


def test_system_resolver_outside_a_restricted_policy_means_no_names(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 192.0.2.53\n")
    resolver, note = name_resolver(
        [], TargetPolicy.only(["198.18.0.0/15"], "lab-like"), resolv_conf=str(conf)
    )
    assert resolver is None
    assert note is not None
    assert "192.0.2.53" in note
    assert "--dns-server" in note
    resolver, note = name_resolver([], TargetPolicy.unrestricted(), resolv_conf=str(conf))
    assert note is None
    assert resolver is not None
    assert resolver.servers == ("192.0.2.53",)


def test_missing_resolv_conf_means_no_names(tmp_path: Path) -> None:
    resolver, note = name_resolver([], TargetPolicy.unrestricted(), resolv_conf=str(tmp_path / "none"))
    assert resolver is None
    assert note is not None
    assert note.startswith("host names not looked up")


def test_credentials_options_take_their_protocol_from_one_file(tmp_path: Path) -> None:
    path = tmp_path / "creds.toml"
    path.write_text(CREDENTIALS)
    both = load_credentials([CredentialSource(path)])
    assert both is not None
    assert [c.id for c in both.credentials] == ["linux-admin", "ro"]
    ssh_only = load_credentials([CredentialSource(path, PROTOCOL_SSH)])
    assert ssh_only is not None
    assert [c.id for c in ssh_only.credentials] == ["linux-admin"]
    # The issue-6 spelling, one file for both options: read once, every credential kept.
    aliases = load_credentials([CredentialSource(path, PROTOCOL_SSH), CredentialSource(path, PROTOCOL_SNMP)])
    assert aliases is not None
    assert [c.id for c in aliases.credentials] == ["linux-admin", "ro"]
    assert load_credentials([]) is None


def test_credentials_from_two_files_must_not_share_ids(tmp_path: Path) -> None:
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text(CREDENTIALS)
    second.write_text(CREDENTIALS)
    with pytest.raises(CredentialError, match="duplicate credential ids: linux-admin, ro"):
        load_credentials([CredentialSource(first), CredentialSource(second)])


def test_snmp_public_fallback_follows_the_snmp_file(tmp_path: Path) -> None:
    ssh_file, snmp_file = tmp_path / "ssh.toml", tmp_path / "snmp.toml"
    ssh_file.write_text(CREDENTIALS.split('[[credential]]\nid = "ro"')[0])
    snmp_file.write_text(
        'snmp_public_fallback = false\n[[credential]]\nid = "v2"\ntype = "snmp"\ncommunity = "c0mmunity-x"\n'
    )
    store = load_credentials(
        [CredentialSource(ssh_file, PROTOCOL_SSH), CredentialSource(snmp_file, PROTOCOL_SNMP)]
    )
    assert store is not None
    assert store.snmp_public_fallback is False
    assert [c.id for c in store.candidates("198.18.0.11", PROTOCOL_SNMP)] == ["v2"]
