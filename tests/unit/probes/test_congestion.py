"""The congestion window the probe engines share: grows while answers come, halves on a loss (once
per hold time), stays within its bounds. Time is an injected clock: no sleeps."""

from __future__ import annotations

import pytest

from midprobe.capabilities.errors import ProbeParameterError
from midprobe.probes.congestion import CongestionWindow, WindowSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def window(
    initial: int = 64, minimum: int = 8, maximum: int = 1024, hold: float = 0.1
) -> tuple[CongestionWindow, Clock]:
    clock = Clock()
    return CongestionWindow(WindowSettings(initial, minimum, maximum, hold), clock=clock), clock


def test_slow_start_adds_one_probe_per_answer_up_to_the_maximum() -> None:
    cwnd, _ = window()
    assert cwnd.size == 64
    assert cwnd.room(60) == 4
    assert cwnd.room(100) == 0
    cwnd.answered(64)
    assert cwnd.size == 128
    cwnd.answered(10_000)
    assert cwnd.size == 1024  # never past the engine's cap


def test_a_loss_halves_the_window_and_later_growth_is_linear() -> None:
    cwnd, _ = window()
    cwnd.answered(192)  # 256
    assert cwnd.lost(in_flight=200)
    assert cwnd.size == 128
    assert cwnd.ssthresh == 100  # half of what was out
    cwnd.answered(0)
    assert cwnd.size == 128
    cwnd.answered(128)  # above the threshold now: one probe more per window's worth of answers
    assert cwnd.size == 129
    cwnd.answered(1290)
    assert 135 < cwnd.size < 145  # about 1290 / 130 more, not 1290


def test_losses_of_one_burst_cut_once_then_again_after_the_hold() -> None:
    cwnd, clock = window(initial=512)
    assert cwnd.lost(in_flight=512)
    assert not cwnd.lost(in_flight=256)  # the same round trip's losses
    assert cwnd.size == 256
    clock.now += 0.05
    assert not cwnd.lost(in_flight=256)
    clock.now += 0.06
    assert cwnd.lost(in_flight=256)
    assert (cwnd.size, cwnd.cuts) == (128, 2)


def test_answers_stopping_shrink_it_to_the_minimum_and_it_recovers() -> None:
    cwnd, clock = window()
    for _ in range(20):
        cwnd.lost(in_flight=cwnd.size)
        clock.now += 1
    assert cwnd.size == 8  # never below: the scan still makes progress
    assert cwnd.room(0) == 8
    cwnd.answered(100)
    assert cwnd.size > 8


@pytest.mark.parametrize(
    ("settings", "parameter"),
    [
        ((64, 0, 1024, 0.1), "minimum"),
        ((4, 8, 1024, 0.1), "initial"),
        ((64, 8, 32, 0.1), "initial"),
        ((64, 8, 1024, -1.0), "hold"),
    ],
)
def test_bad_settings_are_parameter_errors(settings: tuple[int, int, int, float], parameter: str) -> None:
    with pytest.raises(ProbeParameterError) as caught:
        WindowSettings(*settings)
    assert caught.value.parameter == parameter
