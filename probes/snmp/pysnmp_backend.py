"""The pysnmp 7 session (asyncio hlapi): every SNMPv3 request, and v1/v2c when asked for.

MIB lookups stay off (``lookupMib=False``): responses come back as raw OIDs and values and
are turned into ``SnmpValue``s here. pysnmp's ``errorIndication`` objects are translated
into the midprobe errors by kind (unknown user, wrong digest, decryption, time window).
Imported lazily: loading pysnmp costs ~0.2 s, which a v1/v2c-only run never pays.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pyasn1.type import univ
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_PRIV_CBC56_DES,
    USM_PRIV_CBC168_3DES,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB192_AES,
    USM_PRIV_CFB192_AES_BLUMENTHAL,
    USM_PRIV_CFB256_AES,
    USM_PRIV_CFB256_AES_BLUMENTHAL,
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    next_cmd,
)
from pysnmp.proto import errind, rfc1902, rfc1905

from midprobe.probes.snmp.auth import CommunityAuth, SnmpAuth, UsmAuth
from midprobe.probes.snmp.codec import (
    GET_BULK_REQUEST,
    GET_NEXT_REQUEST,
    GET_REQUEST,
    RESPONSE,
    Reply,
    Response,
)
from midprobe.probes.snmp.errors import (
    SnmpAuthenticationFailed,
    SnmpDecryptionFailed,
    SnmpNotInTimeWindow,
    SnmpProtocolError,
    SnmpUnknownUser,
    SnmpUnreachable,
    SnmpUnsupportedSecurityLevel,
    SnmpWrongDigest,
)
from midprobe.probes.snmp.signals import NoResponse, TooBigLocally
from midprobe.probes.snmp.values import Oid, SnmpType, SnmpValue, VarBind

AUTH_PROTOCOL_IDS: dict[str, Any] = {
    "MD5": USM_AUTH_HMAC96_MD5,
    "SHA": USM_AUTH_HMAC96_SHA,
    "SHA224": USM_AUTH_HMAC128_SHA224,
    "SHA256": USM_AUTH_HMAC192_SHA256,
    "SHA384": USM_AUTH_HMAC256_SHA384,
    "SHA512": USM_AUTH_HMAC384_SHA512,
}
# net-snmp's AES192/AES256 extend the key per the Blumenthal draft; the "C" variants as Cisco does.
PRIV_PROTOCOL_IDS: dict[str, Any] = {
    "DES": USM_PRIV_CBC56_DES,
    "3DES": USM_PRIV_CBC168_3DES,
    "AES": USM_PRIV_CFB128_AES,
    "AES192": USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256": USM_PRIV_CFB256_AES_BLUMENTHAL,
    "AES192C": USM_PRIV_CFB192_AES,
    "AES256C": USM_PRIV_CFB256_AES,
}

# Most specific classes first: IpAddress and Opaque are OctetStrings, the counters Integers.
_VALUE_CLASSES: tuple[tuple[type[Any], SnmpType], ...] = (
    (rfc1905.EndOfMibView, SnmpType.END_OF_MIB_VIEW),
    (rfc1905.NoSuchObject, SnmpType.NO_SUCH_OBJECT),
    (rfc1905.NoSuchInstance, SnmpType.NO_SUCH_INSTANCE),
    (rfc1902.IpAddress, SnmpType.IP_ADDRESS),
    (rfc1902.Opaque, SnmpType.OPAQUE),
    (rfc1902.Counter32, SnmpType.COUNTER32),
    (rfc1902.Gauge32, SnmpType.GAUGE32),
    (rfc1902.TimeTicks, SnmpType.TIME_TICKS),
    (rfc1902.Counter64, SnmpType.COUNTER64),
    (univ.Integer, SnmpType.INTEGER),
    (univ.OctetString, SnmpType.OCTET_STRING),
    (univ.ObjectIdentifier, SnmpType.OBJECT_ID),
    (univ.Null, SnmpType.NULL),
)
_TYPE_BY_TAGSET: dict[Any, SnmpType] = {cls.tagSet: kind for cls, kind in _VALUE_CLASSES}


def convert_value(value: Any) -> SnmpValue:
    """A pysnmp/pyasn1 value as an ``SnmpValue``."""
    kind = _TYPE_BY_TAGSET.get(value.tagSet)
    if kind is None:
        for cls, candidate in _VALUE_CLASSES:
            if isinstance(value, cls):
                kind = candidate
                break
        else:
            raise SnmpProtocolError(f"unexpected value type {type(value).__name__} in a response")
    if kind in (SnmpType.OCTET_STRING, SnmpType.IP_ADDRESS, SnmpType.OPAQUE):
        return SnmpValue(kind, bytes(value.asOctets()))
    if kind is SnmpType.OBJECT_ID:
        return SnmpValue(kind, tuple(int(arc) for arc in value))
    if kind in (SnmpType.NULL, SnmpType.END_OF_MIB_VIEW, SnmpType.NO_SUCH_OBJECT, SnmpType.NO_SUCH_INSTANCE):
        return SnmpValue(kind, None)
    return SnmpValue(kind, int(value))


def auth_data(auth: SnmpAuth) -> Any:
    """The pysnmp auth object; the only place secrets are handed to pysnmp."""
    if isinstance(auth, CommunityAuth):
        return CommunityData(auth.community.reveal(), mpModel=0 if auth.version == "1" else 1)
    return UsmUserData(
        auth.user,
        authKey=auth.auth_key.reveal() if auth.auth_key is not None else None,
        privKey=auth.priv_key.reveal() if auth.priv_key is not None else None,
        authProtocol=AUTH_PROTOCOL_IDS[auth.auth_protocol] if auth.auth_protocol else None,
        privProtocol=PRIV_PROTOCOL_IDS[auth.priv_protocol] if auth.priv_protocol else None,
    )


def translate_indication(indication: Any, target: str, auth: SnmpAuth) -> Exception:
    """pysnmp's ``errorIndication`` as the midprobe error of its kind."""
    user = auth.user if isinstance(auth, UsmAuth) else "-"
    kinds: tuple[tuple[type[Any], type[SnmpAuthenticationFailed]], ...] = (
        (errind.UnknownUserName, SnmpUnknownUser),
        (errind.WrongDigest, SnmpWrongDigest),
        (errind.DecryptionError, SnmpDecryptionFailed),
        (errind.NotInTimeWindow, SnmpNotInTimeWindow),
        (errind.UnsupportedSecurityLevel, SnmpUnsupportedSecurityLevel),
    )
    for indication_class, error_class in kinds:
        if isinstance(indication, indication_class):
            return error_class(target, user)
    if isinstance(indication, errind.RequestTimedOut):
        return NoResponse()
    if isinstance(indication, errind.TooBig):
        return TooBigLocally()
    if isinstance(indication, errind.UnknownEngineID):
        return SnmpProtocolError(f"SNMPv3 engine discovery with {target} failed (unknownEngineID)")
    return SnmpProtocolError(f"SNMP request to {target} failed: {indication}")


class PysnmpEngines:
    """One ``SnmpEngine`` per event loop, plus one per clashing v3 user.

    pysnmp keys its USM table by user name, so two credentials with one user name and
    different keys (a key being tried after a wrong one) cannot share an engine.
    Creating an engine costs ~0.1 s, so they are shared and closed together.
    """

    def __init__(self) -> None:
        self._engines: dict[object, Any] = {}
        self._first_keys: dict[str, object] = {}

    def engine_for(self, auth: SnmpAuth) -> Any:
        key: object = "shared"
        if isinstance(auth, UsmAuth):
            keys = (auth.auth_protocol, auth.auth_key, auth.priv_protocol, auth.priv_key)
            if self._first_keys.setdefault(auth.user, keys) != keys:
                key = ("usm", auth.user, keys)
        engine = self._engines.get(key)
        if engine is None:
            engine = SnmpEngine()
            self._engines[key] = engine
        return engine

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close_dispatcher()
        self._engines.clear()
        self._first_keys.clear()


class PysnmpSession:
    """Sends one request per ``send`` through pysnmp, one attempt each (the client retries)."""

    def __init__(
        self, engine: Any, auth: SnmpAuth, target_obj: Any, target: str, attempt_timeout: float
    ) -> None:
        self._engine = engine
        self._auth = auth
        self._auth_data = auth_data(auth)
        self._transport = target_obj
        self._context = ContextData(contextName=auth.context_name if isinstance(auth, UsmAuth) else "")
        self._attempt_timeout = attempt_timeout
        self._version = {"1": 0, "2c": 1, "3": 3}[auth.version]
        self.target = target

    @classmethod
    async def open(
        cls, engines: PysnmpEngines, address: str, port: int, auth: SnmpAuth, attempt_timeout: float
    ) -> PysnmpSession:
        ipv6 = ":" in address
        target = f"[{address}]:{port}" if ipv6 else f"{address}:{port}"
        target_class = Udp6TransportTarget if ipv6 else UdpTransportTarget
        try:
            transport = await target_class.create((address, port), timeout=attempt_timeout, retries=0)
        except PySnmpError as error:
            raise SnmpUnreachable(target, str(error)) from error
        return cls(engines.engine_for(auth), auth, transport, target, attempt_timeout)

    @property
    def malformed(self) -> None:
        return None

    def send(self, pdu_type: int, oids: Sequence[Oid], max_repetitions: int) -> asyncio.Future[Reply]:
        return asyncio.ensure_future(self._request(pdu_type, oids, max_repetitions))

    async def _request(self, pdu_type: int, oids: Sequence[Oid], max_repetitions: int) -> Reply:
        varbinds = [ObjectType(ObjectIdentity(rfc1902.ObjectName(oid))) for oid in oids]
        common = (self._engine, self._auth_data, self._transport, self._context)
        try:
            if pdu_type == GET_BULK_REQUEST:
                outcome = await bulk_cmd(*common, 0, max_repetitions, *varbinds, lookupMib=False)
            elif pdu_type == GET_NEXT_REQUEST:
                outcome = await next_cmd(*common, *varbinds, lookupMib=False)
            elif pdu_type == GET_REQUEST:
                outcome = await get_cmd(*common, *varbinds, lookupMib=False)
            else:
                raise ValueError(f"PDU type 0x{pdu_type:02x} is not a request")
        except PySnmpError as error:
            raise SnmpProtocolError(f"SNMP request to {self.target} failed: {error}") from error
        indication, status, index, table = outcome
        if indication:
            raise translate_indication(indication, self.target, self._auth)
        values: list[VarBind] = []
        for name, value in table:
            values.append((tuple(int(arc) for arc in name), convert_value(value)))
        return Response(self._version, RESPONSE, 0, int(status), int(index), tuple(values))

    async def close(self) -> None:
        return None
