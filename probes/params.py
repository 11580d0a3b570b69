"""Typed readers for ECC probe parameter values (whole numbers, booleans, choices), shared by every probe; pure.

Every bad value raises ``ProbeParameterError`` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from midprobe.capabilities.errors import ProbeParameterError

__all__ = ["ReadTracker", "parse_bool", "parse_choice", "parse_int"]

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


class ReadTracker(Mapping[str, str]):
    """Parameters that remember which names a parser asked for (``get``, ``[]``, ``in``).

    A probe's parser ignores names it does not know (a ServiceNow request echoes fields besides the
    probe's parameters); handing it a tracker tells which given names it never looked at, so a caller
    that writes the request (``midprobe ecc enqueue``) can refuse ``port=22`` meant as ``ports``.
    A parser that iterates the parameters has looked at all of them.
    """

    def __init__(self, parameters: Mapping[str, str]) -> None:
        self._parameters = dict(parameters)
        self.asked: set[str] = set()
        self.iterated = False

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self._parameters[name]

    def __iter__(self) -> Iterator[str]:
        self.iterated = True
        return iter(self._parameters)

    def __len__(self) -> int:
        return len(self._parameters)

    def unread(self) -> list[str]:
        """The given names the parser never asked for, in the order given."""
        if self.iterated:
            return []
        return [name for name in self._parameters if name not in self.asked]
