"""A recorded walk played back as an agent: the session tests inject into ``SnmpClient``.

``ReplayAgent`` is a ``SessionOpener``: each client it opens gets a ``ReplaySession`` that
answers GET, GETNEXT and GETBULK from the walk (``walkfile.py`` reads ``snmpwalk -On``
output) the way an agent does: missing objects as ``noSuchInstance`` (v2c/v3) or
``noSuchName`` (v1), the end as ``endOfMibView``. A community it does not accept goes
unanswered, as a real v1/v2c agent's silence. No socket, no root, no network.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

from midprobe.probes.snmp.auth import CommunityAuth, SnmpAuth
from midprobe.probes.snmp.codec import (
    GET_BULK_REQUEST,
    GET_NEXT_REQUEST,
    GET_REQUEST,
    NO_SUCH_NAME,
    RESPONSE,
    Reply,
    Response,
    SnmpDecodeError,
)
from midprobe.probes.snmp.signals import NoResponse
from midprobe.probes.snmp.values import END_OF_MIB_VIEW, Oid, SnmpType, SnmpValue, VarBind
from midprobe.probes.snmp.walkfile import parse_walk

_NO_SUCH_INSTANCE = SnmpValue(SnmpType.NO_SUCH_INSTANCE, None)


class ReplaySession:
    """Answers from ``varbinds``; ``requests`` records what was asked, as ``(pdu type, oids, repetitions)``."""

    def __init__(
        self, target: str, varbinds: Iterable[VarBind], auth: SnmpAuth, *, answers: bool = True
    ) -> None:
        self.target = target
        table = dict(varbinds)
        self._oids = sorted(table)
        self._values = table
        self._v1 = auth.version == "1"
        self._answers = answers
        self.requests: list[tuple[int, tuple[Oid, ...], int]] = []

    @property
    def malformed(self) -> SnmpDecodeError | None:
        return None

    def send(self, pdu_type: int, oids: Sequence[Oid], max_repetitions: int) -> asyncio.Future[Reply]:
        self.requests.append((pdu_type, tuple(oids), max_repetitions))
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        if self._answers:
            future.set_result(self._answer(pdu_type, list(oids), max_repetitions))
        else:
            future.set_exception(NoResponse())
        return future

    async def close(self) -> None:
        return None

    def _next(self, oid: Oid) -> VarBind:
        position = bisect.bisect_right(self._oids, oid)
        if position < len(self._oids):
            following = self._oids[position]
            return following, self._values[following]
        return oid, END_OF_MIB_VIEW

    def _answer(self, pdu_type: int, oids: list[Oid], repetitions: int) -> Response:
        if pdu_type == GET_REQUEST:
            found = [(oid, self._values.get(oid, _NO_SUCH_INSTANCE)) for oid in oids]
        elif pdu_type == GET_NEXT_REQUEST:
            found = [self._next(oid) for oid in oids]
        elif pdu_type == GET_BULK_REQUEST:
            found = []
            cursors = list(oids)
            for _ in range(max(1, repetitions)):
                row = [self._next(cursor) for cursor in cursors]
                found.extend(row)
                cursors = [oid for oid, _ in row]
                if all(value.type == SnmpType.END_OF_MIB_VIEW for _, value in row):
                    break
        else:
            raise ValueError(f"a replayed agent does not answer PDU type {pdu_type:#x}")
        if self._v1:
            for index, (_, value) in enumerate(found, start=1):
                if value.is_exception:
                    return Response(0, RESPONSE, 0, NO_SUCH_NAME, index, tuple((oid, value) for oid in oids))
        return Response(0 if self._v1 else 1, RESPONSE, 0, 0, 0, tuple(found))


class ReplayAgent:
    """A ``SessionOpener`` replaying one walk; ``communities``: the ones it answers (``None``: any)."""

    def __init__(self, varbinds: Iterable[VarBind], *, communities: Collection[str] | None = None) -> None:
        self.varbinds = tuple(varbinds)
        self.communities = communities
        self.sessions: list[ReplaySession] = []

    @classmethod
    def from_walk_file(cls, path: Path, *, communities: Collection[str] | None = None) -> ReplayAgent:
        return cls(parse_walk(path.read_text(encoding="utf-8")), communities=communities)

    async def __call__(self, address: str, port: int, auth: SnmpAuth) -> ReplaySession:
        answers = True
        if self.communities is not None and isinstance(auth, CommunityAuth):
            answers = auth.community.reveal() in self.communities
        target = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        session = ReplaySession(target, self.varbinds, auth, answers=answers)
        self.sessions.append(session)
        return session
