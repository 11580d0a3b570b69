"""Concurrency limits of probe runs: a pool, a topic and a target slot held together, given back together."""

from __future__ import annotations

import asyncio

from midprobe.runner.agent.limits import ConcurrencyLimits, PoolSizes

#: Only a failure guard (a slot never given back), never a bound the code is held to.
NEVER_SECONDS = 10.0


def test_a_run_cancelled_while_waiting_for_its_target_gives_back_its_pool_and_topic_slots() -> None:
    limits = ConcurrencyLimits(pools=PoolSizes(interactive=1, expedited=1, standard=1), per_target=1)

    async def scenario() -> tuple[int, int]:
        holding, release = asyncio.Event(), asyncio.Event()

        async def hold(priority: int, topic: str, target: str) -> None:
            async with limits.slot(priority, topic, target):
                holding.set()
                await release.wait()

        first = asyncio.create_task(hold(2, "A", "198.18.0.1"))
        await holding.wait()
        holding.clear()
        # The expedited pool and topic B are free; the target is not: this run waits for it.
        waiting = asyncio.create_task(hold(1, "B", "198.18.0.1"))
        while not waiting.done() and limits._targets.holders("198.18.0.1") < 2:  # noqa: ASYNC110 - waits for state
            await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        target_holders = limits._targets.holders("198.18.0.1")

        # Had the cancelled run kept its expedited or topic B slot, this would wait for ever.
        other = asyncio.create_task(hold(1, "B", "198.18.0.2"))
        await asyncio.wait_for(holding.wait(), NEVER_SECONDS)
        release.set()
        await asyncio.gather(first, other)
        return target_holders, len(limits._targets)

    assert asyncio.run(scenario()) == (1, 0)


def test_slots_are_given_back_in_reverse_when_the_run_fails() -> None:
    limits = ConcurrencyLimits(pools=PoolSizes(interactive=1, expedited=1, standard=1), per_target=1)

    async def scenario() -> None:
        for _ in range(3):  # each failing run gives back every slot, so the next one gets them
            try:
                async with asyncio.timeout(NEVER_SECONDS), limits.slot(2, "A", "198.18.0.1"):
                    raise RuntimeError("probe failed")
            except RuntimeError:
                pass

    asyncio.run(scenario())
    assert len(limits._targets) == 0
