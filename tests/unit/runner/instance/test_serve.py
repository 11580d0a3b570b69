"""The listen address and the TLS folder's default, read before anything is opened."""

from __future__ import annotations

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.instance.serve import ListenAddress, default_tls_folder, parse_listen


@pytest.mark.parametrize(
    ("text", "host", "port", "url"),
    [
        ("127.0.0.1:8443", "127.0.0.1", 8443, "https://127.0.0.1:8443"),
        ("[::1]:0", "::1", 0, "https://[::1]:0"),
        ("instance.lab:443", "instance.lab", 443, "https://instance.lab:443"),
        ("0.0.0.0:8443", "0.0.0.0", 8443, "https://127.0.0.1:8443"),
    ],
)
def test_a_listen_address(text: str, host: str, port: int, url: str) -> None:
    address = parse_listen(text)
    assert address == ListenAddress(host, port)
    assert address.url(port) == url


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("8443", "not HOST:PORT"),
        (":8443", "not HOST:PORT"),
        ("::1:8443", "in brackets"),
        ("[nope]:1", "not an IPv6 address"),
        ("a b:1", "not a host name"),
        ("host:65536", "not a port"),
        ("host:²", "not a port"),
        ("host:-1", "not a port"),
    ],
)
def test_a_bad_listen_address_names_the_option(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as raised:
        parse_listen(text)
    assert str(raised.value).startswith("--listen: ")


def test_the_certificate_names_the_listen_host_and_loopback() -> None:
    assert parse_listen("198.18.0.1:8443").certificate_hosts == (
        "198.18.0.1",
        "localhost",
        "127.0.0.1",
        "::1",
    )
    assert "0.0.0.0" not in parse_listen("0.0.0.0:8443").certificate_hosts


def test_the_tls_folder_sits_next_to_a_sqlite_database() -> None:
    assert str(default_tls_folder("sqlite:////var/lib/midprobe/ecc.db")) == "/var/lib/midprobe/ecc-tls"
    for url in ("sqlite:///:memory:", "postgresql://u@db/midprobe"):
        with pytest.raises(ConfigError, match="give --tls-dir"):
            default_tls_folder(url)
