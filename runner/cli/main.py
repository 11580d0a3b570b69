"""The ``midprobe`` command group and the one place errors become exit statuses.

Any ``MidprobeError`` (bad input, bad config, an undefined capability, ...) is
printed as one line on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from midprobe.capabilities.errors import MidprobeError

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="midprobe", prog_name="midprobe")
def cli() -> None:
    """midprobe: open discovery probes in the manner of the ServiceNow MID Server.

    Selects MID servers by capability, runs discovery probes (port scans, Nmap,
    DNS, SSH, SNMP) from an ECC queue or as a standalone scanner, and builds a
    safe lab of real hosts in network namespaces to try it all on.
    """


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; translate errors into one line and an exit status."""
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
    except MidprobeError as error:
        click.echo(f"midprobe: error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        click.echo("midprobe: interrupted", err=True)
        sys.exit(130)
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
    sys.exit(0)


def _register_commands() -> None:
    # Each command lives in its own module; one import and one line per command here.
    from midprobe.runner.cli.agent import agent
    from midprobe.runner.cli.demo import demo
    from midprobe.runner.cli.ecc import ecc
    from midprobe.runner.cli.lab import lab
    from midprobe.runner.cli.scan import scan
    from midprobe.runner.cli.selection import capabilities_command, select_command

    cli.add_command(agent)
    cli.add_command(demo)
    cli.add_command(ecc)
    cli.add_command(lab)
    cli.add_command(scan)
    cli.add_command(select_command)
    cli.add_command(capabilities_command)


_register_commands()
