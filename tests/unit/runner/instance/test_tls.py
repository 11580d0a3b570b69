"""The instance's CA and server certificate: made once, kept, renewed under the same CA when needed."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from midprobe.capabilities.errors import ConfigError
from midprobe.runner.instance.tls import check_certificate_pair, ensure_certificates

NOW = datetime(2026, 6, 1, tzinfo=UTC)
HOSTS = ("198.18.0.1", "localhost", "127.0.0.1")


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _names(certificate: x509.Certificate) -> list[str]:
    extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(name.value) for name in extension]


def test_the_first_start_makes_a_ca_and_a_server_certificate_it_signed(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "tls", HOSTS, clock=lambda: NOW)
    assert files.ca == tmp_path / "tls" / "ca.pem"
    ca, server = _load(files.ca), _load(files.certificate)
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert _names(server) == list(HOSTS)
    assert server.not_valid_before_utc <= NOW < server.not_valid_after_utc
    for key in (files.key, tmp_path / "tls" / "ca-key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700


def test_a_second_start_keeps_everything(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path, HOSTS, clock=lambda: NOW)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    ensure_certificates(
        tmp_path, HOSTS[:2], clock=lambda: NOW + timedelta(days=300)
    )  # fewer names: still fine
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    assert first.ca is not None


@pytest.mark.parametrize(
    ("hosts", "later"),
    [
        ((*HOSTS, "instance.lab"), timedelta(0)),  # a new name to serve as
        (HOSTS, timedelta(days=380)),  # about to expire
    ],
)
def test_the_server_certificate_is_renewed_under_the_same_ca(
    tmp_path: Path, hosts: tuple[str, ...], later: timedelta
) -> None:
    files = ensure_certificates(tmp_path, HOSTS, clock=lambda: NOW)
    ca_before, server_before = files.ca.read_bytes(), files.certificate.read_bytes()  # type: ignore[union-attr]
    ensure_certificates(tmp_path, hosts, clock=lambda: NOW + later)
    assert files.ca.read_bytes() == ca_before  # type: ignore[union-attr]
    assert files.certificate.read_bytes() != server_before
    renewed = _load(files.certificate)
    renewed.verify_directly_issued_by(_load(files.ca))  # type: ignore[arg-type]
    assert set(hosts) <= set(_names(renewed))
    assert renewed.not_valid_after_utc > NOW + later + timedelta(days=30)


def test_a_damaged_ca_is_refused_not_replaced(tmp_path: Path) -> None:
    ensure_certificates(tmp_path, HOSTS, clock=lambda: NOW)
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"ca\.pem: cannot read the certificate"):
        ensure_certificates(tmp_path, HOSTS, clock=lambda: NOW)
    assert (tmp_path / "ca.pem").read_text() == "not a certificate"


def test_a_ca_key_of_another_ca_is_refused(tmp_path: Path) -> None:
    ensure_certificates(tmp_path / "a", HOSTS, clock=lambda: NOW)
    ensure_certificates(tmp_path / "b", HOSTS, clock=lambda: NOW)
    (tmp_path / "a" / "ca-key.pem").write_bytes((tmp_path / "b" / "ca-key.pem").read_bytes())
    with pytest.raises(ConfigError, match=r"ca-key\.pem is not the key of ca\.pem"):
        ensure_certificates(tmp_path / "a", HOSTS, clock=lambda: NOW)


def test_a_tls_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="TLS folder"):
        ensure_certificates(tmp_path / "file", HOSTS)


def test_a_given_certificate_needs_its_own_key(tmp_path: Path) -> None:
    a = ensure_certificates(tmp_path / "a", HOSTS, clock=lambda: NOW)
    b = ensure_certificates(tmp_path / "b", HOSTS, clock=lambda: NOW)
    assert check_certificate_pair(a.certificate, a.key).ca is None
    with pytest.raises(ConfigError, match="the key is not the key of"):
        check_certificate_pair(a.certificate, b.key)
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        check_certificate_pair(a.certificate, a.certificate)
