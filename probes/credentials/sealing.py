"""Credentials sealed to one MID's own key pair: how the instance sends them and how the MID opens them.

A MID makes an X25519 key pair at first start (:class:`MidKeyPair`, the private key kept 0600
in its state folder) and registers the public key. The instance seals a credentials document
to that key (:func:`seal`): a fresh ephemeral X25519 key per sealing, HKDF-SHA256 over the shared
secret (bound to both public keys), AES-256-GCM with the recipient's key as associated data. Only
the holder of the private key opens it (:func:`open_sealed`); a rekey makes a new pair, and what
was sealed to the old one opens no more. The sealed text is ``msc1.`` and URL-safe base64. The
instance keeps a pair of its own the same way: the discovery credentials it holds are sealed to
it at rest, and opened only to be sealed again to a MID.

:func:`portable_document` turns a credentials file into the document the instance seals:
secrets named by ``*_env`` and ``private_key_file`` are read in on the instance, so the MID
needs neither the instance's environment nor its files.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from midprobe.capabilities.errors import CredentialError
from midprobe.probes.credentials.loader import (
    CredentialFile,
    load_credential_file,
    parse_credential_document,
    read_credential_toml,
)

SEALED_PREFIX: Final = "msc1."
_INFO: Final = b"midprobe sealed credentials v1"
_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12
#: The file in a MID's state folder holding its private key (PEM, mode 0600).
PRIVATE_KEY_FILE: Final = "mid-key.pem"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise CredentialError(f"{what} is not base64") from None


def _raw(public_key: X25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _public_key(text: str) -> X25519PublicKey:
    raw = _unb64(text, "the public key")
    if len(raw) != _KEY_BYTES:
        raise CredentialError("the public key is not an X25519 key")
    return X25519PublicKey.from_public_bytes(raw)


def _aead_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), _KEY_BYTES, salt=None, info=_INFO + ephemeral + recipient).derive(shared)


def seal(plaintext: bytes, public_key: str) -> str:
    """``plaintext`` sealed to the MID whose public key (base64) is ``public_key``."""
    recipient = _public_key(public_key)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw, recipient_raw = _raw(ephemeral.public_key()), _raw(recipient)
    key = _aead_key(ephemeral.exchange(recipient), ephemeral_raw, recipient_raw)
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, recipient_raw)
    return SEALED_PREFIX + _b64(ephemeral_raw + nonce + ciphertext)


class MidKeyPair:
    """A MID's X25519 key pair; the private key never leaves this object but into its 0600 file."""

    def __init__(self, private_key: X25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = _b64(_raw(private_key.public_key()))

    def __repr__(self) -> str:
        return f"MidKeyPair(public_key={self.public_key!r})"

    def __reduce__(self) -> Any:
        raise TypeError("a MID key pair cannot be pickled")

    @classmethod
    def generate(cls) -> MidKeyPair:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, folder: Path, file_name: str = PRIVATE_KEY_FILE) -> MidKeyPair:
        """The pair kept in ``folder`` as ``file_name`` (made, 0600, at first start).

        The instance keeps a pair of its own the same way, to keep discovery credentials sealed at rest.
        """
        path = folder / file_name
        if path.exists():
            try:
                loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (ValueError, TypeError, OSError):
                raise CredentialError(
                    f"{path}: not an X25519 private key (remove it to make a new one)"
                ) from None
            if not isinstance(loaded, X25519PrivateKey):
                raise CredentialError(f"{path}: not an X25519 private key (remove it to make a new one)")
            return cls(loaded)
        pair = cls.generate()
        pair.save(folder, file_name)
        return pair

    def save(self, folder: Path, file_name: str = PRIVATE_KEY_FILE) -> None:
        """Write the private key to ``folder`` as ``file_name`` (mode 0600, replacing the old one at once)."""
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            pem = self._private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            temporary = folder / f".{file_name}.{os.getpid()}"
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
            os.replace(temporary, folder / file_name)
        except OSError as error:
            raise CredentialError(f"{folder}: cannot keep the key pair: {error.strerror or error}") from None

    def open(self, sealed: str) -> bytes:
        """The plaintext of ``sealed``; ``CredentialError`` when it was not sealed to this pair."""
        if not sealed.startswith(SEALED_PREFIX):
            raise CredentialError("not sealed credentials")
        raw = _unb64(sealed[len(SEALED_PREFIX) :], "the sealed credentials")
        if len(raw) < _KEY_BYTES + _NONCE_BYTES + 16:
            raise CredentialError("the sealed credentials are cut short")
        ephemeral_raw, nonce = raw[:_KEY_BYTES], raw[_KEY_BYTES : _KEY_BYTES + _NONCE_BYTES]
        recipient_raw = _raw(self._private_key.public_key())
        shared = self._private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
        key = _aead_key(shared, ephemeral_raw, recipient_raw)
        try:
            return AESGCM(key).decrypt(nonce, raw[_KEY_BYTES + _NONCE_BYTES :], recipient_raw)
        except InvalidTag:
            raise CredentialError("the sealed credentials were not sealed to this MID's key") from None


def portable_document(path: str | Path, *, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The credentials file at ``path`` as a self-contained document (checked as the agent will read it).

    ``*_env`` references are replaced by the variable's value and ``private_key_file`` by the
    key's text, so the document needs nothing of the instance's environment or disk.
    """
    path = Path(path)
    load_credential_file(path, environ=environ)  # a bad file stops here, with the loader's message
    env = os.environ if environ is None else environ
    document = read_credential_toml(path.read_text(encoding="utf-8"), str(path))
    entries: list[dict[str, Any]] = []
    for entry in document.get("credential", []):
        resolved: dict[str, Any] = {}
        for key, value in entry.items():
            if key.endswith("_env"):
                resolved[key.removesuffix("_env")] = env[value]
            elif key == "private_key_file":
                key_path = Path(value).expanduser()
                resolved["private_key"] = (
                    key_path if key_path.is_absolute() else path.parent / key_path
                ).read_text(encoding="utf-8")
            else:
                resolved[key] = value
        entries.append(resolved)
    portable: dict[str, Any] = {"credential": entries}
    if "snmp_public_fallback" in document:
        portable["snmp_public_fallback"] = document["snmp_public_fallback"]
    return portable


def seal_document(document: Mapping[str, Any], public_key: str) -> str:
    """A credentials document (:func:`portable_document`) sealed to ``public_key``."""
    return seal(json.dumps(document, sort_keys=True).encode(), public_key)


def open_document(
    sealed: str, keys: MidKeyPair, *, source: str = "<sealed by the instance>"
) -> dict[str, Any]:
    """The credentials document sealed to ``keys`` (:func:`seal_document`), in memory only."""
    try:
        document = json.loads(keys.open(sealed))
    except (ValueError, UnicodeDecodeError):
        raise CredentialError(
            "the sealed credentials are not a credentials document", source=source
        ) from None
    if not isinstance(document, dict):
        raise CredentialError("the sealed credentials are not a credentials document", source=source)
    return document


def open_credentials(
    sealed: str, keys: MidKeyPair, *, source: str = "<sealed by the instance>"
) -> CredentialFile:
    """The credentials the instance sealed to ``keys`` (in memory only)."""
    return parse_credential_document(open_document(sealed, keys, source=source), source=source, environ={})


__all__ = [
    "PRIVATE_KEY_FILE",
    "SEALED_PREFIX",
    "MidKeyPair",
    "open_credentials",
    "open_document",
    "portable_document",
    "seal",
    "seal_document",
]
