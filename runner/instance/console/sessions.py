"""The console's log-in sessions: a random token in a cookie, a CSRF token per session, kept in memory.

A visitor gets an anonymous session when the log-in page is shown (so the log-in form carries a
CSRF token too); logging in replaces it with a fresh one (a token known before log-in is never
a logged-in one). Sessions end when logged out, idle too long, or pushed out by newer ones (the
store is bounded: anonymous and logged-in sessions each have a cap, so a flood of log-in page
views never ends an operator's session). An instance restart ends every session.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from midprobe.runner.instance.auth import User

COOKIE: Final = "midprobe_console"
IDLE_SECONDS: Final = 8 * 3600.0
"""A session unused this long has ended."""
CAPACITY: Final = 1024
"""Sessions of each kind (anonymous, logged in) kept at most; the least recently used goes first."""


@dataclass
class Session:
    """One browser's session: ``user`` is ``None`` until it logs in."""

    token: str
    csrf_token: str
    user: User | None
    last_used: float

    def csrf_matches(self, presented: str) -> bool:
        return hmac.compare_digest(self.csrf_token.encode(), presented.encode("utf-8", "surrogatepass"))


class SessionStore:
    """Sessions by token; ``clock`` (seconds, monotonic) is injectable for tests."""

    def __init__(
        self,
        *,
        idle_seconds: float = IDLE_SECONDS,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idle = idle_seconds
        self._capacity = capacity
        self._clock = clock
        self._anonymous: OrderedDict[str, Session] = OrderedDict()
        self._logged_in: OrderedDict[str, Session] = OrderedDict()

    def _kept(self, session: Session) -> OrderedDict[str, Session]:
        return self._anonymous if session.user is None else self._logged_in

    def start(self, user: User | None = None) -> Session:
        """A new session (anonymous unless ``user`` is given), with its own CSRF token."""
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), user, self._clock())
        kept = self._kept(session)
        kept[session.token] = session
        while len(kept) > self._capacity:
            kept.popitem(last=False)
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token`` (its idle time starts again), or ``None``."""
        if not token:
            return None
        for kept in (self._logged_in, self._anonymous):
            session = kept.get(token)
            if session is None:
                continue
            now = self._clock()
            if now - session.last_used > self._idle:
                del kept[token]
                return None
            session.last_used = now
            kept.move_to_end(token)
            return session
        return None

    def end(self, token: str) -> None:
        self._anonymous.pop(token, None)
        self._logged_in.pop(token, None)


__all__ = ["CAPACITY", "COOKIE", "IDLE_SECONDS", "Session", "SessionStore"]
