"""``midprobe ecc``: hostile request fields refused in one line, records printed without raw escape sequences."""

from __future__ import annotations

from pathlib import Path

import pytest

from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.unit.runner.cli.test_select import run


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--source", "\x01", "source"),
        ("--name", "uname \x1b[2J", "name"),
        ("--source", "host\udcff", "source"),
        ("--topic", "queue.processing", "topic: queue.processing is the claim topic, not a probe"),
        ("--param", "key=\ud800", "param"),
    ],
)
def test_enqueue_refuses_a_hostile_field_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, value: str, named: str
) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    argv = ["ecc", "enqueue", "--queue", url, "--agent", "a1", "--topic", "HeartbeatProbe", option, value]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert named in err
    assert "internal error" not in err
    assert "Traceback" not in err
    with open_queue(url) as queue:
        assert queue.list() == []


@pytest.fixture
def hostile_record(tmp_path: Path) -> tuple[str, EccRecord]:
    """An output stored by another writer, its fields holding escape sequences and rich markup."""
    url = sqlite_url(tmp_path / "ecc.db")
    record = EccRecord(
        agent="a1",
        queue="output",
        topic="SSH\x1b]0;owned\x07",
        name="\x1b[2J[bold]n",
        source="\x9b31m198.18.0.1",
        error_string="\x1b[31mred",
        payload='<parameters><parameter name="p" value="\x9b2J"/></parameters>',
    )
    with open_queue(url) as queue:
        queue.enqueue(record)
    return url, record


def test_list_shows_escape_sequences_escaped(
    capsys: pytest.CaptureFixture[str], hostile_record: tuple[str, EccRecord]
) -> None:
    url, _record = hostile_record
    code, out, _err = run(capsys, "ecc", "list", "--queue", url)
    assert code == 0
    assert not any(character in out for character in "\x1b\x07\x9b")
    assert "SSH\\x1b]0;owned\\x07" in out
    assert "\\x9b31m198.18.0.1" in out
    assert "\\x1b[31mred" in out


def test_show_shows_escape_sequences_escaped(
    capsys: pytest.CaptureFixture[str], hostile_record: tuple[str, EccRecord]
) -> None:
    url, record = hostile_record
    code, out, _err = run(capsys, "ecc", "show", record.sys_id, "--queue", url)
    assert code == 0
    assert not any(character in out for character in "\x1b\x07\x9b")
    assert "name: \\x1b[2J[bold]n" in out
    assert 'value="\\x9b2J"' in out
    assert "payload:\n<parameters>\n  <parameter" in out, "the payload keeps its line breaks"
