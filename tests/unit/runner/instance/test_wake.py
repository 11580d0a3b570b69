"""The long poll's wake-up: notified waiters end at once, a check can end them, the bound ends the rest."""

from __future__ import annotations

import asyncio
import itertools
import threading

from midprobe.runner.instance.wake import WorkSignal


def test_a_notify_from_another_thread_wakes_every_waiter() -> None:
    signal = WorkSignal(check_seconds=3600)

    async def never() -> bool:
        return False

    async def main() -> list[bool]:
        waiters = [asyncio.create_task(signal.wait(3600, never)) for _ in range(3)]
        await asyncio.sleep(0)  # let them register
        notifier = threading.Thread(target=signal.notify)
        notifier.start()
        notifier.join()
        return list(await asyncio.gather(*waiters))

    assert asyncio.run(main()) == [True, True, True]
    assert signal.version == 1


def test_the_periodic_check_ends_a_wait_when_it_sees_work() -> None:
    looks = itertools.count(1)

    async def third_look_finds_work() -> bool:
        return next(looks) >= 3

    assert asyncio.run(WorkSignal(check_seconds=0.01).wait(3600, third_look_finds_work)) is True
    assert next(looks) == 4


def test_without_news_the_wait_ends_at_its_bound() -> None:
    ticks = itertools.count(0.0, 0.5)  # every look at the clock is half a second later
    signal = WorkSignal(check_seconds=0.001, clock=lambda: next(ticks))
    looked: list[bool] = []

    async def nothing() -> bool:
        looked.append(True)
        return False

    assert asyncio.run(signal.wait(2.0, nothing)) is False
    assert 1 <= len(looked) <= 4
