"""Sealing credentials to a MID's key: only that key opens them, tampering is caught, the document is self-contained."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from midprobe.capabilities.errors import CredentialError
from midprobe.probes.credentials.model import SSHPrivateKeyCredential
from midprobe.probes.credentials.sealing import (
    PRIVATE_KEY_FILE,
    MidKeyPair,
    open_credentials,
    open_document,
    portable_document,
    seal,
    seal_document,
)
from tests.unit.probes.credentials.test_loader import keygen

SECRET = "seal-me-Pa55-1e9b"


def test_only_the_recipient_opens_and_each_sealing_differs() -> None:
    keys = MidKeyPair.generate()
    first, second = seal(SECRET.encode(), keys.public_key), seal(SECRET.encode(), keys.public_key)
    assert first != second  # a fresh ephemeral key and nonce each time
    assert SECRET not in first
    assert keys.open(first) == SECRET.encode()
    with pytest.raises(CredentialError, match="not sealed to this MID's key"):
        MidKeyPair.generate().open(first)


def test_a_changed_byte_is_caught() -> None:
    keys = MidKeyPair.generate()
    sealed = seal(b"payload", keys.public_key)
    body = sealed[-8:]
    flipped = sealed[:-8] + ("A" if body[0] != "A" else "B") + body[1:]
    with pytest.raises(CredentialError):
        keys.open(flipped)
    with pytest.raises(CredentialError):
        keys.open("plain text")
    with pytest.raises(CredentialError):
        seal(b"x", "not-a-key")


def test_the_key_pair_is_kept_0600_and_never_pickled(tmp_path: Path) -> None:
    keys = MidKeyPair.load_or_create(tmp_path / "state")
    path = tmp_path / "state" / PRIVATE_KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert MidKeyPair.load_or_create(tmp_path / "state").public_key == keys.public_key
    assert keys.public_key in repr(keys)
    with pytest.raises(TypeError):
        pickle.dumps(keys)
    path.write_text("not a key")
    with pytest.raises(CredentialError, match="remove it to make a new one"):
        MidKeyPair.load_or_create(tmp_path / "state")


def test_the_portable_document_carries_env_secrets_and_key_files(tmp_path: Path) -> None:
    keygen(tmp_path / "id_ed25519")
    path = tmp_path / "credentials.toml"
    path.write_text(
        '[[credential]]\nid = "p"\ntype = "ssh_password"\nuser = "u"\npassword_env = "SEAL_TEST"\n\n'
        '[[credential]]\nid = "k"\ntype = "ssh_private_key"\nuser = "u"\nprivate_key_file = "id_ed25519"\n'
    )
    document = portable_document(path, environ={"SEAL_TEST": SECRET})
    keys = MidKeyPair.generate()
    sealed = seal_document(document, keys.public_key)
    os.remove(tmp_path / "id_ed25519")  # the MID needs neither the instance's files
    opened = open_credentials(sealed, keys)  # nor its environment
    password, key = opened.credentials
    assert password.password.reveal() == SECRET  # type: ignore[union-attr]
    assert isinstance(key, SSHPrivateKeyCredential)
    assert key.private_key_file is None
    with pytest.raises(CredentialError):
        portable_document(path, environ={})  # the variable is checked on the instance


def test_a_pair_kept_under_another_file_name_is_its_own_and_opens_its_documents(tmp_path: Path) -> None:
    mid = MidKeyPair.load_or_create(tmp_path)
    instance = MidKeyPair.load_or_create(tmp_path, "credentials-key.pem")
    assert instance.public_key != mid.public_key
    assert MidKeyPair.load_or_create(tmp_path, "credentials-key.pem").public_key == instance.public_key
    assert os.stat(tmp_path / "credentials-key.pem").st_mode & 0o777 == 0o600
    document = {"credential": [{"id": "ops", "type": "snmp", "community": SECRET}]}
    sealed = seal_document(document, instance.public_key)
    assert open_document(sealed, instance) == document
    with pytest.raises(CredentialError, match="not sealed to this MID's key"):
        open_document(sealed, mid)
    with pytest.raises(CredentialError, match="not a credentials document"):
        open_document(seal(b"[1, 2]", instance.public_key), instance)
