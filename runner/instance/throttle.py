"""The failed-login throttle: each wrong password costs the instance one scrypt, so failures are rationed.

A token bucket per user name and one per client address: a failed password check (basic auth
on the API, the console's log-in form: one throttle serves both) takes a
token from both; a check that would need a scrypt while either bucket is empty is refused
with :class:`TooManyLogins` (HTTP 429 with ``Retry-After``) before hashing anything. A password
the instance verified earlier is remembered without a scrypt (:mod:`.auth`), so a MID whose
name someone is guessing at keeps working.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from midprobe.runner.instance.errors import TableApiError

if TYPE_CHECKING:
    from midprobe.runner.instance.auth import User, UserStore

DEFAULT_BURST: Final = 10
"""Failed logins a user name (or a client address) may have in a row."""
DEFAULT_REFILL_SECONDS: Final = 6.0
"""After the burst, one more try every this many seconds (10 a minute)."""
_MAX_KEYS: Final = 100_000


class TooManyLogins(TableApiError):
    """429: too many failed logins for this user or from this address; ``retry_after`` in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            429,
            "Too Many Requests",
            f"too many failed logins for this user or from this address; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


@dataclass
class _Bucket:
    tokens: float
    at: float


class LoginThrottle:
    """Token buckets keyed by ``user:NAME`` and ``address:ADDR``; safe to share between threads."""

    def __init__(
        self,
        *,
        burst: int = DEFAULT_BURST,
        refill_seconds: float = DEFAULT_REFILL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = float(burst)
        self._refill = refill_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def _level(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return self._burst
        return min(self._burst, bucket.tokens + (now - bucket.at) / self._refill)

    def check(self, keys: Sequence[str]) -> None:
        """Raise :class:`TooManyLogins` if any of ``keys`` has no try left."""
        with self._lock:
            now = self._clock()
            short = max((1.0 - self._level(key, now) for key in keys), default=0.0)
        if short > 0:
            raise TooManyLogins(max(1, math.ceil(short * self._refill)))

    def failed(self, keys: Sequence[str]) -> None:
        """A failed check: one token less for each of ``keys``."""
        with self._lock:
            now = self._clock()
            if len(self._buckets) >= _MAX_KEYS:  # forget the buckets that have refilled
                self._buckets = {
                    key: bucket
                    for key, bucket in self._buckets.items()
                    if self._level(key, now) < self._burst
                }
                if len(self._buckets) >= _MAX_KEYS:
                    self._buckets.clear()
            for key in keys:
                self._buckets[key] = _Bucket(max(0.0, self._level(key, now) - 1.0), now)

    def authenticate(self, users: UserStore, name: str, password: str, address: str | None) -> User | None:
        """``users.authenticate`` rationed: a scrypt only while ``name`` and ``address`` have tries left
        (else :class:`TooManyLogins`), and a failure costs both a try. Blocking: call it off the event loop."""
        keys = login_keys(name, address)
        checked = users.authenticate(name, password, before_scrypt=lambda: self.check(keys))
        if checked is None:
            self.failed(keys)
        return checked


def login_keys(user: str, address: str | None) -> tuple[str, ...]:
    """The buckets a login of ``user`` from ``address`` draws on."""
    return (f"user:{user}",) if address is None else (f"user:{user}", f"address:{address}")


__all__ = ["DEFAULT_BURST", "DEFAULT_REFILL_SECONDS", "LoginThrottle", "TooManyLogins", "login_keys"]
