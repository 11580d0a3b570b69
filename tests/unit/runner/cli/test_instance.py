"""``midprobe instance user add``: the password comes from the environment only and is never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from midprobe.runner.cli.main import main
from midprobe.runner.instance.auth import User, open_users
from midprobe.runner.queue.url import sqlite_url


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_a_user_is_added_with_the_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    monkeypatch.setenv("MIDPROBE_INSTANCE_PASSWORD", "a long secret")
    code, out, err = _run(capsys, "instance", "user", "add", "mid1", "--role", "mid_server", "--queue", url)
    assert code == 0, err
    assert "a long secret" not in out + err
    code, out, err = _run(
        capsys, "instance", "user", "add", "mid2", "--role", "mid_server", "--mid", "m2", "--queue", url
    )
    assert (code, out) == (0, "user mid2: mid_server (MID m2)\n"), err
    code, out, _ = _run(capsys, "instance", "user", "list", "--queue", url)
    assert out == "mid1\tmid_server\t*\nmid2\tmid_server\tm2\n"
    with open_users(url) as users:
        assert users.authenticate("mid1", "a long secret") == User("mid1", ("mid_server",))


@pytest.mark.parametrize(
    ("password", "argv", "says"),
    [
        (None, ("mid1", "--role", "mid_server"), "set MIDPROBE_INSTANCE_PASSWORD"),
        ("", ("mid1", "--role", "mid_server"), "the password is empty"),
        ("pw", ("bad name", "--role", "mid_server"), "user name"),
        ("pw", ("mid1", "--role", "operator"), "Invalid value for '--role'"),
        ("pw", ("mid1",), "Missing option '--role'"),
        ("pw", ("mid1", "--role", "admin", "--mid", "m1"), "only a mid_server user is bound to MIDs"),
        ("pw", ("mid1", "--role", "mid_server", "--mid", "*"), "not to every MID"),
        ("pw", ("mid1", "--role", "mid_server", "--mid", "bad name"), "not an agent name"),
    ],
)
def test_a_bad_user_is_refused_with_one_line_and_nothing_stored(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    password: str | None,
    argv: tuple[str, ...],
    says: str,
) -> None:
    if password is None:
        monkeypatch.delenv("MIDPROBE_INSTANCE_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("MIDPROBE_INSTANCE_PASSWORD", password)
    code, _, err = _run(capsys, "instance", "user", "add", *argv, "--queue", sqlite_url(tmp_path / "ecc.db"))
    assert code == 2
    assert says in err
    assert "Traceback" not in err
    assert not (tmp_path / "ecc.db").exists()
