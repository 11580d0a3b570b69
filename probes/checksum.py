"""The Internet checksum of RFC 1071 (pure): the sweep's ICMP echo requests and the syn engine's
TCP segments sum their 16-bit words with it; a sum of the words that never change can be kept and
the changing ones added to it before the fold."""

from __future__ import annotations

import struct

__all__ = ["fold", "internet_checksum", "word_sum"]


def word_sum(data: bytes) -> int:
    """The sum of ``data``'s 16-bit big-endian words (odd lengths padded with a zero byte), not folded."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    return total


def fold(total: int) -> int:
    """A sum of words folded to 16 bits (carries added back in), in ones' complement: the checksum."""
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def internet_checksum(data: bytes) -> int:
    """The 16-bit ones' complement sum of RFC 1071 (odd lengths padded with a zero byte)."""
    return fold(word_sum(data))
