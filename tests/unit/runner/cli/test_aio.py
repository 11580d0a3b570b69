"""A command's coroutine runs to its end and gives its value back without that value being formatted."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from midprobe.runner.cli import aio
from midprobe.runner.cli.main import Terminated


class _Big:
    """A result whose repr would be costly (a sweep of a /16): counted, so formatting it shows."""

    formatted = 0

    def __repr__(self) -> str:
        _Big.formatted += 1
        return "big"


def test_the_value_comes_back_and_is_never_formatted() -> None:
    value = _Big()

    async def main() -> _Big:
        return value

    _Big.formatted = 0
    assert aio.run(main()) is value
    assert _Big.formatted == 0  # asyncio.run(main()) formats it once, putting SIGINT's handler back


def test_the_coroutine_s_error_is_raised() -> None:
    async def main() -> None:
        raise LookupError("no such host")

    with pytest.raises(LookupError, match="no such host"):
        aio.run(main())


def test_sigterm_cancels_the_coroutine_which_finishes_then_terminated_is_raised() -> None:
    said: list[str] = []

    async def main() -> None:
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)
        try:
            await asyncio.Event().wait()  # until stopped
        finally:
            said.append("summary")  # what a scan prints on its way out

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        aio.run(main(), stop_on_sigterm=True)
    assert said == ["summary"]
    assert signal.getsignal(signal.SIGTERM) is before  # the command's handler is gone with it


def test_a_coroutine_that_ends_by_itself_is_not_terminated() -> None:
    async def main() -> str:
        return "done"

    assert aio.run(main(), stop_on_sigterm=True) == "done"
