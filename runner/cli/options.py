"""Options several commands share (the queue URL), so they read and validate alike."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from midprobe.capabilities.errors import ConfigError
from midprobe.capabilities.numbers import NumberRange, read_number

F = TypeVar("F", bound=Callable[..., Any])


def _queue(help_text: str) -> Callable[[F], F]:
    # The agent's settings load with the commands that take them: `scan` has none.
    from midprobe.runner.agent.config import DEFAULT_QUEUE_URL

    return click.option(
        "--queue",
        "queue_url",
        envvar="MIDPROBE_QUEUE_URL",
        default=DEFAULT_QUEUE_URL,
        show_default=True,
        metavar="URL",
        help=help_text,
    )


def queue_option(function: F) -> F:
    """``--queue URL`` (env ``MIDPROBE_QUEUE_URL``): ``sqlite:///path.db`` or ``postgresql://...``."""
    return _queue(
        "ECC queue: sqlite:///path.db (embedded) or postgresql://user@host/db (env MIDPROBE_QUEUE_URL)."
    )(function)


def queue_or_instance_option(function: F) -> F:
    """``--queue URL`` for commands that also reach an instance: a database URL or ``https://HOST:PORT``."""
    return _queue(
        "ECC queue: sqlite:///path.db, postgresql://user@host/db, or https://HOST:PORT (an instance, "
        "with --user and --ca) (env MIDPROBE_QUEUE_URL)."
    )(function)


def instance_options(function: F) -> F:
    """``--user NAME`` and ``--ca FILE``: with an ``https://`` queue, who calls the instance and the CA to trust.

    The password comes from ``MIDPROBE_INSTANCE_PASSWORD`` only, as the agent's does.
    """
    function = click.option(
        "--ca",
        "instance_ca_file",
        envvar="MIDPROBE_INSTANCE_CA_FILE",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="With an https:// queue: the instance's CA file to trust [the system's CAs] (env MIDPROBE_INSTANCE_CA_FILE).",
    )(function)
    return click.option(
        "--user",
        "instance_user",
        envvar="MIDPROBE_INSTANCE_USER",
        default=None,
        help="With an https:// queue: the instance user (password from env MIDPROBE_INSTANCE_PASSWORD).",
    )(function)


class NumberType(click.ParamType[float, Any]):
    """A numeric option read by :func:`~midprobe.capabilities.numbers.read_number`: finite, in range.

    ``click``'s own ``float`` accepts ``nan``, ``inf`` and ``1e400``; this type refuses them with
    the same limits and wording as the config files, as a usage error (exit status 2).
    """

    def __init__(self, limits: NumberRange) -> None:
        self.limits = limits
        self.name = "integer" if limits.integer else "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raw: object = value
        else:
            raw = str(value)
        try:
            return read_number(raw, self.limits, field=None)
        except ConfigError as error:  # click names the option: "Invalid value for '--lease': ..."
            self.fail(str(error), param, ctx)


def agent_setting(field_name: str) -> NumberType:
    """The option type of an agent setting, with the limits its config file has."""
    from midprobe.runner.agent.config import NUMBER_LIMITS

    return NumberType(NUMBER_LIMITS[field_name])


def seconds(minimum: float, maximum: float = 86_400.0) -> NumberType:
    """A duration option in seconds within ``[minimum, maximum]``."""
    return NumberType(NumberRange(minimum, maximum))


def integer(minimum: int, maximum: int) -> NumberType:
    """An integer option within ``[minimum, maximum]``."""
    return NumberType(NumberRange(minimum, maximum, integer=True))


class TextType(click.types.StringParamType):
    """Plain text: refuses control characters and lone surrogates, which no option has a use for.

    Every option declared without a type gets this one (see :func:`plain_text_options`), so a value
    with an escape sequence or an undecodable byte is a usage error, never a crash later on.
    """

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = super().convert(value, param, ctx)
        for character in text:
            if ord(character) < 0x20 or ord(character) == 0x7F:
                self.fail("must not contain control characters", param, ctx)
            if 0xD800 <= ord(character) <= 0xDFFF:
                self.fail("is not valid text (undecodable bytes)", param, ctx)
        return text


TEXT = TextType()


def plain_text_options(command: click.Command) -> None:
    """Give every untyped option and argument of ``command`` (and its subcommands) the ``TEXT`` type."""
    for param in command.params:
        if type(param.type) is click.types.StringParamType:
            param.type = TEXT
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            plain_text_options(sub)


#: Kernel interfaces that look like regular files but fail on write (``/proc/version``: EIO).
_KERNEL_FILE_SYSTEMS = (Path("/proc"), Path("/sys"))


class OutputFileType(click.Path):
    """A file to write a report to, checked before any work starts.

    Refuses a directory, a missing parent directory and the kernel's ``/proc`` and ``/sys``
    files, so ``-o /proc/version`` fails at once instead of after a scan.
    """

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        assert isinstance(path, Path)
        resolved = path.resolve()
        # A ConfigError, not a usage error: one line naming the file and the option, as when
        # the file cannot be written later.
        field = max(param.opts, key=len) if param is not None else None
        if any(resolved.is_relative_to(root) for root in _KERNEL_FILE_SYSTEMS):
            raise ConfigError(
                "cannot write the output file: a kernel interface", source=str(path), field=field
            )
        if not resolved.parent.is_dir():
            raise ConfigError("cannot write the output file: no such folder", source=str(path), field=field)
        return path


OUTPUT_FILE = OutputFileType()


def output_option(function: F) -> F:
    """``-o/--output FILE`` (passed as ``output``, ``None`` for standard output), checked as :data:`OUTPUT_FILE`."""
    return click.option(
        "-o",
        "--output",
        "output",
        type=OUTPUT_FILE,
        default=None,
        help="Write to FILE instead of standard output.",
    )(function)


def defaults_file_option(section: str, envvar: str) -> Callable[[F], F]:
    """``--config FILE`` (env ``envvar``): a TOML file whose ``[section]`` table gives the command's
    defaults, keyed by its long option names (``ports = "22,80"``, ``dns-server = ["198.18.0.15"]``,
    ``no-banners = true``). Options on the command line win; an unknown key or a file that cannot
    be read is a one-line error naming it."""

    def load(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
        if value is None:
            return
        table = _defaults_table(value, section)
        by_key: dict[str, click.Parameter] = {}
        for parameter in ctx.command.params:
            if isinstance(parameter, click.Option) and parameter.name not in (None, "config_file"):
                for opt in parameter.opts:
                    if opt.startswith("--"):
                        by_key[opt[2:]] = parameter
                        by_key[opt[2:].replace("-", "_")] = parameter
        defaults: dict[str, Any] = {}
        for key, setting in table.items():
            target = by_key.get(key)
            if target is None or target.name is None:
                known = ", ".join(sorted(k for k in by_key if "_" not in k))
                raise ConfigError(
                    f"{value}: [{section}] has no setting {key!r} (settings: {known})", field="--config"
                )
            defaults[target.name] = setting
        ctx.default_map = {**(ctx.default_map or {}), **defaults}

    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=envvar,
        default=None,
        is_eager=True,
        expose_value=False,
        callback=load,
        help=f"TOML file whose [{section}] table sets this command's defaults (env {envvar}).",
    )


def _defaults_table(path: Path, section: str) -> dict[str, Any]:
    import tomllib

    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}", field="--config") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text", field="--config") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}", field="--config") from None
    table = document.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{section}] must be a table", field="--config")
    unknown = sorted(set(document) - {section})
    if unknown:
        raise ConfigError(f"{path}: unknown table {unknown[0]!r} (only [{section}])", field="--config")
    return table
