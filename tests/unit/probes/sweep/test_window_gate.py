"""The congestion window of the ICMPv6 and TCP-connect sweeps: how many probes their workers may have out."""

from __future__ import annotations

import asyncio

from midprobe.probes.sweep.common import WindowGate


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_full_window_holds_the_next_probe_until_one_is_given_back() -> None:
    async def run() -> list[str]:
        gate = WindowGate(32, hold=0.1)
        for _ in range(32):
            await gate.take(1)
        events: list[str] = []

        async def waiter() -> None:
            await gate.take(1)
            events.append("33rd out")

        task = asyncio.create_task(waiter())
        for _ in range(3):  # however many turns the loop takes, the window stays full
            await asyncio.sleep(0)
        events.append("still held")
        gate.give_back(1, answered=True, retry=False)
        await task
        return events

    assert asyncio.run(run()) == ["still held", "33rd out"]


def test_an_answered_retry_halves_the_window_and_answers_grow_it_back() -> None:
    async def run() -> tuple[int, int, int]:
        clock = _Clock()
        gate = WindowGate(256, hold=0.1, clock=clock)
        await gate.take(1)
        gate.give_back(1, answered=True, retry=True)  # the first probe or its answer was lost
        cut = gate.window.size
        clock.now = 1.0
        for _ in range(200):
            await gate.take(1)
            gate.give_back(1, answered=True, retry=False)
        return cut, gate.window.size, gate.window.cuts

    cut, grown, cuts = asyncio.run(run())
    assert (cut, cuts) == (128, 1)
    assert grown > cut


def test_silence_is_no_loss_and_a_refused_send_is_one() -> None:
    async def run() -> tuple[int, int]:
        gate = WindowGate(256, hold=0.1)
        for _ in range(100):
            await gate.take(1)
            gate.give_back(1, answered=False, retry=True)  # nobody there: no sign of congestion
        silent = gate.window.size
        gate.refused()
        return silent, gate.window.size

    assert asyncio.run(run()) == (256, 128)


def test_an_attempt_wider_than_the_window_still_goes_when_nothing_is_out() -> None:
    async def run() -> int:
        gate = WindowGate(4, hold=0.1)
        await asyncio.wait_for(gate.take(6), 5)  # a TCP knock on 6 ports, a window of 4: alone
        return gate.in_flight

    assert asyncio.run(run()) == 6
