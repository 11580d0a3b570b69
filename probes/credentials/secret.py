"""``Secret``: a string that never shows itself in a repr, a log line, a pickle or a payload.

The value comes out only through :meth:`Secret.reveal`, at the one place that
hands it to a library (paramiko, pysnmp).
"""

from __future__ import annotations

import hmac
from typing import Any, NoReturn

REDACTED = "********"


class Secret:
    """An immutable secret string whose ``str``/``repr``/``format`` are redacted."""

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret wraps a str")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The secret value itself; call it only where a library needs it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return format(REDACTED, format_spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("a Secret is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("a Secret is immutable")

    # Immutable, so copies may share it; refusing to pickle keeps it out of queues and caches.
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is never pickled or serialised")
