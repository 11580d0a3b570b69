"""A port whose connection completes and is reset at once is open, as nmap -sT and the SYN engine say.

A real listener on 127.0.0.1 (a port this test opened) accepts the connect; the engine's socket is
one whose peer is gone by the time the engine asks (``getpeername`` fails with ENOTCONN), as after
a reset that follows the handshake.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from midprobe.probes.targets import parse_targets
from midprobe.probes.tcpscan.common import ScanOptions
from midprobe.probes.tcpscan.connect import ConnectScanner
from midprobe.probes.tcpscan.engine import scan


class _ResetAfterHandshake(socket.socket):
    """A stream socket whose connection is reset right after it completes."""

    def getpeername(self) -> Any:
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def test_a_connection_reset_right_after_its_handshake_is_an_open_port(listening_port: int) -> None:
    scanner = ConnectScanner(open_socket=_ResetAfterHandshake)
    options = ScanOptions(connect_wait=1.0, retries=0)
    (host,) = scan(parse_targets("127.0.0.1"), (listening_port,), options, engine=scanner)
    assert host.open_ports == (listening_port,)
    assert host.refused_ports == ()


def test_a_connection_that_stays_up_is_open_and_a_closed_port_refused(listening_port: int) -> None:
    with socket.socket() as spare:  # a port nobody listens on: bound here, never listening
        spare.bind(("127.0.0.1", 0))
        closed = int(spare.getsockname()[1])
        options = ScanOptions(connect_wait=1.0, retries=0)
        (host,) = scan(parse_targets("127.0.0.1"), (listening_port, closed), options, engine=ConnectScanner())
    assert host.open_ports == (listening_port,)
    assert host.refused_ports == (closed,)
