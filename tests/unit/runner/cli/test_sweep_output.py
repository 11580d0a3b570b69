"""``midprobe sweep --format json``: each line is the JSON object of one host that answered."""

from __future__ import annotations

import json

import pytest

from midprobe.probes.sweep.host_sweep import AliveHost
from midprobe.runner.cli.sweep import _json_line

HOSTS = (
    AliveHost("198.18.0.10", "icmp", 0.1234567),
    AliveHost("198.18.0.11", "arp", 2.0, mac="02:00:00:00:00:0b"),
    AliveHost("2001:db8::1", "icmp", 0.0),
    AliveHost(
        "198.18.0.12", "tcp-connect", 12.3456, host_name='we"ird\\name\u00e9\n', port=22, port_state="open"
    ),
    AliveHost("198.18.0.13", "icmp", 1e-7),
)


@pytest.mark.parametrize("host", HOSTS, ids=lambda host: host.address)
def test_a_line_is_what_json_would_write(host: AliveHost) -> None:
    expected = {
        "address": host.address,
        "method": host.method,
        "rtt_ms": round(host.rtt_ms, 3),
        "mac": host.mac,
        "host_name": host.host_name,
    }
    line = _json_line(host)
    assert json.loads(line) == expected
    assert line == json.dumps(expected)
