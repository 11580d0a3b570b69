"""The bounded fan-out: at most N at once, results as they finish, back-pressure, clean exits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from midprobe.probes.fanout import fan_out


async def _numbers(count: int, pulled: list[int]) -> AsyncIterator[int]:
    for number in range(count):
        pulled.append(number)
        yield number


def test_no_more_than_the_limit_run_at_once_and_every_item_is_done() -> None:
    running = 0
    most = 0

    async def work(number: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        running -= 1
        return number * 10

    async def run() -> list[int]:
        return [result async for result in fan_out(_numbers(50, []), work, 4)]

    results = asyncio.run(run())
    assert sorted(results) == [number * 10 for number in range(50)]
    assert most == 4


def test_a_result_is_handed_on_while_the_producer_still_waits() -> None:
    async def run() -> tuple[int, bool]:
        release = asyncio.Event()

        async def items() -> AsyncIterator[int]:
            yield 1
            await release.wait()  # a scan still busy with silent addresses
            yield 2

        async def work(number: int) -> int:
            return number

        results = fan_out(items(), work, 8)
        first = await anext(results)
        waiting = not release.is_set()
        release.set()
        rest = [result async for result in results]
        assert rest == [2]
        return first, waiting

    assert asyncio.run(run()) == (1, True)


def test_results_come_in_the_order_they_finish() -> None:
    async def run() -> list[str]:
        gates = {name: asyncio.Event() for name in ("slow", "fast")}

        async def items() -> AsyncIterator[str]:
            for name in gates:
                yield name

        async def work(name: str) -> str:
            await gates[name].wait()
            return name

        results = fan_out(items(), work, 2)
        gates["fast"].set()
        first = await anext(results)
        gates["slow"].set()
        return [first, *[result async for result in results]]

    assert asyncio.run(run()) == ["fast", "slow"]


def test_a_slow_consumer_holds_the_producer_back() -> None:
    pulled: list[int] = []

    async def work(number: int) -> int:
        return number

    async def run() -> None:
        results = fan_out(_numbers(10_000, pulled), work, 3)
        try:
            await anext(results)
            for _ in range(20):
                await asyncio.sleep(0)  # the consumer does something else; nothing more is pulled
        finally:
            await results.aclose()

    asyncio.run(run())
    # Three running, one more for the slot the taken result freed, one in hand waiting for a slot.
    assert len(pulled) <= 3 + 1 + 1


def test_leaving_early_cancels_the_running_work_and_closes_the_items() -> None:
    cancelled: list[int] = []
    closed = False

    async def items() -> AsyncIterator[int]:
        nonlocal closed
        try:
            for number in range(100):
                yield number
        finally:
            closed = True

    async def work(number: int) -> int:
        if number == 0:
            return 0
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(number)
            raise
        return number

    async def run() -> None:
        async for _ in fan_out(items(), work, 3):
            break

    asyncio.run(run())
    assert sorted(cancelled) == [1, 2]
    assert closed


def test_an_error_in_the_work_ends_the_stream_with_that_error() -> None:
    async def work(number: int) -> int:
        if number == 3:
            raise LookupError("host 3 broke")
        return number

    async def run() -> list[int]:
        return [result async for result in fan_out(_numbers(10, []), work, 1)]

    with pytest.raises(LookupError, match="host 3 broke"):
        asyncio.run(run())


def test_a_limit_below_one_is_refused() -> None:
    async def work(number: int) -> int:
        return number

    async def run() -> None:
        async for _ in fan_out(_numbers(1, []), work, 0):
            pass

    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(run())
