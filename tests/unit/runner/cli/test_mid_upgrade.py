"""``midprobe mid upgrade`` and ``mid upgrades`` on a database queue: a request recorded, shown by
``mid list`` until the MID starts it, the history listed, and bad input one line with exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from midprobe.runner.cli.main import main
from midprobe.runner.queue.base import AgentRegistration
from midprobe.runner.queue.lifecycle import SETTING_MID_VERSION
from midprobe.runner.queue.url import open_queue, sqlite_url


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_an_upgrade_is_requested_listed_and_kept(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    with open_queue(url) as queue:
        queue.register_agent(AgentRegistration("m1", version="0.1.1"))
    code, out, err = _run(capsys, "mid", "upgrade", "m1", "--version", "0.1.2", "--queue", url)
    assert (code, out) == (0, "m1: upgrade from 0.1.1 to 0.1.2 requested\n"), err
    code, out, _ = _run(capsys, "mid", "list", "--queue", url)
    assert "upgrade to 0.1.2 requested" in out
    code, out, _ = _run(capsys, "mid", "upgrades", "m1", "--queue", url)
    (line,) = out.splitlines()
    assert "Requested" in line
    assert "0.1.1 -> 0.1.2" in line
    code, out, err = _run(capsys, "mid", "upgrade", "--all", "--version", "0.1.3", "--queue", url)
    assert (code, out) == (0, "every unpinned MID: upgrade to 0.1.3 at its next check\n"), err
    with open_queue(url) as queue:
        assert queue.get_setting(SETTING_MID_VERSION) == "0.1.3"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("upgrade", "m1"), "give --version: the wheels are the instance's"),
        (("upgrade",), "give a MID's NAME or --all, not both"),
        (("upgrade", "m1", "--all", "--version", "0.1.2"), "give a MID's NAME or --all, not both"),
        (("upgrade", "m1", "--version", "newest"), "'newest' is not a version"),
        (("upgrade", "nobody", "--version", "0.1.2"), "no MID named 'nobody' is registered"),
        (("upgrade", "pinned", "--version", "0.1.2"), "pinned to 0.1.1: a pinned MID never upgrades"),
    ],
)
def test_bad_upgrade_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: tuple[str, ...], says: str
) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    with open_queue(url) as queue:
        queue.register_agent(AgentRegistration("m1", version="0.1.1"))
        queue.register_agent(AgentRegistration("pinned", version="0.1.1"))
        queue.update_agent("pinned", pinned_version="0.1.1")
    code, _, err = _run(capsys, "mid", *argv, "--queue", url)
    assert code == 2
    assert says in err
    assert len(err.strip().splitlines()) == 1
    with open_queue(url) as queue:
        assert queue.list_upgrades() == []
