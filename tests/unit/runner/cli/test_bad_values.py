"""Every option of every command refuses bad values as a usage error: exit 2, one line, no traceback.

The command tree is walked from ``midprobe.runner.cli.main``, so an option added later is covered
without touching this file. Callbacks are replaced, so nothing runs when a bad value slips through:
the test then sees the replacement's internal error instead of exit status 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from midprobe.runner.cli.main import COMMANDS, cli, main
from midprobe.runner.cli.options import NumberType

BAD_NUMBERS = ("nan", "inf", "-inf", "-1", "1e400", "1e308", "²", "٣", "1_0")
BAD_TEXT = ("a\x1b[31mb", "line\nbreak", "nul\x00", "lone\udcff")


def walk(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None
            yield from walk(sub, (*path, name))
    else:
        yield path, command


def all_commands() -> list[tuple[tuple[str, ...], click.Command]]:
    return list(walk(cli, ()))


def cases() -> Iterator[tuple[tuple[str, ...], str, str]]:
    for path, command in all_commands():
        for param in command.params:
            if not isinstance(param, click.Option) or param.is_flag or param.hidden:
                continue
            flag = max(param.opts, key=len)
            kind = param.type
            if isinstance(kind, (NumberType, click.types.IntParamType, click.types.FloatParamType)):
                values: tuple[str, ...] = BAD_NUMBERS
            elif isinstance(kind, click.Path):
                values = ("/",) if not kind.dir_okay else ()
            elif isinstance(kind, click.Choice):
                values = ("no-such-choice",)
            elif isinstance(kind, click.types.StringParamType):
                values = BAD_TEXT
            else:
                values = ()
            for value in values:
                yield path, flag, value


CASES = list(cases())


def test_the_walk_finds_every_command_and_the_numeric_options() -> None:
    names = {path[0] for path, _ in all_commands()}
    assert names == set(COMMANDS)
    flags = {(path, flag) for path, flag, value in CASES if value == "nan"}
    for expected in [(("agent",), "--lease"), (("agent",), "--poll-busy"), (("agent",), "--drain")]:
        assert expected in flags
    assert (("scan",), "--host-timeout") in flags
    assert (("select",), "--live-within") in flags


def _placeholders(command: click.Command) -> list[str]:
    """Values for the required arguments, so only the option under test can fail."""
    return ["placeholder" for param in command.params if isinstance(param, click.Argument) and param.required]


@pytest.mark.parametrize(("path", "flag", "value"), CASES, ids=lambda item: repr(item))
def test_a_bad_value_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    path: tuple[str, ...],
    flag: str,
    value: str,
) -> None:
    command = dict(all_commands())[path]

    def must_not_run(**_: object) -> None:
        raise RuntimeError(f"{flag} {value!r} was accepted")

    monkeypatch.setattr(command, "callback", must_not_run)
    with pytest.raises(SystemExit) as exited:
        main([*path, flag, value, *_placeholders(command)])
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert "Traceback" not in err
    assert "internal error" not in err
    assert flag in err or value in err or "Invalid value" in err


# -- paths: the real commands run, with whatever could send traffic or build a lab replaced ------------------


def _forbidden(what: str) -> object:
    def refuse(*_: object, **__: object) -> None:
        raise RuntimeError(f"{what} ran with a bad path")

    return refuse


#: How to run each command that takes a path so that nothing but the path can fail and nothing leaves
#: the machine: extra arguments, and the attributes replaced by a function that fails the test.
PATH_CONTEXTS: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, ...]]] = {
    ("agent",): (("--once", "--queue", "sqlite:///{tmp}/ecc.db"), ()),
    ("capabilities",): (("--mid", "m"), ()),
    ("select",): (("--capability", "SSH"), ()),
    ("cmdb", "export"): (("--queue", "sqlite:///{tmp}/ecc.db"), ()),
    ("cmdb", "map"): (("--queue", "sqlite:///{tmp}/ecc.db"), ()),
    ("cmdb", "list"): (("--queue", "sqlite:///{tmp}/ecc.db"), ()),
    ("cmdb", "show"): (("--queue", "sqlite:///{tmp}/ecc.db"), ()),
    ("cmdb", "history"): (("--queue", "sqlite:///{tmp}/ecc.db"), ()),
    ("discover", "run"): (("--lab", "--queue", "sqlite:///{tmp}/ecc.db"), ()),
    ("discover", "status"): (("--queue", "sqlite:///{tmp}/ecc.db"), ()),
    ("discover", "list"): (("--queue", "sqlite:///{tmp}/ecc.db"), ()),
    ("discover", "cancel"): (("--queue", "sqlite:///{tmp}/ecc.db"), ()),
    ("lab", "up"): ((), ("midprobe.runner.cli.lab.Lab.up",)),
    ("demo",): ((), ("midprobe.runner.cli.demo.Lab",)),
    ("instance", "serve"): (
        ("--queue", "sqlite:///{tmp}/ecc.db", "--listen", "127.0.0.1:0"),
        ("midprobe.runner.instance.serve.serve",),
    ),
    ("instance", "cert", "issue"): (("--queue", "sqlite:///{tmp}/ecc.db"), ()),
    ("mid", "setup"): (
        ("--yes", "--url", "https://127.0.0.1:9", "--user", "u", "--name", "m"),
        ("midprobe.runner.cli.mid_setup._fetch_ca", "midprobe.runner.cli.mid_setup._check_connection"),
    ),
    ("scan",): (("--lab", "-n", "-p", "22", "198.18.0.1"), ("midprobe.runner.cli.scan._run",)),
    ("mid", "credentials"): (("--queue", "sqlite:///{tmp}/ecc.db"), ()),
    **{
        ("mid", *verb): (("--queue", "sqlite:///{tmp}/ecc.db"), ())
        for verb in (
            ("validate",),
            ("invalidate",),
            ("rekey",),
            ("pause",),
            ("resume",),
            ("drain",),
            ("pin",),
            ("unpin",),
            ("list",),
            ("issues",),
            ("upgrade",),
            ("upgrades",),
            ("issue", "ack"),
            ("issue", "resolve"),
        )
    },
}


def path_cases() -> Iterator[tuple[tuple[str, ...], click.Parameter, str]]:
    for path, command in all_commands():
        for param in command.params:
            kind = param.type
            if not isinstance(kind, click.Path):
                continue
            if not kind.file_okay:  # a folder option: only a file is wrong there
                yield path, param, "/proc/version"
                continue
            yield from ((path, param, value) for value in ("/proc/version", "{tmp}/missing/file", "{tmp}"))


PATH_CASES = list(path_cases())


@pytest.mark.parametrize(
    ("path", "param", "value"),
    PATH_CASES,
    ids=[f"{' '.join(path)} {param.name} {value}" for path, param, value in PATH_CASES],
)
def test_a_bad_path_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    path: tuple[str, ...],
    param: click.Parameter,
    value: str,
) -> None:
    assert path in PATH_CONTEXTS, f"add a safe way to run {' '.join(path)} to PATH_CONTEXTS"
    extra, forbidden = PATH_CONTEXTS[path]
    for target in forbidden:
        monkeypatch.setattr(target, _forbidden(target))
    monkeypatch.chdir(tmp_path)
    filled = value.format(tmp=tmp_path)
    arguments = [a.format(tmp=tmp_path) for a in extra]
    if isinstance(param, click.Argument):
        argv = [*path, filled, *arguments]
    else:
        argv = [
            *path,
            max(param.opts, key=len),
            filled,
            *arguments,
            *_placeholders(dict(all_commands())[path]),
        ]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert "Traceback" not in err
    assert "internal error" not in err
    assert err.count("\n") <= 4, err  # click's usage errors take four lines, ours one


# -- values parsed inside the commands, before anything is sent ----------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["scan", "--lab", "-n", "-p", "²", "198.18.0.1"],
        ["scan", "--lab", "-n", "-p", "1-²", "198.18.0.1"],
        ["scan", "--lab", "-n", "-p", "22", "198.18.0.1/²"],
        ["scan", "--lab", "-n", "-p", "22", "198.18.0.1/٣٢"],
        ["scan", "--lab", "-n", "-p", "22", "198.18.0.250-300"],
        ["scan", "--lab", "-n", "-p", "22", "web1/33"],
    ],
)
def test_bad_ports_and_targets_are_refused_before_sending(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    monkeypatch.setattr("midprobe.runner.cli.scan._run", _forbidden("the scan"))
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert err.startswith("midprobe: error: bad ")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://db/ecc", "unsupported queue URL scheme 'mysql'"),
        ("sqlite://host/ecc.db", "a SQLite queue URL has no host"),
        ("sqlite:///{tmp}/no/such/folder/ecc.db", "ecc.db"),
    ],
)
def test_a_bad_scan_queue_is_refused_before_sending(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, url: str, said: str
) -> None:
    monkeypatch.setattr("midprobe.runner.cli.scan._run", _forbidden("the scan"))
    with pytest.raises(SystemExit) as exited:
        main(["scan", "--lab", "-n", "-p", "22", "--queue", url.format(tmp=tmp_path), "198.18.0.1"])
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert said in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"[agent]\nconcurrency = [1]\n", "concurrency"),
        (b"[agent]\nregistry_heartbeat_seconds = 0\n", "registry_heartbeat_seconds"),
        (b"[agent]\nlease_seconds = 1e400\n", "lease_seconds"),
        (b"[agent]\nqueue_stats_seconds = 0\n", "queue_stats_seconds"),
        (b"[agent]\npage_items = 2.5\n", "page_items"),
        (b"[agent]\nname = '\xff'\n", "not UTF-8"),
    ],
)
def test_a_bad_agent_file_stops_the_agent_before_it_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, field: str
) -> None:
    config = tmp_path / "agent.toml"
    config.write_bytes(content)
    with pytest.raises(SystemExit) as exited:
        main(["agent", "--once", "--queue", f"sqlite:///{tmp_path}/ecc.db", "--config", str(config)])
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert f"agent.toml: {field}" in err or field in err
    assert err.count("\n") == 1
    assert not (tmp_path / "ecc.db").exists()  # nothing was opened, let alone registered
