"""Connection slots of the SSH layer and the ``KeyedLimiter`` behind them (also the runner's)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

import pytest

from midprobe.capabilities.errors import ProbeTimeout, ReadTimeout
from midprobe.probes.concurrency import KeyedLimiter
from midprobe.probes.ssh.pool import MAX_CONNECTIONS_PER_HOST, ConnectionLimits, Deadline, in_pool


async def settle() -> None:
    """Let every runnable task run until it blocks (a bounded number of loop turns, no sleeping)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def hold(
    enter: Callable[[], contextlib.AbstractAsyncContextManager[None]],
    inside: set[int],
    number: int,
    release: asyncio.Event,
) -> None:
    async with enter():
        inside.add(number)
        await release.wait()
        inside.discard(number)


def test_a_key_admits_its_limit_and_the_next_holder_waits() -> None:
    async def main() -> None:
        limiter: KeyedLimiter[str] = KeyedLimiter(2)
        inside: set[int] = set()
        release = asyncio.Event()
        tasks = [asyncio.create_task(hold(lambda: limiter.slot("a"), inside, n, release)) for n in range(3)]
        other = asyncio.create_task(hold(lambda: limiter.slot("b"), inside, 9, release))
        await settle()
        assert inside == {0, 1, 9}  # the third on "a" waits; "b" has its own slots
        assert limiter.holders("a") == 3
        release.set()
        await asyncio.gather(*tasks, other)
        assert inside == set()

    asyncio.run(main())


def test_an_idle_key_is_forgotten() -> None:
    async def main() -> None:
        limiter: KeyedLimiter[tuple[str, int]] = KeyedLimiter(1)
        for last in range(256):
            async with limiter.slot(("198.18.0.1", last)):
                assert len(limiter) == 1
        assert len(limiter) == 0
        assert limiter.holders(("198.18.0.1", 0)) == 0

    asyncio.run(main())


def test_the_limit_may_depend_on_the_key() -> None:
    async def main() -> None:
        limiter: KeyedLimiter[str] = KeyedLimiter(lambda key: 1 if key == "SSHCommand" else 3)
        inside: set[int] = set()
        release = asyncio.Event()
        tasks = [
            asyncio.create_task(hold(lambda: limiter.slot("SSHCommand"), inside, n, release))
            for n in range(2)
        ]
        tasks += [
            asyncio.create_task(hold(lambda: limiter.slot("SNMP"), inside, 10 + n, release)) for n in range(4)
        ]
        await settle()
        assert inside == {0, 10, 11, 12}
        release.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_seven_connections_per_host_and_the_eighth_waits() -> None:
    assert MAX_CONNECTIONS_PER_HOST == 7

    async def main() -> None:
        limits = ConnectionLimits()
        inside: set[int] = set()
        release = asyncio.Event()
        tasks = [
            asyncio.create_task(hold(lambda: limits.slot("198.18.0.10", 22), inside, n, release))
            for n in range(MAX_CONNECTIONS_PER_HOST + 1)
        ]
        elsewhere = asyncio.create_task(hold(lambda: limits.slot("198.18.0.11", 22), inside, 99, release))
        await settle()
        assert len(inside - {99}) == MAX_CONNECTIONS_PER_HOST
        assert 99 in inside
        release.set()
        await asyncio.gather(*tasks, elsewhere)
        assert len(limits.per_host) == 0

    asyncio.run(main())


def test_a_pool_call_past_its_limit_is_aborted_and_a_read_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backstop: the loop stops waiting after limit + grace, and the abort unblocks the thread."""
    monkeypatch.setattr("midprobe.probes.ssh.pool.GRACE_S", 0.0)
    unblock = threading.Event()
    aborted: list[bool] = []

    def abort() -> None:
        aborted.append(True)
        unblock.set()

    async def main() -> None:
        with pytest.raises(ReadTimeout, match=r"^SSH authentication timed out after 0\.05 s"):
            await in_pool(lambda: unblock.wait(30), what="SSH authentication", limit=0.05, abort=abort)

    asyncio.run(main())
    assert aborted == [True]


def test_a_spent_deadline_refuses_the_next_step() -> None:
    deadline = Deadline(0.0, 12.0)  # long past on the monotonic clock
    with pytest.raises(ProbeTimeout):
        deadline.step(15.0, "SSH handshake with 198.18.0.10:22")
