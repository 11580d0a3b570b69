"""The instance's own certificate authority and server certificate (``cryptography``), made on first start.

``ensure_certificates(folder, hosts)`` leaves in ``folder``: ``ca.pem`` (what agents pin),
``ca-key.pem``, ``server.pem`` and ``server-key.pem`` (keys readable by the owner only). The CA is
made once and kept; the server certificate is made again, signed by the same CA, when it is
missing, expires within ``RENEW_BEFORE``, or does not name every host the instance serves as, so
agents that pinned ``ca.pem`` keep trusting the instance. ``check_certificate_pair`` reads a
certificate and key given instead (``--cert``/``--key``).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from midprobe.capabilities.errors import ConfigError

CA_FILE: Final = "ca.pem"
CA_KEY_FILE: Final = "ca-key.pem"
SERVER_FILE: Final = "server.pem"
SERVER_KEY_FILE: Final = "server-key.pem"
CA_LIFETIME: Final = timedelta(days=3650)
SERVER_LIFETIME: Final = timedelta(days=397)
RENEW_BEFORE: Final = timedelta(days=30)

Clock = Callable[[], datetime]
Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class TlsFiles:
    """What uvicorn serves with, and the CA file to give agents (``None`` for a certificate given by hand)."""

    certificate: Path
    key: Path
    ca: Path | None


def _names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write ``data`` to ``path`` whole (a temporary file renamed over it); keys get mode 0600."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def read_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not a PEM certificate"
        raise ConfigError(f"cannot read the certificate: {reason}", source=str(path)) from None


def read_private_key(path: Path) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not an unencrypted PEM private key"
        raise ConfigError(f"cannot read the key: {reason}", source=str(path)) from None


def _read_key(path: Path) -> Key:
    key = read_private_key(path)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError("the instance's own keys are EC keys; this one is not", source=str(path))
    return key


def _load_ca(folder: Path) -> tuple[x509.Certificate, Key]:
    ca, ca_key = read_certificate(folder / CA_FILE), _read_key(folder / CA_KEY_FILE)
    if ca.public_key() != ca_key.public_key():
        raise ConfigError(f"{CA_KEY_FILE} is not the key of {CA_FILE}", source=str(folder))
    return ca, ca_key


def _new_ca(folder: Path, now: datetime) -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "midprobe instance CA")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(folder / CA_KEY_FILE, _key_pem(key), private=True)
    _write(folder / CA_FILE, certificate.public_bytes(serialization.Encoding.PEM), private=False)
    return certificate, key


def _new_server(folder: Path, hosts: Sequence[str], ca: x509.Certificate, ca_key: Key, now: datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + SERVER_LIFETIME, ca.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(folder / SERVER_KEY_FILE, _key_pem(key), private=True)
    _write(folder / SERVER_FILE, certificate.public_bytes(serialization.Encoding.PEM), private=False)


def _server_is_current(folder: Path, hosts: Sequence[str], ca: x509.Certificate, now: datetime) -> bool:
    certificate_path, key_path = folder / SERVER_FILE, folder / SERVER_KEY_FILE
    if not certificate_path.is_file() or not key_path.is_file():
        return False
    certificate = read_certificate(certificate_path)
    key = _read_key(key_path)
    if certificate.public_key() != key.public_key() or certificate.issuer != ca.subject:
        return False
    if certificate.not_valid_after_utc - RENEW_BEFORE <= now:
        return False
    try:
        named = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return all(name in named for name in _names(hosts))


def ensure_certificates(folder: Path, hosts: Sequence[str], *, clock: Clock | None = None) -> TlsFiles:
    """The CA and a server certificate for ``hosts`` (names or addresses) in ``folder``, made as needed."""
    if not hosts:
        raise ConfigError("a server certificate needs at least one host name or address")
    now = (clock or (lambda: datetime.now(UTC)))()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise ConfigError(f"cannot make the TLS folder: {error.strerror}", source=str(folder)) from None
    if not folder.is_dir():
        raise ConfigError("the TLS folder is not a folder", source=str(folder))
    ca_path, ca_key_path = folder / CA_FILE, folder / CA_KEY_FILE
    try:
        if ca_path.exists() or ca_key_path.exists():
            ca, ca_key = _load_ca(folder)
        else:
            ca, ca_key = _new_ca(folder, now)
        if not _server_is_current(folder, hosts, ca, now):
            _new_server(folder, hosts, ca, ca_key, now)
    except OSError as error:
        raise ConfigError(f"cannot write the TLS files: {error.strerror}", source=str(folder)) from None
    return TlsFiles(folder / SERVER_FILE, folder / SERVER_KEY_FILE, ca_path)


@dataclass(frozen=True)
class ClientFiles:
    """A client certificate ``instance cert issue`` wrote: the certificate, its key, and the CA to pin."""

    certificate: Path
    key: Path
    ca: Path


def read_ca(folder: Path) -> tuple[x509.Certificate, Key]:
    """The instance's CA in ``folder`` (``ConfigError`` when it is missing or its key is another's)."""
    ca_path, ca_key_path = folder / CA_FILE, folder / CA_KEY_FILE
    if not ca_path.is_file() or not ca_key_path.is_file():
        raise ConfigError(
            f"no instance CA here ({CA_FILE} and {CA_KEY_FILE}; instance serve makes them)",
            source=str(folder),
        )
    return _load_ca(folder)


def issue_client_certificate(
    folder: Path, user: str, out: Path, *, clock: Clock | None = None
) -> ClientFiles:
    """A client certificate for ``user`` (its common name) signed by the CA in ``folder``, written to ``out``.

    ``out`` gets ``USER.pem``, ``USER-key.pem`` (mode 0600) and ``ca.pem`` (the CA to pin).
    """
    now = (clock or (lambda: datetime.now(UTC)))()
    ca, ca_key = read_ca(folder)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + SERVER_LIFETIME, ca.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = ClientFiles(out / f"{user}.pem", out / f"{user}-key.pem", out / CA_FILE)
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write(files.key, _key_pem(key), private=True)
        _write(files.certificate, certificate.public_bytes(serialization.Encoding.PEM), private=False)
        _write(files.ca, ca.public_bytes(serialization.Encoding.PEM), private=False)
    except OSError as error:
        raise ConfigError(f"cannot write the certificate: {error.strerror}", source=str(out)) from None
    return files


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, as ``AB:CD:...`` (what ``openssl x509 -fingerprint -sha256`` prints)."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def check_certificate_pair(certificate: Path, key: Path) -> TlsFiles:
    """A certificate and key given by hand: both readable PEM, and the key the certificate's."""
    if read_certificate(certificate).public_key() != read_private_key(key).public_key():
        raise ConfigError(f"the key is not the key of {certificate}", source=str(key))
    return TlsFiles(certificate, key, None)


__all__ = [
    "CA_FILE",
    "CA_KEY_FILE",
    "SERVER_FILE",
    "SERVER_KEY_FILE",
    "ClientFiles",
    "TlsFiles",
    "check_certificate_pair",
    "ensure_certificates",
    "fingerprint",
    "issue_client_certificate",
    "read_ca",
    "read_certificate",
    "read_private_key",
]
