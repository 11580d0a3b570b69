"""Schedule files: three keys suffice, every bad key or value is one error naming it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.probes.targets import parse_targets
from midprobe.runner.discovery.schedule import (
    DEFAULT_BATCH_SIZE,
    DEPTHS,
    PROTOCOLS,
    batch_addresses,
    load_schedule,
    schedule_from_mapping,
    schedule_to_mapping,
)


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "creds.toml").write_text("", encoding="utf-8")
    path = tmp_path / "lab.toml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = 'name = "lab"\nranges = ["198.18.0.0/24"]\ncredentials = "creds.toml"\n'


def test_the_minimal_schedule_is_three_keys_with_defaults(tmp_path: Path) -> None:
    schedule = load_schedule(write(tmp_path, MINIMAL))
    assert schedule.name == "lab"
    assert schedule.credentials == (tmp_path / "creds.toml").resolve()  # relative to the schedule
    assert schedule.mid_choice == "auto"
    assert schedule.behaviour == PROTOCOLS
    assert schedule.batch_size == DEFAULT_BATCH_SIZE
    assert schedule.max_run_time is None
    assert schedule.targets.count() == 256


def test_every_optional_key(tmp_path: Path) -> None:
    text = MINIMAL + (
        'exclude = ["198.18.0.0", "198.18.0.255"]\nmid = "cluster:east"\nbehaviour = ["SNMP", "ssh"]\n'
        'credential_tags = ["lab"]\nports = [22, 161]\nbatch_size = 256\nmax_run_time = 600\nrate = 500\n'
        'engine = "connect"\nconnect_wait = 300\nretries = 0\nhost_discovery = true\n'
        'depth = "classification"\ncmdb = false\nenrichment = ["banners", "nmap_os"]\n'
        "page_wait = 50\n"
    )
    schedule = load_schedule(write(tmp_path, text))
    assert (schedule.mid_choice, schedule.mid) == ("cluster", "east")
    assert schedule.behaviour == ("snmp", "ssh")
    assert schedule.ports == "22,161"
    assert schedule.targets.count() == 254
    assert (schedule.batch_size, schedule.max_run_time, schedule.rate) == (256, 600.0, 500.0)
    assert (schedule.engine, schedule.connect_wait, schedule.retries) == ("connect", 300, 0)
    assert (schedule.host_discovery, schedule.depth, schedule.cmdb) == (True, "classification", False)
    assert [schedule.runs(phase) for phase in DEPTHS] == [True, True, False, False]
    assert (schedule.enrichment, schedule.page_wait) == (("banners", "nmap_os"), 50)
    assert load_schedule(write(tmp_path, MINIMAL + 'mid = "mid.server.lab1"\n')).mid == "lab1"


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("colour = 1\n", "colour"),
        ("batch_size = 255\n", "batch_size"),
        ("batch_size = 1.5e3\n", "batch_size"),
        ("max_run_time = nan\n", "max_run_time"),
        ("max_run_time = inf\n", "max_run_time"),
        ("max_run_time = 0\n", "max_run_time"),
        ("rate = -1\n", "rate"),
        ('behaviour = ["telnet"]\n', "behaviour"),
        ("behaviour = []\n", "behaviour"),
        ('ports = "22,99999"\n', "ports"),
        ('ports = ["22"]\n', "ports"),
        ('mid = "cluster:"\n', "mid"),
        ("mid = 3\n", "mid"),
        ("exclude = [3]\n", "exclude"),
        ('credential_tags = [""]\n', "credential_tags"),
        ('engine = "raw"\n', "engine"),
        ("connect_wait = 0\n", "connect_wait"),
        ("connect_wait = 60001\n", "connect_wait"),
        ("retries = 11\n", "retries"),
        ("retries = true\n", "retries"),
        ('host_discovery = "yes"\n', "host_discovery"),
        ('depth = "cmdb"\n', "depth"),
        ("cmdb = 1\n", "cmdb"),
        ('enrichment = ["whois"]\n', "enrichment"),
        ("page_wait = 0\n", "page_wait"),
        ('enrichment = ["names"]\n', "enrichment"),
        ('dns_servers = ["ns1.example.test"]\n', "dns_servers"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_schedule(write(tmp_path, MINIMAL + extra))
    assert error.value.field == key
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('ranges = ["198.18.0.0/24"]\n', "name"),
        ('name = "x"\n', "ranges"),
        ('name = "x"\nranges = ["198.18.0.250-300"]\n', "ranges"),
        ('name = "x"\nranges = ["web1.example.test/24"]\n', "ranges"),
        ('name = "x"\nranges = ["198.18.0.0/24"]\nexclude = ["web1.example.test"]\n', "exclude"),
        ('name = "x"\nranges = ["0.0.0.0/0"]\n', "ranges"),
        ('name = "x"\nranges = ["198.18.0.1"]\ncredentials = "missing.toml"\n', "credentials"),
        ('name = "\\u001b[31m"\nranges = ["198.18.0.1"]\n', "name"),
        ("name = \n", "SCHEDULE"),
    ],
)
def test_bad_schedules(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_schedule(write(tmp_path, text))
    assert error.value.field == key


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no schedule file"):
        load_schedule(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_bytes(b'name = "\xff"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_schedule(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_schedule(tmp_path)


def test_batches_cover_every_address_once_as_cidr_blocks() -> None:
    targets = parse_targets(["198.18.0.0/23", "198.18.4.7"], ["198.18.0.100"])
    batches = list(batch_addresses(targets, 256))
    assert [parse_targets(list(b)).count() for b in batches] == [256, 256]
    assert batches[0] == (
        "198.18.0.0/26",
        "198.18.0.64/27",
        "198.18.0.96/30",
        "198.18.0.101",
        "198.18.0.102/31",
        "198.18.0.104/29",
        "198.18.0.112/28",
        "198.18.0.128/25",
        "198.18.1.0",
    )
    seen = [str(t.address) for b in batches for t in parse_targets(list(b))]
    assert len(seen) == len(set(seen)) == 512
    assert batches[1][-1] == "198.18.4.7"
    assert "198.18.0.100" not in seen


@pytest.mark.parametrize(
    "extra",
    [
        "",
        'mid = "east"\nmax_run_time = 60\nrate = 500\n',
        'mid = "cluster:east"\ncredential_tags = ["lab"]\n',
        'engine = "syn"\nconnect_wait = 250\nretries = 1\n',
        'host_discovery = true\ndepth = "scanning"\ncmdb = false\nenrichment = ["nmap_services"]\npage_wait = 20\n',
        'enrichment = ["names", "snmp_public"]\ndns_servers = ["198.18.0.15", "2001:db8::53"]\n',
    ],
)
def test_a_schedule_sent_as_its_keys_reads_back_the_same_without_its_credentials(
    tmp_path: Path, extra: str
) -> None:
    (tmp_path / "creds.toml").write_text("", encoding="utf-8")
    path = tmp_path / "s.toml"
    path.write_text(
        f'name = "n"\nranges = ["198.18.0.0/24"]\nexclude = ["198.18.0.1"]\ncredentials = "creds.toml"\n{extra}',
        encoding="utf-8",
    )
    schedule = load_schedule(path)
    table = schedule_to_mapping(schedule)
    assert "credentials" not in table
    assert schedule_from_mapping(table) == dataclasses.replace(schedule, credentials=None)


def test_host_names_in_the_ranges_are_kept_apart_from_the_address_batches(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'name = "x"\nranges = ["web1.sanjose.example.test", "198.18.0.0/30", "WEB1.sanjose.example.test"]\n',
        encoding="utf-8",
    )
    schedule = load_schedule(path)
    assert schedule.host_names == ("web1.sanjose.example.test",)  # DNS names are case-blind
    assert list(schedule.batches()) == [("198.18.0.0/30",)]
