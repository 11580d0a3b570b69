"""The SNMPv3 User-based Security Model's cryptography (pure): keys, digests, privacy.

Password to key (RFC 3414 A.2, RFC 7860 for SHA-2), key localisation to an agent's
engine ID, HMAC authentication parameters (truncated to 12/16/24/32/48 octets), and the
privacy protocols: DES-CBC (RFC 3414 8.1), 3DES-EDE (draft-reeder-snmpv3-usm-3desede),
AES-CFB128 (RFC 3826) and AES-192/256 with either key extension: the Blumenthal draft's
(net-snmp's ``AES192``/``AES256``) or the Reeder/Cisco one (``AES192C``/``AES256C``).
Ciphers come from ``cryptography``. Localised keys never show in a repr.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from midprobe.capabilities.errors import CredentialError
from midprobe.probes.credentials.secret import REDACTED
from midprobe.probes.snmp.auth import UsmAuth

#: RFC 3414 A.2: the password is repeated to one megabyte before hashing.
_EXPANSION = 1_048_576

#: msgFlags bits (RFC 3412 6.4).
FLAG_AUTH = 0x01
FLAG_PRIV = 0x02
FLAG_REPORTABLE = 0x04


@dataclass(frozen=True)
class AuthProtocol:
    """An HMAC authentication protocol: its hash and how many digest octets the message carries."""

    name: str
    hash_name: str
    digest_length: int


AUTH_PROTOCOLS: dict[str, AuthProtocol] = {
    proto.name: proto
    for proto in (
        AuthProtocol("MD5", "md5", 12),  # usmHMACMD5AuthProtocol, RFC 3414
        AuthProtocol("SHA", "sha1", 12),  # usmHMACSHAAuthProtocol, RFC 3414
        AuthProtocol("SHA224", "sha224", 16),  # usmHMAC128SHA224AuthProtocol, RFC 7860
        AuthProtocol("SHA256", "sha256", 24),  # usmHMAC192SHA256AuthProtocol
        AuthProtocol("SHA384", "sha384", 32),  # usmHMAC256SHA384AuthProtocol
        AuthProtocol("SHA512", "sha512", 48),  # usmHMAC384SHA512AuthProtocol
    )
}

Cipher_ = Literal["des", "3des", "aes"]
Extension = Literal["none", "blumenthal", "reeder"]


@dataclass(frozen=True)
class PrivProtocol:
    """A privacy protocol: the cipher, the localised key length it needs and how a short key grows."""

    name: str
    cipher: Cipher_
    key_length: int
    extension: Extension = "none"


PRIV_PROTOCOLS: dict[str, PrivProtocol] = {
    proto.name: proto
    for proto in (
        PrivProtocol("DES", "des", 16),  # 8 octets of key, 8 of pre-IV
        PrivProtocol("3DES", "3des", 32, "reeder"),  # 24 of key, 8 of pre-IV
        PrivProtocol("AES", "aes", 16),
        PrivProtocol("AES192", "aes", 24, "blumenthal"),
        PrivProtocol("AES256", "aes", 32, "blumenthal"),
        PrivProtocol("AES192C", "aes", 24, "reeder"),
        PrivProtocol("AES256C", "aes", 32, "reeder"),
    )
}


class UsmDecryptionError(ValueError):
    """An encrypted scopedPDU that cannot be decrypted (bad length or privacy parameters)."""


# --- keys -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def password_to_key(password: bytes, hash_name: str) -> bytes:
    """Ku: the hash of the password repeated to 1 MB (RFC 3414 A.2.1/A.2.2, RFC 7860 4.1).

    Cached: sixteen agents sharing one credential pay the megabyte hash once.
    """
    if not password:
        raise CredentialError("an SNMPv3 key must not be empty")
    repeated = password * (_EXPANSION // len(password) + 1)
    return hashlib.new(hash_name, repeated[:_EXPANSION]).digest()


def localize_key(key: bytes, engine_id: bytes, hash_name: str) -> bytes:
    """Kul = H(Ku | engineID | Ku) (RFC 3414 A.2)."""
    return hashlib.new(hash_name, key + engine_id + key).digest()


def extend_key(
    localized: bytes, engine_id: bytes, hash_name: str, length: int, extension: Extension
) -> bytes:
    """A localised privacy key grown (or cut) to ``length`` octets.

    Blumenthal (draft-blumenthal-aes-usm-04 3.1.2.1): append H(key so far) until long
    enough. Reeder (draft-reeder-snmpv3-usm-3desede 2.1, and Cisco's AES-192/256): append
    the localisation of the password-to-key of the key so far.
    """
    key = localized
    if extension == "blumenthal":
        while len(key) < length:
            key += hashlib.new(hash_name, key).digest()
    elif extension == "reeder":
        while len(key) < length:
            key += localize_key(password_to_key(key, hash_name), engine_id, hash_name)
    if len(key) < length:
        raise CredentialError(f"the privacy key is {len(key)} octets, {length} needed")
    return key[:length]


@dataclass(frozen=True, repr=False)
class LocalizedKeys:
    """One user's keys localised to one engine: what signing and encrypting need."""

    auth: AuthProtocol | None
    auth_key: bytes
    priv: PrivProtocol | None
    priv_key: bytes

    def __repr__(self) -> str:
        auth = self.auth.name if self.auth else None
        priv = self.priv.name if self.priv else None
        return f"LocalizedKeys(auth={auth!r}, priv={priv!r}, keys={REDACTED!r})"

    @property
    def flags(self) -> int:
        """msgFlags for a request at this security level (always reportable)."""
        return FLAG_REPORTABLE | (FLAG_AUTH if self.auth else 0) | (FLAG_PRIV if self.priv else 0)

    @property
    def digest_length(self) -> int:
        return self.auth.digest_length if self.auth else 0


def supported(auth: UsmAuth) -> bool:
    """True when this module implements the user's protocols."""
    return (auth.auth_protocol is None or auth.auth_protocol in AUTH_PROTOCOLS) and (
        auth.priv_protocol is None or auth.priv_protocol in PRIV_PROTOCOLS
    )


def localize(auth: UsmAuth, engine_id: bytes) -> LocalizedKeys:
    """The user's keys localised to ``engine_id``; the one place the USM secrets are revealed."""
    if auth.auth_protocol is None or auth.auth_key is None:
        return LocalizedKeys(None, b"", None, b"")
    auth_protocol = AUTH_PROTOCOLS[auth.auth_protocol]
    hash_name = auth_protocol.hash_name
    auth_key = localize_key(
        password_to_key(auth.auth_key.reveal().encode("utf-8"), hash_name), engine_id, hash_name
    )
    if auth.priv_protocol is None or auth.priv_key is None:
        return LocalizedKeys(auth_protocol, auth_key, None, b"")
    priv_protocol = PRIV_PROTOCOLS[auth.priv_protocol]
    # The privacy key is derived with the authentication protocol's hash (RFC 3414 8.1.1.1).
    localized = localize_key(
        password_to_key(auth.priv_key.reveal().encode("utf-8"), hash_name), engine_id, hash_name
    )
    priv_key = extend_key(localized, engine_id, hash_name, priv_protocol.key_length, priv_protocol.extension)
    return LocalizedKeys(auth_protocol, auth_key, priv_protocol, priv_key)


# --- authentication ---------------------------------------------------------------------------


def digest(keys: LocalizedKeys, message: bytes) -> bytes:
    """The truncated HMAC of a whole message whose authentication parameters are zeros."""
    assert keys.auth is not None
    return hmac.new(keys.auth_key, message, keys.auth.hash_name).digest()[: keys.auth.digest_length]


def sign(keys: LocalizedKeys, message: bytes, offset: int) -> bytes:
    """``message`` with its zeroed authentication parameters (at ``offset``) filled in."""
    length = keys.digest_length
    return message[:offset] + digest(keys, message) + message[offset + length :]


def verify(keys: LocalizedKeys, message: bytes, offset: int, length: int) -> bool:
    """True when the authentication parameters at ``message[offset:offset+length]`` verify."""
    if keys.auth is None or length != keys.auth.digest_length:
        return False
    received = message[offset : offset + length]
    zeroed = message[:offset] + bytes(length) + message[offset + length :]
    return hmac.compare_digest(received, digest(keys, zeroed))


# --- privacy ----------------------------------------------------------------------------------


def _cbc_parts(keys: LocalizedKeys) -> tuple[bytes, bytes]:
    """(cipher key, pre-IV) for DES and 3DES."""
    if keys.priv is not None and keys.priv.cipher == "des":
        return keys.priv_key[:8] * 3, keys.priv_key[8:16]  # single DES as EDE with K|K|K
    return keys.priv_key[:24], keys.priv_key[24:32]


def encrypt(
    keys: LocalizedKeys, plaintext: bytes, boots: int, engine_time: int, salt: int
) -> tuple[bytes, bytes]:
    """``(encryptedPDU, msgPrivacyParameters)`` for a scopedPDU.

    ``salt`` is the sender's counter: DES/3DES use its low 32 bits after engineBoots
    (RFC 3414 8.1.1.1), AES all 64 bits (RFC 3826 3.1.2.1).
    """
    assert keys.priv is not None
    if keys.priv.cipher == "aes":
        privacy = (salt & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "big")
        iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + privacy
        encryptor = Cipher(algorithms.AES(keys.priv_key), CFB(iv)).encryptor()
        return encryptor.update(plaintext) + encryptor.finalize(), privacy
    key, pre_iv = _cbc_parts(keys)
    privacy = boots.to_bytes(4, "big") + (salt & 0xFFFF_FFFF).to_bytes(4, "big")
    iv = bytes(a ^ b for a, b in zip(pre_iv, privacy, strict=True))
    padded = plaintext + bytes(-len(plaintext) % 8)
    encryptor = Cipher(TripleDES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize(), privacy


def decrypt(keys: LocalizedKeys, ciphertext: bytes, privacy: bytes, boots: int, engine_time: int) -> bytes:
    """The plaintext scopedPDU (DES/3DES: with its padding) or ``UsmDecryptionError``."""
    assert keys.priv is not None
    if len(privacy) != 8:
        raise UsmDecryptionError(f"msgPrivacyParameters of {len(privacy)} octets, 8 expected")
    if keys.priv.cipher == "aes":
        iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + privacy
        decryptor = Cipher(algorithms.AES(keys.priv_key), CFB(iv)).decryptor()
        return decryptor.update(ciphertext) + decryptor.finalize()
    if len(ciphertext) % 8:
        raise UsmDecryptionError(f"an encryptedPDU of {len(ciphertext)} octets is not whole DES blocks")
    key, pre_iv = _cbc_parts(keys)
    iv = bytes(a ^ b for a, b in zip(pre_iv, privacy, strict=True))
    decryptor = Cipher(TripleDES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()
