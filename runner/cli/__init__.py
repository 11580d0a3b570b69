"""The ``midprobe`` command line. ``main`` is the console-script entry point."""

from midprobe.runner.cli.main import cli, main

__all__ = ["cli", "main"]
