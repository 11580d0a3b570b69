"""The ``midprobe`` command group and the one place errors become exit statuses.

Any ``MidprobeError`` (bad input, bad config, an undefined capability, ...) is
printed as one line on stderr with exit status 2, never a traceback. A command whose results are
written but partial (``midprobe scan`` with incomplete hosts) raises ``PartialResults``: exit
status 1, as its ECC payload's ``result_code``. SIGTERM to ``scan`` or ``sweep`` stops it as Ctrl-C
does, its summary printed (``Terminated``): exit status 143, as the signal's own would be.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
import traceback
from typing import Any, NoReturn

import click

from midprobe.capabilities.errors import MidprobeError

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
#: The results are written, and say they are partial (an ECC payload's ``result_code="1"``).
EXIT_PARTIAL = 1


#: SIGTERM stopped the command (128 + 15, what a shell reports for a process the signal ended).
EXIT_TERMINATED = 143


class PartialResults(Exception):
    """Raised by a command after it wrote results that are partial, and said why on stderr."""


class Terminated(Exception):
    """SIGTERM stopped the command after it said what it had done (``runner/cli/aio.py``)."""


#: Set by a command that leaves nothing to tear down once it returns (``scan``: its output written
#: and flushed, its threads and sockets closed): the process then ends at once, without the
#: interpreter's own teardown (freeing every module and object, which a scan of all ports makes long).
_nothing_left = False


def nothing_left_to_tear_down() -> None:
    """Let the ``midprobe`` process end as soon as this command returns (see ``main``)."""
    global _nothing_left
    _nothing_left = True


#: Set by ``main`` for the console script while the command's modules load with the cyclic garbage
#: collector held off: what start-up allocates (modules, classes, functions) lives as long as the
#: process, and collecting while it grows cost a scan's start-up about 8 ms of collections.
_holding_collector = False


def _start_up_done() -> None:
    """The command's modules are loaded: freeze what start-up allocated out of every later
    collection (``gc.freeze``) and let the collector run again, for whatever the command allocates."""
    global _holding_collector
    if _holding_collector:
        _holding_collector = False
        gc.freeze()
        gc.enable()


def _exit(code: int, *, whole_process: bool) -> NoReturn:
    """``sys.exit(code)``; for the console script (``whole_process``) of a command that left nothing
    to tear down, the output flushed and ``os._exit``: a caller of ``main([...])`` in its own
    process (a test) always gets ``SystemExit``."""
    if whole_process and _nothing_left:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a reader that went away, a closed stream
                stream.flush()
        os._exit(code)
    sys.exit(code)


#: Each command lives in its own module, imported only when that command runs (or for --help):
#: ``midprobe ecc list`` does not pay for importing the probes, the lab and the scanner.
COMMANDS: dict[str, str] = {
    "agent": "midprobe.runner.cli.agent:agent",
    "capabilities": "midprobe.runner.cli.selection:capabilities_command",
    "cmdb": "midprobe.runner.cli.cmdb:cmdb",
    "demo": "midprobe.runner.cli.demo:demo",
    "discover": "midprobe.runner.cli.discover:discover",
    "ecc": "midprobe.runner.cli.ecc:ecc",
    "instance": "midprobe.runner.cli.instance:instance",
    "lab": "midprobe.runner.cli.lab:lab",
    "mid": "midprobe.runner.cli.mid:mid",
    "scan": "midprobe.runner.cli.scan:scan",
    "sweep": "midprobe.runner.cli.sweep:sweep",
    "select": "midprobe.runner.cli.selection:select_command",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, from ``lazy_commands`` (``COMMANDS``)."""

    def __init__(self, *args: Any, lazy_commands: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = COMMANDS if lazy_commands is None else lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_commands:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = self.lazy_commands[cmd_name].partition(":")
        try:
            command = getattr(importlib.import_module(module_name), attribute)
        finally:
            _start_up_done()
        assert isinstance(command, click.Command)
        from midprobe.runner.cli.options import plain_text_options  # lazy, like the command

        plain_text_options(command)
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="midprobe", prog_name="midprobe")
def cli() -> None:
    """midprobe: open discovery probes in the manner of the ServiceNow MID Server.

    Selects MID servers by capability, runs discovery probes (port scans, Nmap,
    DNS, SSH, SNMP) from an ECC queue or as a standalone scanner, and builds a
    safe lab of real hosts in network namespaces to try it all on.
    """


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; translate errors into one line and an exit status."""
    global _holding_collector
    if argv is None and gc.isenabled():  # the whole process (a caller's own process keeps its collector)
        _holding_collector = True
        gc.disable()
    try:
        cli.main(args=argv, prog_name="midprobe", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("midprobe: aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:  # usage errors: click already names the bad option
        error.show()
        sys.exit(EXIT_BAD_INPUT if error.exit_code == 2 else error.exit_code)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except PartialResults:
        _exit(EXIT_PARTIAL, whole_process=argv is None)
    except MidprobeError as error:
        click.echo(f"midprobe: error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        click.echo("midprobe: interrupted", err=True)
        sys.exit(130)
    except Terminated:  # SIGTERM to a scan or sweep: it said what it had done, then stopped
        click.echo("midprobe: terminated", err=True)
        sys.exit(EXIT_TERMINATED)
    except Exception as error:  # a bug: one line unless asked for the traceback
        if os.environ.get("MIDPROBE_DEBUG"):
            traceback.print_exc()
        else:
            click.echo(
                f"midprobe: internal error: {type(error).__name__}: {error} "
                "(set MIDPROBE_DEBUG=1 for the traceback)",
                err=True,
            )
        sys.exit(EXIT_INTERNAL)
    _exit(0, whole_process=argv is None)
