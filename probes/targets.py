"""Target specifications in nmap syntax: parse (pure), count without expanding, and stream addresses.

Accepted tokens (separated by white space or commas): ``198.18.0.10``, ``2001:db8::1``, CIDR
``198.18.0.0/24`` (host bits ignored, as nmap does), octet ranges ``198.18.0.1-20``,
``198.18.1-3.1-254``, ``198.18.0.1,5,7`` and ``198.18.0.*``, full ranges ``198.18.0.1-198.18.1.9``
(IPv6 too), host names (``linux1.lab.example.test``, ``linux1/30``). Host names are resolved by the
caller through an injectable function (:meth:`TargetSpec.resolved`), so parsing stays I/O-free.
Expansion is a generator: a /16 is never held in memory, and :meth:`TargetSpec.count` is exact
without expanding (the sets are kept as products of per-byte intervals, "boxes").
"""

from __future__ import annotations

import bisect
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from midprobe.capabilities.errors import TargetSpecError
from midprobe.probes.safety import IPAddress, IPNetwork

__all__ = [
    "IPAddress",
    "Resolver",
    "Target",
    "TargetSpec",
    "as_blocks",
    "parse_targets",
    "system_resolver",
]

#: Resolves one host name to one address (raise ``TargetSpecError`` when it cannot).
Resolver = Callable[[str], IPAddress]

Interval = tuple[int, int]
ByteSet = tuple[Interval, ...]  # sorted, disjoint, inclusive intervals inside 0..255

_FULL_BYTE: ByteSet = ((0, 255),)
_OCTET_CHARS = re.compile(r"^[0-9*,\-]+$")
_ADDRESS_CHARS = re.compile(r"^[0-9.,*\-/]+$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?$")


@dataclass(frozen=True)
class Target:
    """One address to probe, with the host name it was given as (``None`` for literal addresses)."""

    address: IPAddress
    host_name: str | None = None


# --- boxes: products of per-byte interval sets, for exact counting and policy checks ---------------


def _byteset_intersect(a: ByteSet, b: ByteSet) -> ByteSet:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _byteset_subtract(a: ByteSet, b: ByteSet) -> ByteSet:
    out: list[Interval] = []
    for lo, hi in a:
        current = lo
        for blo, bhi in b:
            if bhi < current or blo > hi:
                continue
            if blo > current:
                out.append((current, blo - 1))
            current = max(current, bhi + 1)
            if current > hi:
                break
        if current <= hi:
            out.append((current, hi))
    return tuple(out)


def _byteset_size(a: ByteSet) -> int:
    return sum(hi - lo + 1 for lo, hi in a)


def _byteset_values(a: ByteSet) -> Iterator[int]:
    for lo, hi in a:
        yield from range(lo, hi + 1)


def _byteset_normalise(intervals: Iterable[Interval]) -> ByteSet:
    merged: list[Interval] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)


@dataclass(frozen=True)
class _Box:
    """The set of addresses whose byte ``i`` lies in ``dims[i]``, for every byte."""

    dims: tuple[ByteSet, ...]

    def size(self) -> int:
        total = 1
        for dim in self.dims:
            total *= _byteset_size(dim)
        return total

    def first(self) -> int:
        value = 0
        for dim in self.dims:
            value = (value << 8) | dim[0][0]
        return value

    def subtract(self, other: _Box) -> list[_Box]:
        """``self`` minus ``other`` as disjoint boxes (at most one per byte)."""
        common = [_byteset_intersect(a, b) for a, b in zip(self.dims, other.dims, strict=True)]
        if not all(common):
            return [self]
        pieces: list[_Box] = []
        for index, dim in enumerate(self.dims):
            outside = _byteset_subtract(dim, other.dims[index])
            if outside:
                pieces.append(_Box((*common[:index], outside, *self.dims[index + 1 :])))
        return pieces


def _network_box(network: IPNetwork) -> _Box:
    nbytes = 4 if network.version == 4 else 16
    base = int(network.network_address).to_bytes(nbytes, "big")
    dims: list[ByteSet] = []
    for index, byte in enumerate(base):
        fixed_bits = min(8, max(0, network.prefixlen - 8 * index))
        mask = (0xFF << (8 - fixed_bits)) & 0xFF
        low = byte & mask
        dims.append(((low, low | (~mask & 0xFF)),))
    return _Box(tuple(dims))


def _interval_boxes(version: int, first: int, last: int) -> list[_Box]:
    factory = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    networks = ipaddress.summarize_address_range(factory(first), factory(last))
    return [_network_box(network) for network in networks]


def _subtract_all(boxes: list[_Box], removed: Sequence[_Box]) -> list[_Box]:
    for cut in removed:
        boxes = [piece for box in boxes for piece in box.subtract(cut)]
        if not boxes:
            break
    return boxes


# --- blocks: the parsed tokens ------------------------------------------------------------------------


def _address(version: int, value: int) -> IPAddress:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


@dataclass(frozen=True)
class _IntervalBlock:
    """A contiguous run of addresses: one address, a CIDR network or a full range."""

    text: str
    version: int
    first: int
    last: int
    host_name: str | None = None

    def size(self) -> int:
        return self.last - self.first + 1

    def contains(self, value: int) -> bool:
        return self.first <= value <= self.last

    def values(self) -> Iterator[int]:
        return iter(range(self.first, self.last + 1))

    def boxes(self) -> list[_Box]:
        return _interval_boxes(self.version, self.first, self.last)

    def bounds(self) -> Interval:
        return (self.first, self.last)


@dataclass(frozen=True)
class _OctetBlock:
    """An IPv4 octet-range expression such as ``10.0.1-3.1-254`` (a product of four byte sets)."""

    text: str
    octets: tuple[ByteSet, ByteSet, ByteSet, ByteSet]
    version: int = 4
    host_name: None = None

    def size(self) -> int:
        return _Box(self.octets).size()

    def contains(self, value: int) -> bool:
        for shift, octet in zip((24, 16, 8, 0), self.octets, strict=True):
            byte = (value >> shift) & 0xFF
            if not any(lo <= byte <= hi for lo, hi in octet):
                return False
        return True

    def values(self) -> Iterator[int]:
        a, b, c, d = self.octets
        last_values = list(_byteset_values(d))
        for first in _byteset_values(a):
            for second in _byteset_values(b):
                for third in _byteset_values(c):
                    prefix = (first << 24) | (second << 16) | (third << 8)
                    for fourth in last_values:
                        yield prefix | fourth

    def boxes(self) -> list[_Box]:
        return [_Box(self.octets)]

    def bounds(self) -> Interval:
        box = _Box(self.octets)
        high = 0
        for dim in self.octets:
            high = (high << 8) | dim[-1][1]
        return (box.first(), high)


@dataclass(frozen=True)
class _HostNameBlock:
    """A host name, optionally with a prefix length (``name/24``); resolved by the caller."""

    text: str
    name: str
    prefix: int | None


_AddressBlock = _IntervalBlock | _OctetBlock
_Block = _IntervalBlock | _OctetBlock | _HostNameBlock


# --- counting: sorted runs of addresses ------------------------------------------------------------

#: An octet expression with more runs than this is counted by box arithmetic instead.
_MAX_OCTET_RUNS = 1 << 16


def _runs(block: _AddressBlock) -> Iterator[Interval]:
    """The block's addresses as inclusive runs (interval blocks: one; octet blocks: one per run of
    the last byte under each value of the first three)."""
    if isinstance(block, _IntervalBlock):
        yield (block.first, block.last)
        return
    a, b, c, d = block.octets
    for first in _byteset_values(a):
        for second in _byteset_values(b):
            for third in _byteset_values(c):
                prefix = (first << 24) | (second << 16) | (third << 8)
                for lo, hi in d:
                    yield (prefix | lo, prefix | hi)


def _run_count(block: _AddressBlock) -> int:
    if isinstance(block, _IntervalBlock):
        return 1
    a, b, c, d = block.octets  # the runs _runs lists
    return _byteset_size(a) * _byteset_size(b) * _byteset_size(c) * len(d)


def _union_runs(blocks: Sequence[_AddressBlock]) -> list[Interval] | None:
    """The union of ``blocks`` as sorted disjoint runs, or ``None`` when an octet expression has too
    many runs to list."""
    if sum(_run_count(block) for block in blocks if isinstance(block, _OctetBlock)) > _MAX_OCTET_RUNS:
        return None
    return _merge(run for block in blocks for run in _runs(block))


def _merge(runs: Iterable[Interval]) -> list[Interval]:
    """``runs`` as sorted disjoint runs (overlapping and adjacent ones joined)."""
    merged: list[Interval] = []
    for lo, hi in sorted(runs):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def _runs_subtract(wanted: list[Interval], removed: list[Interval]) -> list[Interval]:
    """Sorted disjoint runs minus sorted disjoint runs, in one pass over both."""
    out: list[Interval] = []
    j = 0
    for lo, hi in wanted:
        while j < len(removed) and removed[j][1] < lo:
            j += 1
        current = lo
        k = j
        while k < len(removed) and removed[k][0] <= hi:
            if removed[k][0] > current:
                out.append((current, removed[k][0] - 1))
            current = max(current, removed[k][1] + 1)
            k += 1
        if current <= hi:
            out.append((current, hi))
    return out


def _runs_size(runs: Iterable[Interval]) -> int:
    return sum(hi - lo + 1 for lo, hi in runs)


def _box_count(targets: Sequence[_AddressBlock], excludes: Sequence[_AddressBlock]) -> int:
    """The count by box arithmetic: each target's boxes less the exclusions and earlier targets
    (quadratic in the number of tokens; for specs with huge octet expressions)."""
    excluded = [box for block in excludes for box in block.boxes()]
    earlier: list[_Box] = []
    total = 0
    for block in targets:
        boxes = block.boxes()
        total += sum(box.size() for box in _subtract_all(_subtract_all(boxes, excluded), earlier))
        earlier.extend(boxes)
    return total


def _first_outside_by_runs(
    targets: Sequence[_AddressBlock], excludes: Sequence[_AddressBlock], networks: Sequence[IPNetwork]
) -> tuple[bool, IPAddress | None]:
    """:meth:`TargetSpec.first_outside` by sorted runs: ``(True, answer)``, or ``(False, None)``
    when an octet expression has too many runs to list (the caller then uses boxes)."""
    octet_runs = sum(_run_count(b) for b in (*targets, *excludes) if isinstance(b, _OctetBlock))
    if octet_runs > _MAX_OCTET_RUNS:
        return False, None
    # Per family: what needs no checking (allowed, or excluded), as sorted disjoint runs.
    covered: dict[int, list[Interval]] = {}
    for version in (4, 6):
        runs = [(int(n.network_address), int(n.broadcast_address)) for n in networks if n.version == version]
        runs += [run for block in excludes if block.version == version for run in _runs(block)]
        covered[version] = _merge(runs)
    starts = {version: [lo for lo, _ in runs] for version, runs in covered.items()}
    ends = {version: [hi for _, hi in runs] for version, runs in covered.items()}
    for block in targets:
        own = _merge(_runs(block))
        low, high = own[0][0], own[-1][1]
        version = block.version
        first = bisect.bisect_left(ends[version], low)
        last = bisect.bisect_right(starts[version], high)
        outside = _runs_subtract(own, covered[version][first:last])
        if outside:
            return True, _address(version, outside[0][0])
    return True, None


class _Overlaps:
    """Which of a list of blocks have bounds meeting a given block's: the blocks sorted by lower
    bound with a running maximum of upper bounds, so a query walks back only over candidates
    (for disjoint blocks, none), not over the whole list."""

    def __init__(self, blocks: Sequence[_AddressBlock]) -> None:
        self._blocks = blocks
        self._sorted: dict[int, list[tuple[int, int, int]]] = {4: [], 6: []}
        for position, block in enumerate(blocks):
            low, high = block.bounds()
            self._sorted[block.version].append((low, high, position))
        self._lows: dict[int, list[int]] = {}
        self._reach: dict[int, list[int]] = {}
        for version, entries in self._sorted.items():
            entries.sort()
            self._lows[version] = [low for low, _, _ in entries]
            reach: list[int] = []
            for _, high, _ in entries:
                reach.append(max(high, reach[-1]) if reach else high)
            self._reach[version] = reach

    def meeting(self, block: _AddressBlock, *, before: int) -> list[_AddressBlock]:
        """Blocks at positions below ``before`` (other than ``block``'s) whose bounds meet ``block``'s."""
        low, high = block.bounds()
        entries = self._sorted[block.version]
        reach = self._reach[block.version]
        found: list[int] = []
        index = bisect.bisect_right(self._lows[block.version], high) - 1
        while index >= 0 and reach[index] >= low:
            other_low, other_high, position = entries[index]
            if position < before and other_high >= low and other_low <= high:
                found.append(position)
            index -= 1
        return [self._blocks[position] for position in sorted(found)]


# --- parsing ---------------------------------------------------------------------------------------


def _bad(token: str, why: str) -> TargetSpecError:
    return TargetSpecError(f"bad target {token!r}: {why}")


def _parse_octet(token: str, part: str) -> ByteSet:
    intervals: list[Interval] = []
    for item in part.split(","):
        if item in ("*", "-"):
            intervals.append((0, 255))
            continue
        if not item or not _OCTET_CHARS.match(item) or item.count("-") > 1 or "*" in item:
            raise _bad(token, f"octet {part!r} is not a number, range or '*'")
        low_text, dash, high_text = item.partition("-")
        try:
            low = int(low_text) if low_text else 0
            high = (int(high_text) if high_text else 255) if dash else low
        except ValueError:
            raise _bad(token, f"octet {part!r} is not a number, range or '*'") from None
        if low > 255 or high > 255:
            raise _bad(token, f"octet value in {part!r} is above 255")
        if low > high:
            raise _bad(token, f"octet range {item!r} runs backwards")
        intervals.append((low, high))
    return _byteset_normalise(intervals)


def _is_octet_expression(token: str) -> bool:
    parts = token.split(".")
    return len(parts) == 4 and all(part and _OCTET_CHARS.match(part) for part in parts)


def _interval(text: str, version: int, first: int, last: int) -> _IntervalBlock:
    return _IntervalBlock(text=text, version=version, first=first, last=last)


def _parse_cidr(token: str) -> _Block:
    left, _, right = token.partition("/")
    if not (right.isascii() and right.isdigit()):  # "²".isdigit() and int("٣") == 3: ASCII only
        raise _bad(token, f"prefix length {right!r} is not a number")
    prefix = int(right)
    try:
        address = ipaddress.ip_address(left)
    except ValueError:
        address = None
    if address is None:
        if _ADDRESS_CHARS.match(left):
            raise _bad(token, f"{left!r} is not an IP address")
        name = _check_host_name(token, left)
        if prefix > 32:
            raise _bad(token, f"prefix length /{prefix} is above /32")
        return _HostNameBlock(text=token, name=name, prefix=prefix)
    if prefix > address.max_prefixlen:
        raise _bad(token, f"prefix length /{prefix} is above /{address.max_prefixlen}")
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return _interval(token, network.version, int(network.network_address), int(network.broadcast_address))


def _check_host_name(token: str, name: str) -> str:
    candidate = name[:-1] if name.endswith(".") else name
    if not candidate or len(candidate) > 253:
        raise _bad(token, "not an address, range, network or host name")
    for label in candidate.split("."):
        if not _HOST_LABEL.match(label):
            raise _bad(token, f"host name label {label!r} is not valid")
    return candidate.lower()


def _parse_token(token: str) -> _Block:
    if "/" in token:
        return _parse_cidr(token)
    try:
        address = ipaddress.ip_address(token)
    except ValueError:
        pass
    else:
        return _interval(token, address.version, int(address), int(address))
    if token.count("-") == 1:
        left, _, right = token.partition("-")
        try:
            first, last = ipaddress.ip_address(left), ipaddress.ip_address(right)
        except ValueError:
            pass
        else:
            if first.version != last.version:
                raise _bad(token, "range mixes IPv4 and IPv6")
            if int(first) > int(last):
                raise _bad(token, "range runs backwards")
            return _interval(token, first.version, int(first), int(last))
    if ":" in token:
        raise _bad(token, "not a valid IPv6 address or range")
    if _is_octet_expression(token):
        a, b, c, d = (_parse_octet(token, part) for part in token.split("."))
        return _OctetBlock(text=token, octets=(a, b, c, d))
    if _ADDRESS_CHARS.match(token):
        raise _bad(token, "not an address, range or network")
    return _HostNameBlock(text=token, name=_check_host_name(token, token), prefix=None)


def _split(spec: str | Iterable[str]) -> Iterator[str]:
    texts = [spec] if isinstance(spec, str) else list(spec)
    words: list[str] = []
    for text in texts:
        words.extend(text.split())
    # ServiceNow ranges are often written with spaces round the dash: "a - b".
    index = 0
    while index < len(words):
        word = words[index]
        if index + 2 < len(words) and words[index + 1] == "-":
            word = f"{word}-{words[index + 2]}"
            index += 2
        index += 1
        word = word.strip(",")
        if not word:
            continue
        if "," in word and not _is_octet_expression(word):
            yield from (piece for piece in word.split(",") if piece)
        else:
            yield word


def _parse_blocks(spec: str | Iterable[str]) -> tuple[_Block, ...]:
    return tuple(_parse_token(token) for token in _split(spec))


def parse_targets(spec: str | Iterable[str], exclude: str | Iterable[str] = ()) -> TargetSpec:
    """Parse targets (and ``--exclude`` targets) in nmap syntax; pure, raises ``TargetSpecError``."""
    targets = _parse_blocks(spec)
    if not targets:
        raise TargetSpecError("no targets given")
    return TargetSpec(targets=targets, excludes=_parse_blocks(exclude))


def system_resolver(name: str) -> IPAddress:
    """Resolve ``name`` with the system resolver, IPv4 first (as nmap does without ``-6``)."""
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise TargetSpecError(f"cannot resolve host name {name!r}: {error}") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise TargetSpecError(f"cannot resolve host name {name!r}: no address")
    return min(addresses, key=lambda address: address.version)


# --- the specification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetSpec:
    """Parsed targets and exclusions; iterate it for :class:`Target` values, in the order given.

    An address listed twice (or covered by two tokens) is yielded once; excluded addresses never.
    Host names must be resolved first (:meth:`resolved`).
    """

    targets: tuple[_Block, ...]
    excludes: tuple[_Block, ...] = ()

    @property
    def host_names(self) -> tuple[str, ...]:
        """Host names (targets and exclusions) still waiting to be resolved."""
        return tuple(
            block.name for block in (*self.targets, *self.excludes) if isinstance(block, _HostNameBlock)
        )

    @property
    def named_targets(self) -> tuple[str, ...]:
        """The targets given as host names, as written (``name`` or ``name/24``), in order."""
        return tuple(block.text for block in self.targets if isinstance(block, _HostNameBlock))

    def addresses_only(self) -> TargetSpec:
        """A copy without the targets given as host names (those are resolved elsewhere)."""
        return replace(self, targets=tuple(b for b in self.targets if not isinstance(b, _HostNameBlock)))

    def resolved(self, resolve: Resolver) -> TargetSpec:
        """A copy with every host name replaced by the address ``resolve`` gives (its I/O, not ours)."""
        cache: dict[str, IPAddress] = {}

        def convert(block: _Block) -> _Block:
            if not isinstance(block, _HostNameBlock):
                return block
            if block.name not in cache:
                cache[block.name] = resolve(block.name)
            address = cache[block.name]
            if block.prefix is None:
                value = int(address)
                return _IntervalBlock(block.text, address.version, value, value, host_name=block.name)
            network = ipaddress.ip_network(f"{address}/{block.prefix}", strict=False)
            return _interval(
                block.text, network.version, int(network.network_address), int(network.broadcast_address)
            )

        return replace(
            self,
            targets=tuple(convert(b) for b in self.targets),
            excludes=tuple(convert(b) for b in self.excludes),
        )

    def _address_blocks(self, blocks: tuple[_Block, ...]) -> list[_AddressBlock]:
        names = [b.name for b in blocks if isinstance(b, _HostNameBlock)]
        if names:
            raise TargetSpecError(f"host name {names[0]!r} has not been resolved")
        return [b for b in blocks if not isinstance(b, _HostNameBlock)]

    def count(self) -> int:
        """How many addresses iteration yields, computed without expanding.

        Unresolved host names count as the size of what they name (1, or the ``/n`` network);
        exclusions given as unresolved host names are not subtracted. n log n in the number of
        tokens: the union of the targets less the union of the exclusions, as sorted intervals
        (an octet expression is its runs along the last byte; one with more runs than
        :data:`_MAX_OCTET_RUNS` falls back to box arithmetic for its address family).
        """
        cached: int | None = self.__dict__.get("_count")
        if cached is not None:  # immutable: counted once (a scan asks again for every page)
            return cached
        total = 0
        for block in self.targets:
            if isinstance(block, _HostNameBlock):
                total += 1 if block.prefix is None else 1 << (32 - block.prefix)
        for version in (4, 6):
            targets = [b for b in self.targets if not isinstance(b, _HostNameBlock) and b.version == version]
            if not targets:
                continue
            excludes = [
                b for b in self.excludes if not isinstance(b, _HostNameBlock) and b.version == version
            ]
            wanted = _union_runs(targets)
            removed = _union_runs(excludes)
            if wanted is None or removed is None:
                total += _box_count(targets, excludes)
            else:
                total += _runs_size(_runs_subtract(wanted, removed))
        object.__setattr__(self, "_count", total)
        return total

    def batches(self, size: int | None = None) -> Iterator[tuple[str, ...]]:
        """The addresses as CIDR blocks (:func:`as_blocks`' form), in batches of at most ``size``
        addresses (``None``: one batch), IPv4 before IPv6, each family in address order.

        Computed from the sorted runs without expanding, so a ``/8`` costs no more than a ``/24``;
        a family with an octet expression of more than :data:`_MAX_OCTET_RUNS` runs is expanded.
        Host names must be resolved first.
        """
        if size is not None and size < 1:
            raise ValueError(f"batch size {size} is not positive")
        targets = self._address_blocks(self.targets)
        excludes = self._address_blocks(self.excludes)
        batch: list[str] = []
        room = size
        for version in (4, 6):
            wanted = _union_runs([b for b in targets if b.version == version])
            removed = _union_runs([b for b in excludes if b.version == version])
            if wanted is None or removed is None:  # too many runs to list: expand this family
                family = replace(
                    self,
                    targets=tuple(b for b in targets if b.version == version),
                    excludes=tuple(b for b in excludes if b.version == version),
                )
                wanted = _merge((int(t.address), int(t.address)) for t in family)
                removed = []
            for lo, hi in _runs_subtract(wanted, removed):
                while lo <= hi:
                    last = hi if room is None else min(hi, lo + room - 1)
                    batch.extend(_cidrs(version, lo, last))
                    if room is not None:
                        room -= last - lo + 1
                        if room == 0:
                            yield tuple(batch)
                            batch, room = [], size
                    lo = last + 1
            if batch and size is not None:  # a batch holds one address family
                yield tuple(batch)
                batch, room = [], size
        if batch:
            yield tuple(batch)

    def __iter__(self) -> Iterator[Target]:
        targets = self._address_blocks(self.targets)
        excludes = self._address_blocks(self.excludes)
        overlapping = _Overlaps([*excludes, *targets])
        for index, block in enumerate(targets):
            # Exclusions and earlier targets whose bounds meet this block's (positions below
            # len(excludes) + index in ``overlapping``'s list).
            skip = overlapping.meeting(block, before=len(excludes) + index)
            version, host_name = block.version, block.host_name
            if not skip:
                for value in block.values():
                    yield Target(_address(version, value), host_name)
                continue
            for value in block.values():
                if not any(other.contains(value) for other in skip):
                    yield Target(_address(version, value), host_name)

    def first_outside(self, networks: Sequence[IPNetwork]) -> IPAddress | None:
        """An address this spec yields that lies outside every network (the lowest of the first
        offending token), or ``None`` when every address is inside.

        Exact and cheap (sorted runs, or box arithmetic for huge octet expressions; no expansion):
        used to check a safety policy before sending.
        """
        listed, found = _first_outside_by_runs(
            self._address_blocks(self.targets), self._address_blocks(self.excludes), networks
        )
        if listed:
            return found
        excluded: dict[int, list[_Box]] = {4: [], 6: []}
        for block in self._address_blocks(self.excludes):
            excluded[block.version].extend(block.boxes())
        allowed: dict[int, list[_Box]] = {4: [], 6: []}
        for network in networks:
            allowed[network.version].append(_network_box(network))
        for block in self._address_blocks(self.targets):
            outside = _subtract_all(
                _subtract_all(block.boxes(), excluded[block.version]), allowed[block.version]
            )
            if outside:
                return _address(block.version, min(box.first() for box in outside))
        return None

    @property
    def targets_text(self) -> str:
        """The targets as given (host names unresolved), blank-separated: what :func:`parse_targets` reads."""
        return " ".join(block.text for block in self.targets)

    @property
    def excludes_text(self) -> str:
        """The exclusions as given, comma-separated (empty: none)."""
        return ",".join(block.text for block in self.excludes)

    def __str__(self) -> str:
        text = " ".join(block.text for block in self.targets)
        if self.excludes:
            text += " --exclude " + ",".join(block.text for block in self.excludes)
        return text


def _cidrs(version: int, first: int, last: int) -> Iterator[str]:
    """The run ``first..last`` as the fewest CIDR blocks, a single address without its prefix."""
    for network in ipaddress.summarize_address_range(_address(version, first), _address(version, last)):
        yield str(network.network_address) if network.num_addresses == 1 else str(network)


def as_blocks(addresses: list[IPAddress]) -> tuple[str, ...]:
    """``addresses`` (sorted here) as the fewest CIDR blocks, a single address without its ``/32``."""
    blocks: list[str] = []
    ordered = sorted(addresses, key=lambda a: (a.version, int(a)))
    start = end = ordered[0]
    for address in [*ordered[1:], None]:
        if address is not None and address.version == end.version and int(address) == int(end) + 1:
            end = address
            continue
        blocks.extend(_cidrs(start.version, int(start), int(end)))
        if address is not None:
            start = end = address
    return tuple(blocks)
