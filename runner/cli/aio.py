"""Running a command's coroutine to its end on a fresh event loop, and taking its value back.

``asyncio.run(main())`` costs a ``repr`` of ``main()``'s value when it ends: it puts the SIGINT
handler back with ``signal.signal``, which looks the old handler (a partial holding the main task)
up among ``signal.Handlers`` and, not finding it, formats a ``ValueError`` with the task's repr, its
result included. For a sweep of a /16 that is 65,536 hosts written out and thrown away (about 0.2 s).
:func:`run` keeps the value out of the task, so nothing big is formatted.

With ``stop_on_sigterm`` (``midprobe scan`` and ``sweep``), SIGTERM stops the command as Ctrl-C
does: the coroutine is cancelled, so what it prints on the way out (the summary, the "interrupted"
line, a closed ECC document) is printed, then ``main.Terminated`` is raised (exit status 143), where
the default action would end the process at once with nothing said.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

from midprobe.runner.cli.main import Terminated

__all__ = ["run"]

T = TypeVar("T")


class _OnSigterm:
    """SIGTERM's handler while the command runs: cancel its coroutine on the loop."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.signalled = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signalled = True
        if self.task is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)  # also wakes a loop waiting in epoll


def run(main: Coroutine[Any, Any, T], *, stop_on_sigterm: bool = False) -> T:
    """``asyncio.run(main)``, returning ``main``'s value (or raising its exception); with
    ``stop_on_sigterm`` (from the main thread), SIGTERM cancels it and raises ``Terminated``."""
    kept: list[T] = []
    on_sigterm = _OnSigterm()

    async def holding() -> None:
        on_sigterm.task = asyncio.current_task()
        on_sigterm.loop = asyncio.get_running_loop()
        if on_sigterm.signalled:  # it came before the loop ran
            main.close()
            raise asyncio.CancelledError
        kept.append(await main)

    if not stop_on_sigterm or threading.current_thread() is not threading.main_thread():
        asyncio.run(holding())
        return kept[0]
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        asyncio.run(holding())
    except asyncio.CancelledError:
        if on_sigterm.signalled:
            raise Terminated("terminated") from None
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return kept[0]
