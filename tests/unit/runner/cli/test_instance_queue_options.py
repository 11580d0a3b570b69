"""``discover`` and ``cmdb`` with an ``https://`` queue: what is refused before anything is sent, in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from midprobe.runner.cli.main import main
from midprobe.runner.queue.url import sqlite_url

INSTANCE = "https://198.18.0.1:8443"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    code = exited.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


@pytest.fixture
def schedule(tmp_path: Path) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text('name = "lab"\nranges = ["198.18.0.0/24"]\n', encoding="utf-8")
    return path


def test_local_is_refused_with_an_instance(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, schedule: Path
) -> None:
    monkeypatch.setenv("MIDPROBE_INSTANCE_PASSWORD", "pw")
    code, err = run(capsys, "discover", "run", str(schedule), "--queue", INSTANCE, "--user", "ops", "--local")
    assert code == 2
    assert err.strip().endswith("--local: --local runs an agent beside a database queue, not an instance")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["discover", "list"],
        ["discover", "status", "abcd"],
        ["discover", "cancel", "abcd"],
        ["cmdb", "list"],
        ["cmdb", "show", "linux1"],
        ["cmdb", "history", "linux1"],
        ["cmdb", "export"],
        ["cmdb", "map"],
    ],
)
def test_an_instance_needs_a_user_and_its_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.delenv("MIDPROBE_INSTANCE_USER", raising=False)
    monkeypatch.delenv("MIDPROBE_INSTANCE_PASSWORD", raising=False)
    code, err = run(capsys, *argv, "--queue", INSTANCE)
    assert code == 2
    assert "--user" in err
    assert err.count("\n") == 1
    code, err = run(capsys, *argv, "--queue", INSTANCE, "--user", "ops")
    assert code == 2
    assert "MIDPROBE_INSTANCE_PASSWORD" in err
    assert err.count("\n") == 1


def test_user_and_ca_go_with_an_instance_only(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    for argv in (["discover", "list"], ["cmdb", "list"]):
        code, err = run(capsys, *argv, "--queue", url, "--user", "ops")
        assert code == 2
        assert "--user and --ca go with an https:// queue" in err
