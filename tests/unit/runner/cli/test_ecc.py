"""``midprobe ecc``: hostile request fields refused in one line, records printed without raw escape sequences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from midprobe.runner.ecc.record import EccRecord
from midprobe.runner.queue.url import open_queue, sqlite_url
from tests.support.trust import trust_every_agent
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
    assert "parameters:\n  p = \\x9b2J\n" in out
    code, out, _err = run(capsys, "ecc", "show", record.sys_id, "--queue", url, "--format", "xml")
    assert code == 0
    assert not any(character in out for character in "\x1b\x07\x9b")
    assert 'value="\\x9b2J"' in out
    assert "payload:\n<parameters>\n  <parameter" in out, "the payload keeps its line breaks"


@pytest.mark.parametrize(
    "command",
    [
        ("ecc", "list"),
        ("ecc", "show", "0123456789abcdef0123456789abcdef"),
        ("cmdb", "list"),
        ("cmdb", "show", "linux1"),
        ("cmdb", "history", "linux1"),
        ("cmdb", "export"),
        ("discover", "status", "1"),
        ("discover", "list"),
    ],
)
def test_read_only_commands_refuse_a_missing_database_and_create_none(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    typo = tmp_path / "typo.db"
    code, out, err = run(capsys, *command, "--queue", sqlite_url(typo))
    assert code == 2
    assert out == ""
    assert err == f"midprobe: error: no database at {typo} (nothing was written there yet: check --queue)\n"
    assert list(tmp_path.iterdir()) == []


def test_show_without_queue_refuses_the_missing_default_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MIDPROBE_QUEUE_URL", raising=False)
    code, _out, err = run(capsys, "ecc", "show", "0123456789abcdef0123456789abcdef")
    assert code == 2
    assert "no database at" in err
    assert list(tmp_path.iterdir()) == []


def _enqueue(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    return run(capsys, "ecc", "enqueue", "--queue", url, "--agent", "a1", *args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--topic", "Shazam", "--source", "198.18.0.10"),
            "--topic: no probe handles topic 'Shazam' (did you mean 'Shazzam'?); known: BannerSniff, ",
        ),
        (
            ("--topic", "shazzam", "--source", "198.18.0.10"),
            "(did you mean 'Shazzam'?)",
        ),
        (
            ("--topic", "Shazzam", "--source", "198.18.0.10", "--param", "port=22"),
            "--param port: Shazzam has no parameter 'port' (did you mean 'ports'?)",
        ),
        (
            ("--topic", "Shazzam", "--source", "198.18.0.10", "--param", "ports=99999"),
            "--param ports: Shazzam refuses the request: parameter 'ports': bad port '99999'",
        ),
        (
            ("--topic", "Shazzam", "--source", "198.18.0.300"),
            "--source: Shazzam refuses the request: parameter 'source': bad target '198.18.0.300'",
        ),
        (
            ("--topic", "HeartbeatProbe", "--param", "verbose=1"),
            "--param verbose: HeartbeatProbe has no parameter 'verbose' (it reads probe_timeout_ms)",
        ),
    ],
)
def test_enqueue_checks_topic_and_parameters_with_the_probe(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    code, out, err = _enqueue(capsys, url, *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("midprobe: error: ")
    assert message in err
    assert not (tmp_path / "ecc.db").exists()


def test_enqueue_accepts_what_the_probe_reads(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    code, out, err = _enqueue(
        capsys, url, "--topic", "SSHCommand", "--name", "uname -a", "--source", "198.18.0.10",
        "--param", "port=2222", "--param", "probe_timeout_ms=5000",
    )  # fmt: skip
    assert code == 0, err
    with open_queue(url) as queue:
        (record,) = queue.list()
    assert record.sys_id == out.strip()
    assert record.name == "uname -a"


def _outputs(url: str, *sys_ids: str) -> None:
    with open_queue(url) as queue:
        for sys_id in sys_ids:
            queue.enqueue(EccRecord(agent="a1", queue="output", topic="HeartbeatProbe", sys_id=sys_id))


def test_show_takes_a_unique_sys_id_prefix(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    _outputs(url, "ab12" + "0" * 28, "ab34" + "0" * 28, "cd56" + "0" * 28)
    code, out, err = run(capsys, "ecc", "show", "ab3", "--queue", url)
    assert code == 0, err
    assert out.startswith("sys_id: ab34" + "0" * 28 + "\n")
    code, out, err = run(capsys, "ecc", "show", "CD5", "--queue", url)  # as copied from an upper-case view
    assert code == 0, err
    assert out.startswith("sys_id: cd56")


def test_an_ambiguous_or_unknown_prefix_is_one_line_naming_the_candidates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = sqlite_url(tmp_path / "ecc.db")
    first, second = "ab12" + "0" * 28, "ab34" + "0" * 28
    _outputs(url, first, second)
    code, out, err = run(capsys, "ecc", "show", "ab", "--queue", url)
    assert code == 2
    assert out == ""
    assert err == (
        f"midprobe: error: SYS_ID: sys_id ab... is ambiguous: {first}, {second}; give more characters\n"
    )
    code, _out, err = run(capsys, "ecc", "show", "ef", "--queue", url)
    assert code == 2
    assert err == f"midprobe: error: no record with sys_id ef... in {url}\n"
    code, _out, err = run(capsys, "ecc", "show", "a%", "--queue", url)
    assert code == 2
    assert "'a%' is not a sys_id or the start of one" in err


def test_list_hides_the_claim_records_unless_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = trust_every_agent(sqlite_url(tmp_path / "ecc.db"))
    _outputs(url, "ab12" + "0" * 28)
    with open_queue(url) as queue:
        (claimed,) = queue.claim("a1", 10, 60)
        assert [r.topic for r in queue.list(queue_side="input")] == ["queue.processing"]

    def topics(*extra: str) -> list[str]:
        code, out, err = run(capsys, "ecc", "list", "--queue", url, "--json", *extra)
        assert code == 0, err
        return [record["topic"] for record in json.loads(out)]

    assert topics() == ["HeartbeatProbe"]
    assert topics("--all") == ["HeartbeatProbe", "queue.processing"]
    assert topics("--topic", "queue.processing") == ["queue.processing"]
    code, out, _err = run(capsys, "ecc", "list", "--queue", url)
    assert code == 0
    assert claimed.sys_id in out
    assert "queue.processing" not in out
