"""``midprobe mid``: the MID Servers' lifecycle, each command in its own module."""

from __future__ import annotations

import click

from midprobe.runner.cli.mid_setup import setup


@click.group("mid")
def mid() -> None:
    """MID Servers: set one up on this machine (docs/agent.md)."""


mid.add_command(setup)
