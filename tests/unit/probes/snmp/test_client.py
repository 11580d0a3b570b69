"""Pure parts of the SNMP client: bulk-size learning and the pysnmp translations."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pysnmp.proto import errind, rfc1902, rfc1905

from midprobe.probes.credentials import Secret
from midprobe.probes.snmp.auth import UsmAuth
from midprobe.probes.snmp.client import BulkSizeMemory
from midprobe.probes.snmp.errors import (
    SnmpDecryptionFailed,
    SnmpNotInTimeWindow,
    SnmpProtocolError,
    SnmpUnknownUser,
    SnmpUnsupportedSecurityLevel,
    SnmpWrongDigest,
)
from midprobe.probes.snmp.pysnmp_backend import auth_data, convert_value, translate_indication
from midprobe.probes.snmp.signals import NoResponse, TooBigLocally
from midprobe.probes.snmp.values import SnmpType, SnmpValue

ADDRESS = "198.18.0.11"


def test_growth_while_fast_and_full() -> None:
    memory = BulkSizeMemory()
    sizes = [25]
    for _ in range(8):
        sizes.append(memory.answered(ADDRESS, sizes[-1], grow=True, limit=200))
    assert sizes == [25, 38, 58, 88, 133, 200, 200, 200, 200]
    assert memory.answered(ADDRESS, 200, grow=False, limit=200) == 200
    assert memory.snapshot() == {ADDRESS: 200}


def test_too_big_bisects_between_answered_and_refused() -> None:
    memory = BulkSizeMemory()
    limit = 40  # the agent's real limit, unknown to the memory
    size, refusals = 100, 0
    for _ in range(40):
        if size > limit:
            refusals += 1
            size = memory.too_big(ADDRESS, size)
        else:
            size = memory.answered(ADDRESS, size, grow=True, limit=200)
    assert refusals <= 8
    assert 30 <= size <= limit
    assert memory.get(ADDRESS) == size


@given(st.integers(1, 500), st.lists(st.booleans(), min_size=1, max_size=60))
def test_sizes_stay_within_bounds(limit: int, grows: list[bool]) -> None:
    memory = BulkSizeMemory()
    size = 25
    for grow in grows:
        size = (
            memory.too_big(ADDRESS, size)
            if size > limit
            else memory.answered(ADDRESS, size, grow=grow, limit=200)
        )
        assert 1 <= size <= 200


def test_memory_is_per_address() -> None:
    memory = BulkSizeMemory()
    memory.set("198.18.0.10", 7)
    assert memory.get("198.18.0.10") == 7
    assert memory.get("198.18.0.12") is None


@pytest.mark.parametrize(
    ("indication", "expected"),
    [
        (errind.unknownUserName, SnmpUnknownUser),
        (errind.wrongDigest, SnmpWrongDigest),
        (errind.decryptionError, SnmpDecryptionFailed),
        (errind.notInTimeWindow, SnmpNotInTimeWindow),
        (errind.unsupportedSecurityLevel, SnmpUnsupportedSecurityLevel),
        (errind.requestTimedOut, NoResponse),
        (errind.tooBig, TooBigLocally),
        (errind.unknownEngineID, SnmpProtocolError),
        (errind.parseError, SnmpProtocolError),
    ],
)
def test_error_indications_by_kind(indication: Any, expected: type[Exception]) -> None:
    auth = UsmAuth("monitor", "SHA", Secret("auth-secret-1"), "AES", Secret("priv-secret-1"))
    error = translate_indication(indication, "198.18.0.11:161", auth)
    assert type(error) is expected
    assert "secret" not in str(error)
    if isinstance(error, SnmpWrongDigest):
        assert str(error) == (
            "SNMPv3 user 'monitor' at 198.18.0.11:161: wrong authentication key or protocol "
            "(the message digest did not verify) (usmStatsWrongDigests)"
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (rfc1902.Integer32(-3), SnmpValue(SnmpType.INTEGER, -3)),
        (rfc1902.OctetString(b"\x00ab"), SnmpValue(SnmpType.OCTET_STRING, b"\x00ab")),
        (rfc1902.IpAddress("10.0.0.1"), SnmpValue(SnmpType.IP_ADDRESS, b"\n\x00\x00\x01")),
        (rfc1902.Counter32(5), SnmpValue(SnmpType.COUNTER32, 5)),
        (rfc1902.Gauge32(6), SnmpValue(SnmpType.GAUGE32, 6)),
        (rfc1902.Unsigned32(7), SnmpValue(SnmpType.GAUGE32, 7)),
        (rfc1902.TimeTicks(8), SnmpValue(SnmpType.TIME_TICKS, 8)),
        (rfc1902.Counter64(2**64 - 1), SnmpValue(SnmpType.COUNTER64, 2**64 - 1)),
        (rfc1902.Opaque(b"\x9f"), SnmpValue(SnmpType.OPAQUE, b"\x9f")),
        (rfc1902.ObjectIdentifier((1, 3, 6, 1)), SnmpValue(SnmpType.OBJECT_ID, (1, 3, 6, 1))),
        (rfc1902.Null(""), SnmpValue(SnmpType.NULL, None)),
        (rfc1905.endOfMibView, SnmpValue(SnmpType.END_OF_MIB_VIEW, None)),
        (rfc1905.noSuchObject, SnmpValue(SnmpType.NO_SUCH_OBJECT, None)),
        (rfc1905.noSuchInstance, SnmpValue(SnmpType.NO_SUCH_INSTANCE, None)),
    ],
)
def test_pysnmp_values_convert(value: Any, expected: SnmpValue) -> None:
    assert convert_value(value) == expected


def test_pysnmp_auth_objects_hide_their_keys() -> None:
    auth = UsmAuth("monitor", "SHA256", Secret("auth-secret-1"), "AES256", Secret("priv-secret-1"))
    assert "secret" not in repr(auth_data(auth))
