"""USM keys, digests and privacy: RFC 3414's vectors, round trips, and pysnmp's USM as the reference."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pyasn1.type import univ
from pysnmp.proto.secmod.rfc3414 import localkey
from pysnmp.proto.secmod.rfc3414.service import SnmpUSMSecurityModel

from midprobe.capabilities.errors import CredentialError
from midprobe.probes.credentials.secret import Secret
from midprobe.probes.snmp.auth import AUTH_PROTOCOLS as AUTH_NAMES
from midprobe.probes.snmp.auth import PRIV_PROTOCOLS as PRIV_NAMES
from midprobe.probes.snmp.auth import UsmAuth
from midprobe.probes.snmp.pysnmp_backend import AUTH_PROTOCOL_IDS, PRIV_PROTOCOL_IDS
from midprobe.probes.snmp.usm import (
    AUTH_PROTOCOLS,
    PRIV_PROTOCOLS,
    UsmDecryptionError,
    decrypt,
    encrypt,
    localize,
    localize_key,
    password_to_key,
    sign,
    supported,
    verify,
)

# RFC 3414 A.3: "maplesyrup" at engine ID 00..02.
RFC_ENGINE = bytes(11) + b"\x02"
ENGINE = bytes.fromhex("80001f8880b1c1d5e7a3f4a35f00000000")

# The protocols as the pysnmp backend names them (so both sides mean the same protocol).
_PYSNMP_AUTH: dict[str, Any] = AUTH_PROTOCOL_IDS
_PYSNMP_PRIV: dict[str, Any] = PRIV_PROTOCOL_IDS


def test_every_protocol_the_credentials_name_is_implemented() -> None:
    assert set(AUTH_PROTOCOLS) == set(AUTH_NAMES)
    assert set(PRIV_PROTOCOLS) == set(PRIV_NAMES)
    for auth in AUTH_NAMES:
        for priv in PRIV_NAMES:
            assert supported(UsmAuth("u", auth, Secret("authpass1"), priv, Secret("privpass1")))


def test_rfc3414_md5_key_localisation() -> None:
    ku = password_to_key(b"maplesyrup", "md5")
    assert ku.hex() == "9faf3283884e92834ebc9847d8edd963"
    assert localize_key(ku, RFC_ENGINE, "md5").hex() == "526f5eed9fcce26f8964c2930787d82b"


def test_rfc3414_sha_key_localisation() -> None:
    ku = password_to_key(b"maplesyrup", "sha1")
    assert ku.hex() == "9fb5cc0381497b3793528939ff788d5d79145211"
    assert localize_key(ku, RFC_ENGINE, "sha1").hex() == "6695febc9288e36282235fc7151f128497b38f3f"


@pytest.mark.parametrize("hash_name", ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"])
@pytest.mark.parametrize("password", [b"maplesyrup", b"a-longer-password-than-sixty-four-octets-" * 2, b"x"])
def test_password_to_key_matches_pysnmp(hash_name: str, password: bytes) -> None:
    algorithm = getattr(hashlib, hash_name)
    theirs = localkey.password_to_key(password, univ.OctetString(ENGINE), algorithm)
    assert localize_key(password_to_key(password, hash_name), ENGINE, hash_name) == bytes(theirs)


def test_an_empty_key_is_a_credential_error() -> None:
    with pytest.raises(CredentialError):
        password_to_key(b"", "md5")


@pytest.mark.parametrize("auth_name", sorted(AUTH_NAMES))
def test_digest_truncation_and_verification(auth_name: str) -> None:
    keys = localize(UsmAuth("u", auth_name, Secret("authpass1")), ENGINE)
    length = AUTH_PROTOCOLS[auth_name].digest_length
    assert length == {"MD5": 12, "SHA": 12, "SHA224": 16, "SHA256": 24, "SHA384": 32, "SHA512": 48}[auth_name]
    message = b"head" + bytes(length) + b"tail"
    signed = sign(keys, message, 4)
    assert len(signed) == len(message)
    assert signed[4 : 4 + length] != bytes(length)
    assert verify(keys, signed, 4, length)
    tampered = signed[:-1] + b"X"
    assert not verify(keys, tampered, 4, length)
    other = localize(UsmAuth("u", auth_name, Secret("authpass2")), ENGINE)
    assert not verify(other, signed, 4, length)


@pytest.mark.parametrize("auth_name", ["MD5", "SHA", "SHA256", "SHA512"])
def test_digest_matches_pysnmp(auth_name: str) -> None:
    service = SnmpUSMSecurityModel.AUTH_SERVICES[_PYSNMP_AUTH[auth_name]]
    keys = localize(UsmAuth("u", auth_name, Secret("authpass1")), ENGINE)
    length = keys.digest_length
    message = b"\x30\x10" + bytes(length) + b"some message body"
    theirs = service.authenticate_outgoing_message(univ.OctetString(keys.auth_key), message)
    assert sign(keys, message, 2) == bytes(theirs)


def _pysnmp_keys(auth_name: str, priv_name: str, password: str) -> tuple[Any, bytes]:
    service = SnmpUSMSecurityModel.PRIV_SERVICES[_PYSNMP_PRIV[priv_name]]
    protocol = _PYSNMP_AUTH[auth_name]
    hashed = service.hash_passphrase(protocol, password)
    return service, bytes(service.localize_key(protocol, hashed, univ.OctetString(ENGINE)))


PAIRS = [(auth, priv) for priv in sorted(PRIV_NAMES) for auth in ("MD5", "SHA", "SHA256", "SHA512")]


@pytest.mark.parametrize(("auth_name", "priv_name"), PAIRS)
def test_privacy_keys_and_ciphers_match_pysnmp(auth_name: str, priv_name: str) -> None:
    keys = localize(UsmAuth("u", auth_name, Secret("authpass1"), priv_name, Secret("privpass1")), ENGINE)
    service, their_key = _pysnmp_keys(auth_name, priv_name, "privpass1")
    assert keys.priv_key == their_key[: PRIV_PROTOCOLS[priv_name].key_length]
    plaintext = b"\x30\x1b" + bytes(range(29))  # not a whole number of DES blocks
    boots, now = 7, 123456

    ciphertext, privacy = encrypt(keys, plaintext, boots, now, 0x0102030405060708)
    params = (univ.Integer(boots), univ.Integer(now), univ.OctetString(privacy))
    theirs = service.decrypt_data(univ.OctetString(their_key), params, univ.OctetString(ciphertext))
    assert bytes(theirs)[: len(plaintext)] == plaintext

    their_cipher, their_privacy = service.encrypt_data(
        univ.OctetString(their_key), (boots, now, univ.OctetString(b"\x00" * 8)), plaintext
    )
    ours = decrypt(keys, bytes(their_cipher), bytes(their_privacy), boots, now)
    assert ours[: len(plaintext)] == plaintext


@pytest.mark.parametrize("priv_name", ["DES", "3DES", "AES", "AES256"])
def test_a_wrong_privacy_key_does_not_decrypt(priv_name: str) -> None:
    keys = localize(UsmAuth("u", "SHA", Secret("authpass1"), priv_name, Secret("privpass1")), ENGINE)
    wrong = localize(UsmAuth("u", "SHA", Secret("authpass1"), priv_name, Secret("privpass2")), ENGINE)
    plaintext = b"\x30\x10" + bytes(16)
    ciphertext, privacy = encrypt(keys, plaintext, 1, 2, 3)
    assert decrypt(keys, ciphertext, privacy, 1, 2)[: len(plaintext)] == plaintext
    assert decrypt(wrong, ciphertext, privacy, 1, 2)[: len(plaintext)] != plaintext


def test_the_salt_changes_the_ciphertext() -> None:
    keys = localize(UsmAuth("u", "SHA", Secret("authpass1"), "AES", Secret("privpass1")), ENGINE)
    first = encrypt(keys, b"same plaintext", 1, 2, 10)
    second = encrypt(keys, b"same plaintext", 1, 2, 11)
    assert first[0] != second[0]
    assert first[1] != second[1]


def test_bad_privacy_parameters_are_a_decryption_error() -> None:
    keys = localize(UsmAuth("u", "SHA", Secret("authpass1"), "DES", Secret("privpass1")), ENGINE)
    with pytest.raises(UsmDecryptionError, match="8 expected"):
        decrypt(keys, bytes(16), b"short", 1, 2)
    with pytest.raises(UsmDecryptionError, match="DES blocks"):
        decrypt(keys, bytes(15), bytes(8), 1, 2)


def test_localized_keys_never_show_in_a_repr() -> None:
    keys = localize(UsmAuth("u", "SHA", Secret("authpass1"), "AES", Secret("privpass1")), ENGINE)
    text = repr(keys)
    assert "SHA" in text
    assert "AES" in text
    assert keys.auth_key.hex() not in text
    assert repr(keys.auth_key) not in text
    assert repr(keys.priv_key) not in text
