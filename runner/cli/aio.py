"""Running a command's coroutine to its end on a fresh event loop, and taking its value back.

``asyncio.run(main())`` costs a ``repr`` of ``main()``'s value when it ends: it puts the SIGINT
handler back with ``signal.signal``, which looks the old handler (a partial holding the main task)
up among ``signal.Handlers`` and, not finding it, formats a ``ValueError`` with the task's repr, its
result included. For a sweep of a /16 that is 65,536 hosts written out and thrown away (about 0.2 s).
:func:`run` keeps the value out of the task, so nothing big is formatted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run"]

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, returning ``main``'s value (or raising its exception)."""
    kept: list[T] = []

    async def holding() -> None:
        kept.append(await main)

    asyncio.run(holding())
    return kept[0]
