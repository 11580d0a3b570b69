"""The native SNMPv3 session against a scripted USM agent that does what net-snmp will not.

net-snmp never changes its engine ID under a client, never sends a usmStatsDecryptionErrors
report, never forges a digest, never reports an unknown counter: a small authoritative agent
built on ``v3_message.py`` and ``usm.py`` does, on a real UDP socket in a private namespace.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import pytest

from midprobe.probes.credentials import Secret
from midprobe.probes.snmp.auth import UsmAuth
from midprobe.probes.snmp.client import ClientOptions, SnmpClient
from midprobe.probes.snmp.codec import (
    GET_REQUEST,
    REPORT,
    RESPONSE,
    encode_octets,
    encode_pdu_with_values,
)
from midprobe.probes.snmp.errors import (
    SnmpDecryptionFailed,
    SnmpProtocolError,
    SnmpUnsupportedSecurityLevel,
)
from midprobe.probes.snmp.usm import FLAG_AUTH, FLAG_PRIV, decrypt, encrypt, localize, sign, verify
from midprobe.probes.snmp.v3_message import (
    UsmParameters,
    decode_message,
    decode_scoped_pdu,
    encode_message,
    encode_scoped_pdu,
)
from midprobe.probes.snmp.values import Oid, SnmpType, SnmpValue
from midprobe.runner.lab import NamespaceThread
from tests.lab.snmpd_harness import scratch_namespace

pytestmark = pytest.mark.lab

USER = UsmAuth(
    "scripted", "SHA256", Secret("mpa-" + secrets.token_hex(8)), "AES", Secret("mpp-" + secrets.token_hex(8))
)
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)
QUICK = ClientOptions(timeout=0.3, retries=1)


@pytest.fixture(scope="module")
def thread() -> Iterator[NamespaceThread]:
    with scratch_namespace("mpsnmpv") as inside:
        yield inside


@dataclass
class Script:
    """What the USM agent does differently from net-snmp; what it saw."""

    engine_id: bytes = bytes.fromhex("8000000001020304")
    boots: int = 1
    #: After this many answered requests the agent "reboots" with a new engine ID.
    new_engine_after: int | None = None
    #: A usmStats (or other) OID reported instead of answering authenticated requests.
    report: Oid | None = None
    #: Sign answers with another key.
    forge: bool = False
    discoveries: int = 0
    answered: int = 0
    engines_seen: list[bytes] = field(default_factory=list)


class _Agent(asyncio.DatagramProtocol):
    def __init__(self, script: Script) -> None:
        self.script = script
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def _report(self, msg_id: int, request_id: int, oid: Oid, addr: tuple[str | object, ...]) -> None:
        script = self.script
        pdu = encode_pdu_with_values(REPORT, request_id, [(oid, SnmpValue(SnmpType.COUNTER32, 1))])
        usm = UsmParameters(script.engine_id, script.boots, 100, b"")
        data, _ = encode_message(msg_id, 0, usm, encode_scoped_pdu(script.engine_id, b"", pdu))
        assert self.transport is not None
        self.transport.sendto(data, addr)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        script = self.script
        message = decode_message(data)
        script.engines_seen.append(message.usm.engine_id)
        if message.usm.engine_id != script.engine_id:  # discovery, or a client that missed a reboot
            script.discoveries += not message.usm.engine_id
            self._report(message.msg_id, 0, (*USM_STATS, 4, 0), addr)
            return
        if script.report is not None:
            self._report(message.msg_id, 0, script.report, addr)
            return
        keys = localize(USER, script.engine_id)
        assert message.flags & FLAG_AUTH
        assert verify(keys, data, message.auth_offset, len(message.usm.auth_params))
        assert message.flags & FLAG_PRIV
        assert message.encrypted is not None
        plain = decrypt(
            keys, message.encrypted, message.usm.priv_params, message.usm.boots, message.usm.engine_time
        )
        request = decode_scoped_pdu(plain).pdu
        assert request.pdu_type == GET_REQUEST
        answer = [(oid, SnmpValue(SnmpType.OCTET_STRING, b"scripted")) for oid, _ in request.varbinds]
        pdu = encode_pdu_with_values(RESPONSE, request.request_id, answer)
        ciphertext, privacy = encrypt(
            keys, encode_scoped_pdu(script.engine_id, b"", pdu), script.boots, 100, 42
        )
        usm = UsmParameters(
            script.engine_id, script.boots, 100, b"scripted", bytes(keys.digest_length), privacy
        )
        reply, offset = encode_message(message.msg_id, FLAG_AUTH | FLAG_PRIV, usm, encode_octets(ciphertext))
        signer = (
            localize(UsmAuth("x", "SHA256", Secret("another-key")), script.engine_id)
            if script.forge
            else keys
        )
        assert self.transport is not None
        self.transport.sendto(sign(signer, reply, offset), addr)
        script.answered += 1
        if script.new_engine_after is not None and script.answered >= script.new_engine_after:
            script.engine_id, script.boots, script.new_engine_after = (
                bytes.fromhex("80000000aabbccdd"),
                1,
                None,
            )


def _gets(thread: NamespaceThread, script: Script, count: int) -> list[bytes | int | tuple[int, ...] | None]:
    async def go() -> list[bytes | int | tuple[int, ...] | None]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Agent(script), local_addr=("127.0.0.1", 0)
        )
        port = transport.get_extra_info("sockname")[1]
        try:
            async with SnmpClient("127.0.0.1", USER, port=port, options=QUICK) as client:
                values = []
                for _ in range(count):
                    ((_, value),) = await client.get([SYS_NAME])
                    values.append(value.value)
                return values
        finally:
            transport.close()

    return thread.run_async(go)


def test_discovery_happens_once_per_session(thread: NamespaceThread) -> None:
    script = Script()
    assert _gets(thread, script, 3) == [b"scripted"] * 3
    assert script.discoveries == 1


def test_an_agent_with_a_new_engine_id_is_rediscovered(thread: NamespaceThread) -> None:
    script = Script(new_engine_after=1)
    assert _gets(thread, script, 3) == [b"scripted"] * 3
    old, new = bytes.fromhex("8000000001020304"), bytes.fromhex("80000000aabbccdd")
    # discovery, the first GET, the second to the old engine (reported), re-sent to the new, the third
    assert script.engines_seen == [b"", old, old, new, new]


@pytest.mark.parametrize(
    ("report", "error", "text"),
    [
        ((*USM_STATS, 6, 0), SnmpDecryptionFailed, "usmStatsDecryptionErrors"),
        ((*USM_STATS, 1, 0), SnmpUnsupportedSecurityLevel, "usmStatsUnsupportedSecLevels"),
        ((1, 3, 6, 1, 6, 3, 11, 2, 1, 1, 0), SnmpProtocolError, "1.3.6.1.6.3.11.2.1.1.0"),
    ],
)
def test_reports_become_their_errors(
    thread: NamespaceThread, report: Oid, error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text) as caught:
        _gets(thread, Script(report=report), 1)
    assert "mpa-" not in str(caught.value)
    assert "mpp-" not in str(caught.value)


def test_an_answer_with_a_forged_digest_is_never_trusted(thread: NamespaceThread) -> None:
    with pytest.raises(SnmpProtocolError, match="digest does not verify"):
        _gets(thread, Script(forge=True), 1)
