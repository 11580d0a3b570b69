"""Options several commands share (the queue URL), so they read and validate alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from midprobe.runner.agent.config import DEFAULT_QUEUE_URL

F = TypeVar("F", bound=Callable[..., Any])


def queue_option(function: F) -> F:
    """``--queue URL`` (env ``MIDPROBE_QUEUE_URL``): ``sqlite:///path.db`` or ``postgresql://...``."""
    return click.option(
        "--queue",
        "queue_url",
        envvar="MIDPROBE_QUEUE_URL",
        default=DEFAULT_QUEUE_URL,
        show_default=True,
        metavar="URL",
        help="ECC queue: sqlite:///path.db (embedded) or postgresql://user@host/db (env MIDPROBE_QUEUE_URL).",
    )(function)
