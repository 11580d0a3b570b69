"""Text for the terminal: what came from devices or records is printed with its control characters escaped."""

from __future__ import annotations

import re

# Characters a terminal may act on (C0 and C1 controls, DEL start escape sequences) and
# lone surrogates; ``keep`` lets multi-line text (a payload) keep its line breaks and tabs.
_UNSAFE_FOR_TERMINAL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def shown(text: str, *, keep: str = "") -> str:
    """``text`` safe to print: every control character written as ``\\xNN`` (or ``\\uNNNN``)."""

    def escaped(match: re.Match[str]) -> str:
        character = match.group()
        if character in keep:
            return character
        code = ord(character)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNSAFE_FOR_TERMINAL.sub(escaped, text)


def printable(value: object) -> str:
    """Any value as terminal-safe text (``None`` as empty)."""
    return shown("" if value is None else str(value))


__all__ = ["printable", "shown"]
