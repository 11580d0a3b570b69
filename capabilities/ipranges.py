"""MID server IP ranges: ``ALL``, CIDR blocks, ``first-last`` ranges and single addresses (IPv4 and IPv6).

Parsing is pure; a range is stored as two integers so containment is two comparisons.
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass

from midprobe.capabilities.errors import TargetSpecError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The range text that stands for every address, IPv4 and IPv6.
ALL_ADDRESSES = "ALL"


def parse_address(text: str) -> IPAddress:
    """One IPv4 or IPv6 address; an IPv4-mapped IPv6 address (``::ffff:10.0.0.1``) becomes IPv4."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise TargetSpecError(f"{text!r} is not an IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class IPRange:
    """A contiguous block of addresses of one IP version, or every address (``ALL``).

    ``text`` keeps the spelling the user wrote, for messages; ``version`` is ``None`` only for ``ALL``.
    """

    text: str
    version: int | None
    first: int
    last: int

    @classmethod
    def parse(cls, text: str) -> IPRange:
        """Parse ``ALL``, ``10.0.0.0/8``, ``192.168.1.10-192.168.1.50``, ``2001:db8::/32`` or one address."""
        if not isinstance(text, str) or not text.strip():
            raise TargetSpecError(f"an IP range must be a non-empty string, got {text!r}")
        spec = text.strip()
        if spec.upper() == ALL_ADDRESSES:
            return cls(ALL_ADDRESSES, None, 0, 0)
        if "/" in spec:
            try:
                network = ipaddress.ip_network(spec, strict=True)
            except ValueError as error:
                hint = ""
                with contextlib.suppress(ValueError):
                    hint = f" (did you mean {ipaddress.ip_network(spec, strict=False)}?)"
                raise TargetSpecError(f"{text!r} is not a valid CIDR block: {error}{hint}") from None
            return cls(spec, network.version, int(network.network_address), int(network.broadcast_address))
        if "-" in spec:
            first_text, _, last_text = spec.partition("-")
            try:
                first, last = parse_address(first_text), parse_address(last_text)
            except TargetSpecError:
                raise TargetSpecError(
                    f"{text!r} is not a valid range (expected FIRST-LAST, two addresses of the same IP version)"
                ) from None
            if first.version != last.version:
                raise TargetSpecError(f"{text!r} mixes IPv{first.version} and IPv{last.version} addresses")
            if int(first) > int(last):
                raise TargetSpecError(f"{text!r} is empty: {first} comes after {last}")
            return cls(spec, first.version, int(first), int(last))
        address = parse_address(spec)
        return cls(spec, address.version, int(address), int(address))

    @property
    def is_all(self) -> bool:
        return self.version is None

    def contains(self, address: IPAddress) -> bool:
        if self.version is None:
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.version == self.version and self.first <= int(address) <= self.last

    def __str__(self) -> str:
        return self.text


def first_containing(ranges: tuple[IPRange, ...], address: IPAddress) -> IPRange | None:
    """The first of ``ranges`` that holds ``address``, or ``None``."""
    return next((candidate for candidate in ranges if candidate.contains(address)), None)


__all__ = ["ALL_ADDRESSES", "IPAddress", "IPRange", "first_containing", "parse_address"]
