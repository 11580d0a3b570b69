"""Redaction hides what the driver would read as a secret, at any depth; credentials never pickle."""

from __future__ import annotations

import copy
import pickle
import subprocess
from pathlib import Path
from typing import Any

import paramiko
import pytest

from midprobe.probes.credentials.model import SSHPrivateKeyCredential
from midprobe.probes.credentials.redact import REDACTED, redact_fields, redact_url

SECRET = "hunter2-never-shown"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u@h/db?pass%77ord={SECRET}",  # libpq decodes the names of URI parameters
        f"postgresql://u@h/db?%70%61%73%73%77%6f%72%64={SECRET}&sslmode=require",
        f"postgresql://u@h/db?sslmode=require&PASSWORD={SECRET}",
        f"postgresql://u@h/db?sslpassword={SECRET}",
        f"postgresql://u@h/db?password={SECRET}#frag",
        f"postgresql://u@h/db?application_name=x&password={SECRET}&password={SECRET}",
        f"host=h dbname=db ?password={SECRET}",
    ],
)
def test_secret_parameters_are_hidden_however_they_are_spelt(url: str) -> None:
    shown = redact_url(url)
    assert SECRET not in shown
    assert "=***" in shown


def test_other_parameters_and_the_rest_of_the_url_are_kept() -> None:
    url = f"postgresql://u@h:5432/db?sslmode=require&pass%77ord={SECRET}&connect_timeout=5#top"
    assert redact_url(url) == "postgresql://u@h:5432/db?sslmode=require&pass%77ord=***&connect_timeout=5#top"
    assert redact_url("postgresql://u@h/db?sslmode=require") == "postgresql://u@h/db?sslmode=require"


def test_nested_fields_named_like_secrets_are_hidden() -> None:
    request: dict[str, Any] = {"user": "admin", "password": SECRET, "inner": [{"community": SECRET}, "plain"]}
    fields: dict[str, Any] = {
        "target": "198.18.0.10",
        "request": request,
        "attempts": ({"passphrase": SECRET},),
        "queue": f"postgresql://u:{SECRET}@h/db",
        "count": 3,
    }
    cleaned = redact_fields(fields)
    assert SECRET not in repr(cleaned)
    assert cleaned["request"]["password"] == REDACTED
    assert cleaned["request"]["inner"] == [{"community": REDACTED}, "plain"]
    assert cleaned["attempts"] == ({"passphrase": REDACTED},)
    assert (cleaned["target"], cleaned["count"], cleaned["request"]["user"]) == ("198.18.0.10", 3, "admin")
    assert request["password"] == SECRET  # the caller's dict is left alone


def test_an_unencrypted_private_key_credential_refuses_pickling(tmp_path: Path) -> None:
    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    key = paramiko.Ed25519Key.from_private_key_file(str(path))
    credential = SSHPrivateKeyCredential(id="ops-key", user="ops", key=key, private_key_file=path)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="never pickled"):
            pickle.dumps(credential, protocol=protocol)
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps({"store": [credential]})
    assert copy.deepcopy(credential) is credential
    assert copy.copy(credential) is credential
