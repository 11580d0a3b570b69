"""The connection pool's key and settings (the pool itself runs against a real sshd: tests/lab/test_ssh_sshd.py)."""

from __future__ import annotations

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.probes.credentials import SSHPasswordCredential
from midprobe.probes.credentials.secret import Secret
from midprobe.probes.ssh.connections import PoolSettings, credential_identity


def password(secret: str, *, user: str = "admin", id: str = "lab") -> SSHPasswordCredential:
    return SSHPasswordCredential(id=id, user=user, password=Secret(secret))


def test_a_credential_is_named_by_its_id_and_a_digest_never_its_secret() -> None:
    identity = credential_identity(password("hunter2-long-secret"))
    assert identity.startswith("lab:")
    assert "hunter2" not in identity
    assert identity == credential_identity(password("hunter2-long-secret"))


def test_a_changed_secret_or_user_is_another_credential() -> None:
    base = credential_identity(password("one"))
    assert credential_identity(password("two")) != base
    assert credential_identity(password("one", user="root")) != base


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"idle_seconds": -1.0}, "idle_seconds"),
        ({"idle_seconds": float("nan")}, "idle_seconds"),
        ({"channels_per_connection": 0}, "channels_per_connection"),
        ({"connections_per_host": 8}, "connections_per_host"),
        ({"connections_per_host": 0}, "connections_per_host"),
    ],
)
def test_bad_pool_settings_name_the_setting(settings: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        PoolSettings(**settings)  # type: ignore[arg-type]
