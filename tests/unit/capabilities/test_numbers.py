"""The one number reader: finite, in range, plain ASCII decimals, errors that name the field."""

from __future__ import annotations

import pytest

from midprobe.capabilities.errors import ConfigError
from midprobe.capabilities.numbers import NumberRange, read_number

SECONDS = NumberRange(1.0, 60.0)
COUNT = NumberRange(0, 10, integer=True)


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", 1.0), (" 60 ", 60.0), ("1.5e1", 15.0), (".5e1", 5.0), (2, 2), (7.25, 7.25)]
)
def test_accepts_plain_numbers_within_the_bounds(raw: object, expected: float) -> None:
    assert read_number(raw, SECONDS, field="lease") == expected


@pytest.mark.parametrize(
    "raw",
    [
        "nan",
        "inf",
        "-inf",
        "1e400",
        float("nan"),
        float("inf"),
        "0.999",
        "60.001",
        "²",
        "٣",
        "1_0",
        "0x1",
        "",
        True,
        [1],
        None,
    ],
)
def test_refuses_with_the_field_and_no_newline(raw: object) -> None:
    with pytest.raises(ConfigError) as raised:
        read_number(raw, SECONDS, field="lease", source="agent.toml")
    assert str(raised.value).startswith("agent.toml: lease: must be a number, at least 1 and at most 60")
    assert "\n" not in str(raised.value)


def test_integers_are_integers() -> None:
    assert read_number("10", COUNT, field="n") == 10
    assert isinstance(read_number(3.0, COUNT, field="n"), int)
    for raw in ("1.5", 1.5, "11", "-1", "1e1", "9" * 5000):
        with pytest.raises(ConfigError, match=r"^n: must be an integer"):
            read_number(raw, COUNT, field="n")


def test_an_exclusive_minimum_refuses_the_bound_itself() -> None:
    positive = NumberRange(0.0, 1.0, exclusive_minimum=True)
    assert read_number("0.001", positive, field="x") == 0.001
    with pytest.raises(ConfigError, match="more than 0"):
        read_number("0", positive, field="x")
