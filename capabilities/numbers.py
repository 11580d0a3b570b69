"""One reader for every number a user types: finite, in range, ASCII digits, errors naming the field.

The config loaders and the CLI's option types both call :func:`read_number`, so ``nan``, ``inf``,
``1e400``, ``²`` and values that would make a loop spin are refused alike wherever they come from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from midprobe.capabilities.errors import ConfigError

#: Plain ASCII decimal notation; ``int()``/``float()`` also accept other scripts' digits and ``_``.
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class NumberRange:
    """The accepted values of one setting: an integer or a finite number within ``[minimum, maximum]``.

    ``exclusive_minimum`` makes the lower bound itself refused (``> 0`` rather than ``>= 0``).
    """

    minimum: float
    maximum: float
    integer: bool = False
    exclusive_minimum: bool = False

    def describe(self) -> str:
        low = (
            f"more than {_show(self.minimum)}"
            if self.exclusive_minimum
            else f"at least {_show(self.minimum)}"
        )
        kind = "an integer" if self.integer else "a number"
        return f"must be {kind}, {low} and at most {_show(self.maximum)}"


def _show(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def read_number(raw: object, limits: NumberRange, *, field: str | None, source: str | None = None) -> float:
    """``raw`` (a string, int or float) as a number within ``limits``, or a ConfigError naming ``field``.

    Returns an ``int`` when ``limits.integer``. Booleans, NaN, infinities and non-ASCII digits are refused;
    the message never echoes the value beyond a short plain-ASCII rendering.
    """
    value: float
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise ConfigError(f"{limits.describe()} (got a {type(raw).__name__})", source=source, field=field)
    if isinstance(raw, str):
        text = raw.strip()
        pattern = _INTEGER if limits.integer else _DECIMAL
        if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise ConfigError(f"{limits.describe()} (not a finite number)", source=source, field=field)
        if len(text) > 40 or pattern.fullmatch(text) is None:
            raise ConfigError(f"{limits.describe()} (not a plain decimal number)", source=source, field=field)
        value = int(text) if limits.integer else float(text)
    elif isinstance(raw, float) and limits.integer:
        if not (math.isfinite(raw) and raw.is_integer()):
            raise ConfigError(f"{limits.describe()} (not an integer)", source=source, field=field)
        value = int(raw)
    else:
        value = raw
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{limits.describe()} (not a finite number)", source=source, field=field)
    too_low = value <= limits.minimum if limits.exclusive_minimum else value < limits.minimum
    if too_low or value > limits.maximum:
        shown = str(value) if len(str(value)) <= 24 else "a value out of range"
        raise ConfigError(f"{limits.describe()}, got {shown}", source=source, field=field)
    return value
