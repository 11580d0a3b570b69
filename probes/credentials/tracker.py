"""Failure bookkeeping that keeps discovery from locking accounts out (pure logic, injectable clock).

Two rules: an address where every credential of a protocol failed is skipped for
five minutes; and each credential has a failure budget (per address, and
optionally across all addresses, for accounts a directory locks out centrally).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

Clock = Callable[[], float]
K = TypeVar("K")


@dataclass(frozen=True)
class FailurePolicy:
    """How long and how often; the defaults stay under pam_faillock's ``deny=3``."""

    #: An address that failed every credential is not tried again for this long.
    skip_seconds: float = 300.0
    #: Failures older than this no longer count against a budget.
    window_seconds: float = 900.0
    #: Failures of one credential on one address per window before it is held back there.
    per_address_limit: int = 2
    #: Failures of one credential over all addresses per window (None: unlimited); a credential's
    #: own ``failure_budget`` overrides it.
    per_credential_limit: int | None = None

    def __post_init__(self) -> None:
        if self.skip_seconds < 0 or self.window_seconds <= 0:
            raise ValueError("skip_seconds must be >= 0 and window_seconds > 0")
        if self.per_address_limit < 1:
            raise ValueError("per_address_limit must be at least 1")
        if self.per_credential_limit is not None and self.per_credential_limit < 1:
            raise ValueError("per_credential_limit must be at least 1 (or None)")


class FailureTracker:
    """Counts authentication failures; thread-safe; forgets what has aged out of the window."""

    #: Prune expired entries after this many writes, so memory follows the active set.
    _PRUNE_EVERY = 1024

    def __init__(self, policy: FailurePolicy | None = None, *, clock: Clock = time.monotonic) -> None:
        self.policy = policy or FailurePolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._skip_until: dict[tuple[str, str], float] = {}
        self._per_address: dict[tuple[str, str], deque[float]] = {}
        self._per_credential: dict[str, deque[float]] = {}
        self._writes = 0

    # -- skipping whole addresses ---------------------------------------------------------------

    def record_exhausted(self, address: str, protocol: str) -> None:
        """Every credential failed on ``address``: skip it for ``skip_seconds``."""
        with self._lock:
            self._skip_until[(address, protocol)] = self._clock() + self.policy.skip_seconds
            self._wrote()

    def skip_remaining(self, address: str, protocol: str) -> float:
        """Seconds until ``address`` may be tried again for ``protocol`` (0.0: now)."""
        with self._lock:
            until = self._skip_until.get((address, protocol))
            if until is None:
                return 0.0
            remaining = until - self._clock()
            if remaining <= 0:
                del self._skip_until[(address, protocol)]
                return 0.0
            return remaining

    # -- failure budgets ------------------------------------------------------------------------

    def record_failure(self, address: str, credential_id: str) -> None:
        """``credential_id`` was rejected by ``address`` (a wrong secret, not a network error)."""
        now = self._clock()
        with self._lock:
            self._per_address.setdefault((credential_id, address), deque()).append(now)
            self._per_credential.setdefault(credential_id, deque()).append(now)
            self._wrote()

    def record_success(self, address: str, protocol: str, credential_id: str) -> None:
        """A login worked: the address is no longer skipped and the credential's counts restart.

        Directories (Active Directory, most LDAP setups) reset their bad-password count on a
        good login too.
        """
        with self._lock:
            self._skip_until.pop((address, protocol), None)
            self._per_address.pop((credential_id, address), None)
            self._per_credential.pop(credential_id, None)

    def allows(self, address: str, credential_id: str, budget: int | None = None) -> bool:
        """May ``credential_id`` be offered to ``address`` now? ``budget`` overrides the global limit."""
        limit = budget if budget is not None else self.policy.per_credential_limit
        with self._lock:
            if self._count(self._per_address, (credential_id, address)) >= self.policy.per_address_limit:
                return False
            return limit is None or self._count(self._per_credential, credential_id) < limit

    def failures(self, address: str, credential_id: str) -> int:
        """Failures of ``credential_id`` on ``address`` within the window."""
        with self._lock:
            return self._count(self._per_address, (credential_id, address))

    # -- internals ------------------------------------------------------------------------------

    def _count(self, table: dict[K, deque[float]], key: K) -> int:
        stamps = table.get(key)
        if not stamps:
            return 0
        horizon = self._clock() - self.policy.window_seconds
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if not stamps:
            del table[key]
            return 0
        return len(stamps)

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % self._PRUNE_EVERY:
            return
        now = self._clock()
        horizon = now - self.policy.window_seconds
        self._skip_until = {key: until for key, until in self._skip_until.items() if until > now}
        self._per_address = {k: v for k, v in self._per_address.items() if v and v[-1] > horizon}
        self._per_credential = {k: v for k, v in self._per_credential.items() if v and v[-1] > horizon}
