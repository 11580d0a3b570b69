"""Typed readers for ECC probe parameter values (whole numbers, booleans, choices), shared by every probe; pure.

Every bad value raises ``ProbeParameterError`` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from midprobe.capabilities.errors import ProbeParameterError

__all__ = ["parse_bool", "parse_choice", "parse_int"]

_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


def parse_int(parameters: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """The whole number ``parameters[name]`` within ``low..high``; ``default`` when absent or blank."""
    text = parameters.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ProbeParameterError(f"{text!r} is not a whole number", parameter=name) from None
    if not low <= value <= high:
        raise ProbeParameterError(f"{value} is outside {low}..{high}", parameter=name)
    return value


def parse_bool(parameters: Mapping[str, str], name: str, default: bool) -> bool:
    """``true``/``false`` (also yes/no, on/off, 1/0, any case); ``default`` when absent or blank."""
    text = parameters.get(name, "").strip().lower()
    if not text:
        return default
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ProbeParameterError(f"{text!r} is not true or false", parameter=name)


def parse_choice(parameters: Mapping[str, str], name: str, default: str, choices: Sequence[str]) -> str:
    """One of ``choices`` (case-insensitive); ``default`` when absent or blank."""
    text = parameters.get(name, "").strip().lower()
    if not text:
        return default
    if text not in choices:
        raise ProbeParameterError(f"{text!r} is not one of {', '.join(choices)}", parameter=name)
    return text
