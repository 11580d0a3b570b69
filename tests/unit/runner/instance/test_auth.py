"""Passwords, basic auth headers and user names: what the instance accepts and what it refuses."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from midprobe.capabilities.errors import ConfigError, CredentialError
from midprobe.runner.instance.auth import (
    User,
    check_password,
    check_user_name,
    hash_password,
    open_users,
    parse_basic_auth,
    verify_password,
)
from midprobe.runner.queue.url import sqlite_url


def test_a_hash_verifies_its_password_only() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$16384$8$1$")
    assert "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert not verify_password("", stored)
    assert hash_password("correct horse") != stored  # a fresh salt each time


@pytest.mark.parametrize(
    "stored",
    ["", "plain", "scrypt$1$2$3", "pbkdf2$16384$8$1$00$00", "scrypt$x$8$1$00$00", "scrypt$16384$8$1$zz$00"],
)
def test_a_stored_value_of_another_shape_verifies_nothing(stored: str) -> None:
    assert not verify_password("anything", stored)


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (_basic("mid1:secret"), ("mid1", "secret")),
        (_basic("mid1:with:colons"), ("mid1", "with:colons")),
        (_basic("mid1:"), ("mid1", "")),
        ("basic " + base64.b64encode(b"a:b").decode(), ("a", "b")),
        (_basic("no colon"), None),
        ("Basic not base64!", None),
        ("Basic " + base64.b64encode(b"\xff:\xfe").decode(), None),
        ("Bearer token", None),
        ("", None),
        ("Basic ", None),
    ],
)
def test_parse_basic_auth(header: str, expected: tuple[str, str] | None) -> None:
    assert parse_basic_auth(header) == expected


@pytest.mark.parametrize("name", ["", "a b", "-lead", "x" * 101, "tab\there", "naïve", "a:b"])
def test_a_bad_user_name_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="user name"):
        check_user_name(name)


@pytest.mark.parametrize("password", ["", "x" * 1025, "line\nbreak", "esc\x1b", "lone\udcff"])
def test_a_bad_password_is_refused_without_showing_it(password: str) -> None:
    with pytest.raises(CredentialError) as raised:
        check_password(password)
    assert password not in str(raised.value) or password == ""


def test_users_live_in_the_queue_database_with_their_roles(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    with open_users(url) as users:
        users.add("mid1", "pw one", roles=("mid_server",))
        users.add("root", "pw two", roles=("admin", "mid_server", "admin"))
        with pytest.raises(ConfigError, match="'operator' is not a role"):
            users.add("op", "pw", roles=("operator",))
        with pytest.raises(ConfigError, match="at least one role"):
            users.add("op", "pw", roles=())
    with open_users(url) as users:  # another process, later: the same users
        assert users.list() == [User("mid1", ("mid_server",)), User("root", ("admin", "mid_server"))]
        assert users.authenticate("mid1", "pw one") == User("mid1", ("mid_server",))
        assert users.authenticate("mid1", "pw one") is not None  # the remembered path
        assert users.authenticate("mid1", "pw two") is None
        assert users.authenticate("op", "pw") is None
        assert users.authenticate("a b", "pw") is None
    assert b"pw one" not in (tmp_path / "ecc.db").read_bytes()


def test_roles_grant_what_they_name_and_admin_grants_all() -> None:
    assert User("m", ("mid_server",)).has_role("mid_server")
    assert not User("m", ("mid_server",)).has_role("admin")
    assert User("a", ("admin",)).has_role("mid_server")
