"""The native SNMPv3 session against net-snmp's snmpd, with pysnmp as the cross-check.

Every auth/priv pair this snmpd build accepts (MD5, SHA, SHA-224..512 with DES, AES,
AES-192/256 in both key extensions, authNoPriv, noAuthNoPriv) is walked twice, once
natively and once through pysnmp: both must read the same varbinds. Also: discovery,
a re-sync after the agent's clock moved, and the precise errors, through the native session.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from midprobe.probes.credentials import Secret
from midprobe.probes.snmp.auth import UsmAuth
from midprobe.probes.snmp.client import ClientOptions, SnmpClient
from midprobe.probes.snmp.errors import (
    SnmpNotInTimeWindow,
    SnmpUnknownUser,
    SnmpWrongDigest,
)
from midprobe.probes.snmp.v3_session import NativeV3Session
from midprobe.probes.snmp.values import SnmpType, VarBind
from tests.lab.snmpd_harness import SnmpdTestBed

pytestmark = pytest.mark.lab

SYSTEM = (1, 3, 6, 1, 2, 1, 1)
IF_TABLE = (1, 3, 6, 1, 2, 1, 2, 2)
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
QUICK = ClientOptions(timeout=0.5, retries=1)

AUTHS = ["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"]
# net-snmp's names: AES192/AES256 extend the key per the Blumenthal draft, AES192C/AES256C as Cisco does.
PRIVS = ["DES", "AES", "AES192", "AES256", "AES192C", "AES256C"]
AUTH_KEY = "mpa-" + secrets.token_hex(8)
PRIV_KEY = "mpp-" + secrets.token_hex(8)
NET_SNMP_AUTH = {"SHA224": "SHA-224", "SHA256": "SHA-256", "SHA384": "SHA-384", "SHA512": "SHA-512"}


def _user(auth: str | None, priv: str | None) -> str:
    return "mp" + (auth or "none").lower() + (priv or "").lower()


def _config() -> list[str]:
    lines = [f"createUser {_user(None, None)}", f"rouser {_user(None, None)} noauth"]
    for auth in AUTHS:
        name = NET_SNMP_AUTH.get(auth, auth)
        lines += [f'createUser {_user(auth, None)} {name} "{AUTH_KEY}"', f"rouser {_user(auth, None)} auth"]
        for priv in PRIVS:
            user = _user(auth, priv)
            lines += [f'createUser {user} {name} "{AUTH_KEY}" {priv} "{PRIV_KEY}"', f"rouser {user} priv"]
    return lines


@pytest.fixture(scope="module")
def bed() -> Iterator[SnmpdTestBed]:
    with SnmpdTestBed(veth_pairs=20, extra_config=_config()) as test_bed:
        yield test_bed


def _auth(
    auth: str | None, priv: str | None, *, auth_key: str = AUTH_KEY, user: str | None = None
) -> UsmAuth:
    return UsmAuth(
        user or _user(auth, priv),
        auth,
        Secret(auth_key) if auth else None,
        priv,
        Secret(PRIV_KEY) if priv else None,
    )


def _walk(bed: SnmpdTestBed, auth: UsmAuth, backend: str) -> tuple[tuple[VarBind, ...], type[object]]:
    options = ClientOptions(timeout=1.0, retries=1, backend=backend)  # type: ignore[arg-type]

    async def go() -> tuple[tuple[VarBind, ...], type[object]]:
        async with SnmpClient(bed.address, auth, options=options) as client:
            found: list[VarBind] = []
            for root in (SYSTEM, IF_TABLE):
                result = await client.walk(root)
                assert result.complete, result.stopped
                found += result.varbinds
            return tuple(found), type(client._session)

    return bed.run(go)


def _stable(varbinds: tuple[VarBind, ...]) -> list[VarBind]:
    ticking = {SnmpType.TIME_TICKS, SnmpType.COUNTER32, SnmpType.COUNTER64}
    return [(oid, value) for oid, value in varbinds if value.type not in ticking]


PAIRS = [(None, None)] + [(auth, None) for auth in AUTHS] + [(a, p) for a in AUTHS for p in PRIVS]


@pytest.mark.parametrize(("auth", "priv"), PAIRS, ids=[f"{a}-{p}" for a, p in PAIRS])
def test_native_and_pysnmp_read_the_same_varbinds(
    bed: SnmpdTestBed, auth: str | None, priv: str | None
) -> None:
    native, session_type = _walk(bed, _auth(auth, priv), "auto")
    assert session_type is NativeV3Session
    reference, _ = _walk(bed, _auth(auth, priv), "pysnmp")
    assert len(native) > 40  # the system group and a 20-pair ifTable
    assert _stable(native) == _stable(reference)
    assert dict(native)[SYS_NAME].value == b"snmptest"


def test_discovery_learns_the_engine_and_its_time(bed: SnmpdTestBed) -> None:
    async def go() -> tuple[bytes, int, int]:
        session = await NativeV3Session.open(bed.address, bed.port, _auth("SHA", "AES"))
        try:
            reply = await session.send(0xA0, [SYS_NAME], 0)
            assert reply.varbinds[0][1].value == b"snmptest"
            engine = session.engine
            assert engine is not None
            return engine.engine_id, engine.boots, engine.engine_time
        finally:
            await session.close()

    engine_id, boots, _ = bed.run(go)
    assert engine_id.startswith(b"\x80\x00\x1f\x88")  # net-snmp's enterprise number, RFC 3411 format
    assert boots >= 1


def test_a_clock_that_drifted_is_resynchronised(bed: SnmpdTestBed) -> None:
    """Our notion of the agent's time jumps 1000 s ahead: notInTimeWindow, re-sync, answer."""
    drift = [0.0]

    def clock() -> float:
        return drift[0]

    async def go() -> bytes | int | tuple[int, ...] | None:
        session = await NativeV3Session.open(bed.address, bed.port, _auth("SHA256", "AES256"), clock=clock)
        try:
            await session.send(0xA0, [SYS_NAME], 0)
            drift[0] = 1000.0
            reply = await session.send(0xA0, [SYS_NAME], 0)
            return reply.varbinds[0][1].value
        finally:
            await session.close()

    assert bed.run(go) == b"snmptest"


def test_a_clock_that_keeps_drifting_is_not_in_time_window(bed: SnmpdTestBed) -> None:
    ticks = iter(range(0, 10**6, 1000))

    async def go() -> None:
        session = await NativeV3Session.open(
            bed.address, bed.port, _auth("SHA", "AES"), clock=lambda: float(next(ticks))
        )
        try:
            await session.send(0xA0, [SYS_NAME], 0)
        finally:
            await session.close()

    with pytest.raises(SnmpNotInTimeWindow, match="mpshaaes"):
        bed.run(go)


@pytest.mark.parametrize(
    ("auth", "error"),
    [
        (_auth("SHA512", "AES256C", auth_key="mpa-wrong-wrong-wrong"), SnmpWrongDigest),
        (_auth("MD5", "DES", user="nosuchuser"), SnmpUnknownUser),
    ],
)
def test_failures_are_precise_and_never_show_a_secret(
    bed: SnmpdTestBed, auth: UsmAuth, error: type[Exception]
) -> None:
    async def go() -> None:
        async with SnmpClient(bed.address, auth, options=QUICK) as client:
            await client.get([SYS_NAME])

    with pytest.raises(error) as caught:
        bed.run(go)
    message = str(caught.value)
    assert auth.user in message
    assert "mpa-" not in message
    assert PRIV_KEY not in message
