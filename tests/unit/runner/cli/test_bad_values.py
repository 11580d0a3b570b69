"""Every option of every command refuses bad values as a usage error: exit 2, one line, no traceback.

The command tree is walked from ``midprobe.runner.cli.main``, so an option added later is covered
without touching this file. Callbacks are replaced, so nothing runs when a bad value slips through:
the test then sees the replacement's internal error instead of exit status 2.
"""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest

from midprobe.runner.cli.main import COMMANDS, cli, main
from midprobe.runner.cli.options import NumberType

BAD_NUMBERS = ("nan", "inf", "-inf", "-1", "1e400", "²", "٣", "1_0")
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
