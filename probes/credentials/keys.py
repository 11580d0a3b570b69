"""Private key files: read and decrypt an RSA, ECDSA or Ed25519 key into a paramiko key, once.

Accepts OpenSSH's own format and PEM (PKCS#1, SEC1, PKCS#8, encrypted or not).
Errors say what is wrong with the key and never quote it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from midprobe.probes.credentials.model import InvalidField

if TYPE_CHECKING:
    import paramiko

_FIELD = "private_key"


def load_private_key(data: bytes, passphrase: str | None, *, field_name: str = _FIELD) -> paramiko.PKey:
    """Decrypt ``data`` into a paramiko key; raise ``InvalidField`` naming ``field_name`` otherwise."""
    import paramiko  # here: loading credentials must not cost every agent paramiko's import

    password = passphrase.encode() if passphrase else None
    loaded = _load(data, password, field_name)
    if isinstance(loaded, dsa.DSAPrivateKey):
        raise InvalidField(field_name, "is a DSA key; only RSA, ECDSA and Ed25519 keys are supported")
    key_class: type[paramiko.PKey]
    if isinstance(loaded, rsa.RSAPrivateKey):
        key_class = paramiko.RSAKey
    elif isinstance(loaded, ed25519.Ed25519PrivateKey):
        key_class = paramiko.Ed25519Key
    elif isinstance(loaded, ec.EllipticCurvePrivateKey):
        key_class = paramiko.ECDSAKey
    else:
        raise InvalidField(field_name, "is not an RSA, ECDSA or Ed25519 private key")
    try:
        # Re-encode unencrypted in OpenSSH form so paramiko parses any input format, and the
        # (slow, bcrypt) decryption runs once.
        plain = loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        return key_class.from_private_key(io.StringIO(plain.decode("ascii")))
    except (ValueError, paramiko.SSHException):
        raise InvalidField(field_name, "uses a key type or curve SSH does not support") from None


def _load(data: bytes, password: bytes | None, field_name: str) -> object:
    is_openssh = b"-----BEGIN OPENSSH PRIVATE KEY-----" in data
    loader = serialization.load_ssh_private_key if is_openssh else serialization.load_pem_private_key
    try:
        try:
            return loader(data, password=password)
        except TypeError:
            if password is None:
                raise
            # A passphrase for a key that is not encrypted: OpenSSH ignores it, so do we.
            return loader(data, password=None)
    except TypeError:
        raise InvalidField(field_name, "is encrypted: give passphrase or passphrase_env") from None
    except UnsupportedAlgorithm:
        raise InvalidField(field_name, "uses an unsupported key algorithm or cipher") from None
    except ValueError:
        if password is not None and _looks_encrypted(data, is_openssh):
            raise InvalidField("passphrase", "does not decrypt the private key") from None
        raise InvalidField(field_name, "is not a readable private key (OpenSSH or PEM format)") from None


def _looks_encrypted(data: bytes, is_openssh: bool) -> bool:
    if is_openssh:
        try:
            serialization.load_ssh_private_key(data, password=None)
        except TypeError:
            return True
        except (ValueError, UnsupportedAlgorithm):
            return False
        return False
    return b"ENCRYPTED" in data
