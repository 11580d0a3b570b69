"""A command's coroutine runs to its end and gives its value back without that value being formatted."""

from __future__ import annotations

import pytest

from midprobe.runner.cli import aio


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
