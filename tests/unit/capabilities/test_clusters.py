"""MID clusters: Failover by order, Load Balance at random among the best, replacements with a capability superset."""

from __future__ import annotations

import random
import tomllib

import pytest

from midprobe.capabilities.clusters import ClusterMember, MidCluster, parse_clusters
from midprobe.capabilities.config import parse_config
from midprobe.capabilities.errors import ConfigError
from midprobe.capabilities.ipranges import IPRange
from midprobe.capabilities.model import Capability, MidServer, MidStatus


def mid(name: str, *caps: str, status: MidStatus = MidStatus.UP, nmap: bool = False) -> MidServer:
    return MidServer(
        name=name,
        status=status,
        validated=True,
        applications=("ALL",),
        ip_ranges=(IPRange.parse("ALL"),),
        capabilities=tuple(Capability(c) for c in caps),
        nmap_installed=nmap,
    )


FAILOVER = MidCluster(
    "east", "Failover", (ClusterMember("b", 2), ClusterMember("a", 1), ClusterMember("c", 3))
)


def test_failover_takes_the_lowest_order_among_the_suitable() -> None:
    assert FAILOVER.pick(["a", "b", "c"]) == "a"
    assert FAILOVER.pick(["c", "b"]) == "b"
    assert FAILOVER.pick(["x"]) is None


def test_load_balance_spreads_over_every_suitable_member() -> None:
    cluster = MidCluster("lb", "Load Balance", (ClusterMember("a"), ClusterMember("b"), ClusterMember("c")))
    rng = random.Random(7)
    seen = {cluster.pick(["a", "b"], rng=rng) for _ in range(50)}
    assert seen == {"a", "b"}


def test_a_replacement_holds_a_superset_of_the_failed_members_capabilities() -> None:
    failed = mid("a", "SSH", "SNMP", status=MidStatus.DOWN, nmap=True)
    fewer = mid("b", "SSH", nmap=True)
    enough = mid("c", "SSH", "SNMP", "WMI", nmap=True)
    assert FAILOVER.replacement(failed, [failed, fewer, enough], "SSHClassify") == enough
    no_nmap = mid("c", "SSH", "SNMP")
    assert FAILOVER.replacement(failed, [failed, fewer, no_nmap], "SSHClassify") is None
    down = mid("c", "SSH", "SNMP", nmap=True, status=MidStatus.DOWN)
    assert FAILOVER.replacement(failed, [failed, down], "SSHClassify") is None


@pytest.mark.parametrize("topic", ["Command", "SystemCommand"])
def test_command_is_never_redirected(topic: str) -> None:
    failed = mid("a", status=MidStatus.DOWN)
    assert FAILOVER.replacement(failed, [failed, mid("b")], topic) is None


def test_clusters_load_from_the_capabilities_file() -> None:
    config = parse_config(
        '[[cluster]]\nname = "east"\ntype = "Failover"\nmembers = [{ name = "a", order = 5 }, "mid.server.b"]\n'
    )
    (cluster,) = config.clusters
    assert cluster.members == (ClusterMember("a", 5), ClusterMember("b", 2))


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[[cluster]]\nname = "x"\ntype = "Random"\nmembers = ["a"]\n', "type"),
        ('[[cluster]]\nname = "x"\ntype = "Failover"\nmembers = []\n', "members"),
        ('[[cluster]]\nname = "x"\ntype = "Failover"\nmembers = ["a", "a"]\n', "members"),
        (
            '[[cluster]]\nname = "x"\ntype = "Failover"\nmembers = [{ name = "a", order = -1 }]\n',
            "members[1].order",
        ),
        ('[[cluster]]\nname = "x"\ntype = "Failover"\nmembers = ["a"]\ncolour = 1\n', "colour"),
        ('[[cluster]]\ntype = "Failover"\nmembers = ["a"]\n', "name"),
    ],
)
def test_bad_clusters_name_the_field(toml: str, named: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_clusters(tomllib.loads(toml)["cluster"])
    assert error.value.field == named
    assert str(error.value).count(f"{named}: ") == 1  # the field is named once, before the message
