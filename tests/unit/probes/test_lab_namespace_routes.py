"""Which routes of a network namespace lead out of the lab (``probes/safety.py`` ``routes_out``)."""

from __future__ import annotations

from midprobe.probes.safety import routes_out, stays_on_loopback
from midprobe.probes.targets import parse_targets

IPV4_HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
# A machine's own namespace: a default route via 192.0.2.1 and its /24 on eth0.
MACHINE_V4 = (
    IPV4_HEADER
    + "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    + "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
)
MACHINE_V6 = (
    "fd000000000000000000000000000000 40 "
    + "0" * 32
    + " 00 "
    + "0" * 32
    + " 00000100 00000001 00000000 00000001 eth0\n"
    "fe800000000000000000000000000000 40 "
    + "0" * 32
    + " 00 "
    + "0" * 32
    + " 00000100 00000002 00000000 00000001 eth0\n"
    + "0" * 32
    + " 00 "
    + "0" * 32
    + " 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003 eth0\n"
    "00000000000000000000000000000001 80 "
    + "0" * 32
    + " 00 "
    + "0" * 32
    + " 00000000 00000002 00000000 80200001 lo\n"
    "ff000000000000000000000000000000 08 "
    + "0" * 32
    + " 00 "
    + "0" * 32
    + " 00000100 00000003 00000000 00000001 eth0\n"
    + "0" * 32
    + " 00 "
    + "0" * 32
    + " 00 "
    + "0" * 32
    + " ffffffff 00000001 00000000 00200200 lo\n"
)
# A lab namespace: its lab /24 (198.18.0.0/24) and the routed lab /20 behind a lab router.
LAB_V4 = (
    IPV4_HEADER
    + "veth0\t000012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    + "veth0\t000013C6\t010012C6\t0003\t0\t0\t0\t00F0FFFF\t0\t0\t0\n"
)
LAB_V6 = (
    "20010db8000000000000000000000000 40 "
    + "0" * 32
    + " 00 "
    + "0" * 32
    + " 00000100 00000001 00000000 00000001 veth0\n"
    "fe800000000000000000000000000000 40 "
    + "0" * 32
    + " 00 "
    + "0" * 32
    + " 00000100 00000002 00000000 00000001 veth0\n"
    + "0" * 32
    + " 00 "
    + "0" * 32
    + " 00 "
    + "0" * 32
    + " ffffffff 00000001 00000000 00200200 lo\n"
)


def test_the_machines_routes_lead_out() -> None:
    assert routes_out(MACHINE_V4, MACHINE_V6) == [
        "0.0.0.0/0 dev eth0",
        "192.0.2.0/24 dev eth0",
        "fd00::/64 dev eth0",
        "::/0 dev eth0",
    ]


def test_a_lab_namespace_has_no_route_out() -> None:
    # link-local, multicast, loopback, local and unreachable (reject) routes lead nowhere a target is
    assert routes_out(LAB_V4, LAB_V6) == []
    assert routes_out(IPV4_HEADER, "") == []


def test_a_route_that_is_down_or_a_reject_route_is_not_a_way_out() -> None:
    down = IPV4_HEADER + "eth0\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n"
    reject = IPV4_HEADER + "eth0\t00000000\t00000000\t0201\t0\t0\t0\t00000000\t0\t0\t0\n"
    assert routes_out(down, "") == []
    assert routes_out(reject, "") == []


def test_a_route_that_covers_the_lab_and_more_leads_out() -> None:
    wide = IPV4_HEADER + "veth0\t000000C6\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"  # 198.0.0.0/16
    assert routes_out(wide, "") == ["198.0.0.0/16 dev veth0"]


def test_only_loopback_targets_and_server_stay_on_the_host() -> None:
    assert stays_on_loopback(parse_targets(["127.0.0.1", "127.0.0.2-9"]))
    assert stays_on_loopback(parse_targets(["127.0.0.1"]), "127.0.0.53")
    assert not stays_on_loopback(parse_targets(["127.0.0.1"]), "198.18.0.15")  # the lab's DNS server
    assert not stays_on_loopback(parse_targets(["127.0.0.1", "198.18.0.10"]))
    assert not stays_on_loopback(parse_targets(["linux1.lab.example.test"]))  # a name is looked up
