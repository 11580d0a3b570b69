"""The SNMP client and probes against a real net-snmp snmpd in a private namespace.

v1, v2c and v3 authPriv; a wrong community (a bounded timeout); wrong v3 auth and privacy
keys, an unknown user and a security level the user lacks, each reported as its own error;
a large ifTable (200 veth interfaces) walked identically to net-snmp's snmpbulkwalk.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from midprobe.capabilities.errors import AuthenticationFailed
from midprobe.probes.base import ProbeContext
from midprobe.probes.credentials import (
    PROTOCOL_SNMP,
    CredentialStore,
    Secret,
    SNMPCommunityCredential,
    SNMPv3Credential,
)
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.snmp.auth import CommunityAuth, SnmpAuth, UsmAuth
from midprobe.probes.snmp.classify import PROBE as CLASSIFY_PROBE
from midprobe.probes.snmp.client import BulkSizeMemory, ClientOptions, SnmpClient
from midprobe.probes.snmp.errors import (
    SnmpDecryptionFailed,
    SnmpTimeout,
    SnmpUnknownUser,
    SnmpUnreachable,
    SnmpUnsupportedSecurityLevel,
    SnmpWrongDigest,
)
from midprobe.probes.snmp.facts import LINUX_SERVER
from midprobe.probes.snmp.query import SnmpProbe
from midprobe.probes.snmp.values import SnmpType, VarBind
from midprobe.probes.snmp.walkfile import parse_walk
from tests.lab.snmpd_harness import SYS_OBJECT_ID, SnmpdTestBed

pytestmark = pytest.mark.lab

VETH_PAIRS = 100
SYSTEM = (1, 3, 6, 1, 2, 1, 1)
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IF_COLUMNS = [(*IF_ENTRY, column) for column in (1, 2, 3)]  # ifIndex, ifDescr, ifType
QUICK = ClientOptions(timeout=0.3, retries=1)


@pytest.fixture(scope="module")
def bed() -> Iterator[SnmpdTestBed]:
    with SnmpdTestBed(veth_pairs=VETH_PAIRS) as test_bed:
        yield test_bed


def _v2c(bed: SnmpdTestBed, version: str = "2c") -> CommunityAuth:
    return CommunityAuth(Secret(bed.community), version, "ro")  # type: ignore[arg-type]


def _v3(
    bed: SnmpdTestBed, *, auth_key: str | None = None, priv_key: str | None = None, user: str | None = None
) -> UsmAuth:
    return UsmAuth(
        user or bed.v3_user,
        "SHA",
        Secret(auth_key or bed.v3_auth_key),
        "AES",
        Secret(priv_key or bed.v3_priv_key),
        credential_id="v3",
    )


def _walk(
    bed: SnmpdTestBed, auth: SnmpAuth, root: tuple[int, ...], options: ClientOptions | None = None
) -> tuple[VarBind, ...]:
    async def go() -> tuple[VarBind, ...]:
        async with SnmpClient(bed.address, auth, options=options) as client:
            result = await client.walk(root)
            assert result.complete, result.stopped
            return result.varbinds

    return bed.run(go)


def _stable(varbinds: tuple[VarBind, ...]) -> list[VarBind]:
    """Leave out the values that tick between two walks (sysUpTime, counters, timestamps)."""
    ticking = {SnmpType.TIME_TICKS, SnmpType.COUNTER32, SnmpType.COUNTER64}
    return [(oid, value) for oid, value in varbinds if value.type not in ticking]


@pytest.mark.parametrize("version", ["1", "2c"])
def test_community_versions_read_the_system_group(bed: SnmpdTestBed, version: str) -> None:
    varbinds = dict(_walk(bed, _v2c(bed, version), SYSTEM))
    assert varbinds[SYS_NAME].value == b"snmptest"
    assert varbinds[(1, 3, 6, 1, 2, 1, 1, 2, 0)].value == tuple(int(a) for a in SYS_OBJECT_ID[1:].split("."))
    assert varbinds[(1, 3, 6, 1, 2, 1, 1, 7, 0)].value == 72


def test_v1_v2c_and_v3_agree(bed: SnmpdTestBed) -> None:
    v1 = _stable(_walk(bed, _v2c(bed, "1"), SYSTEM))
    v2c = _stable(_walk(bed, _v2c(bed), SYSTEM))
    v3 = _stable(_walk(bed, _v3(bed), SYSTEM))
    assert v1 == v2c == v3
    assert len(v2c) > 10


def test_walk_past_the_end_of_the_mib(bed: SnmpdTestBed) -> None:
    for auth in (_v2c(bed, "1"), _v2c(bed)):
        assert _walk(bed, auth, (1, 3, 6, 1, 6, 3, 99)) == ()


def test_walk_of_an_instance_gets_it(bed: SnmpdTestBed) -> None:
    (only,) = _walk(bed, _v2c(bed), SYS_NAME)
    assert only == (SYS_NAME, only[1])
    assert only[1].value == b"snmptest"


def test_wrong_community_is_a_bounded_timeout(bed: SnmpdTestBed) -> None:
    async def go() -> None:
        async with SnmpClient(
            bed.address, CommunityAuth(Secret("not-the-community")), options=QUICK
        ) as client:
            await client.get([SYS_NAME])

    started = time.monotonic()
    with pytest.raises(SnmpTimeout) as caught:
        bed.run(go)
    took = time.monotonic() - started
    assert 0.5 <= took < 3.0
    assert "wrong community" in str(caught.value)
    assert "not-the-community" not in str(caught.value)
    assert caught.value.attempts == 2


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("auth key", SnmpWrongDigest),
        ("priv key", SnmpDecryptionFailed),
        ("user", SnmpUnknownUser),
        ("level", SnmpUnsupportedSecurityLevel),
    ],
)
def test_v3_failures_are_precise(bed: SnmpdTestBed, kind: str, error: type[AuthenticationFailed]) -> None:
    if kind == "auth key":
        auth = _v3(bed, auth_key="mpa-wrong-wrong-wrong")
    elif kind == "priv key":
        auth = _v3(bed, priv_key="mpp-wrong-wrong-wrong")
    elif kind == "user":
        auth = _v3(bed, user="nosuchuser")
    else:  # authPriv asked of a user that has no privacy key
        auth = _v3(bed, user=bed.v3_auth_only_user)

    async def go() -> None:
        async with SnmpClient(bed.address, auth, options=QUICK) as client:
            await client.get([SYS_NAME])

    started = time.monotonic()
    with pytest.raises(error) as caught:
        bed.run(go)
    assert time.monotonic() - started < 5.0
    message = str(caught.value)
    assert "mpa-" not in message
    assert "mpp-" not in message
    assert isinstance(caught.value, AuthenticationFailed)


def test_v3_auth_no_priv_user_works(bed: SnmpdTestBed) -> None:
    auth = UsmAuth(bed.v3_auth_only_user, "SHA", Secret(bed.v3_auth_key))
    varbinds = dict(_walk(bed, auth, SYSTEM))
    assert varbinds[SYS_NAME].value == b"snmptest"


def test_nothing_listening_is_unreachable_at_once(bed: SnmpdTestBed) -> None:
    async def go() -> None:
        async with SnmpClient(
            bed.address, _v2c(bed), port=1161, options=ClientOptions(timeout=5, retries=2)
        ) as client:
            await client.get([SYS_NAME])

    started = time.monotonic()
    with pytest.raises(SnmpUnreachable, match="port unreachable"):
        bed.run(go)
    assert time.monotonic() - started < 2.0


def _net_snmp_columns(
    bed: SnmpdTestBed,
) -> list[tuple[tuple[int, ...], bytes | int | tuple[int, ...] | None]]:
    found: list[tuple[tuple[int, ...], bytes | int | tuple[int, ...] | None]] = []
    for column in IF_COLUMNS:
        found += [
            (oid, value.value) for oid, value in parse_walk(bed.bulkwalk("." + ".".join(map(str, column))))
        ]
    return found


@pytest.mark.parametrize("protocol", ["2c", "2c-getnext", "2c-pysnmp", "3"])
def test_large_table_matches_net_snmp(bed: SnmpdTestBed, protocol: str) -> None:
    memory = BulkSizeMemory()
    auth: SnmpAuth = _v3(bed) if protocol == "3" else _v2c(bed)
    options = ClientOptions(
        use_bulk=protocol != "2c-getnext", backend="pysnmp" if protocol == "2c-pysnmp" else "auto"
    )

    async def go() -> tuple[list[VarBind], int]:
        async with SnmpClient(bed.address, auth, options=options, memory=memory) as client:
            results = await client.walk_many(IF_COLUMNS)
            assert all(result.complete for result in results)
            return [varbind for result in results for varbind in result.varbinds], client.stats.requests

    ours, requests = bed.run(go)
    expected = _net_snmp_columns(bed)
    assert len(expected) >= 3 * (2 * VETH_PAIRS + 1)
    assert [(oid, value.value) for oid, value in ours] == expected
    if protocol != "2c-getnext":
        # three columns side by side in GETBULKs that grew: far fewer requests than rows
        assert requests < len(expected) / 10
        assert (memory.get(bed.address) or 0) > ClientOptions().initial_bulk


def _store(bed: SnmpdTestBed) -> CredentialStore:
    return CredentialStore(
        [
            SNMPCommunityCredential(
                id="stale", community=Secret("mpc-stale"), order=1, tags=frozenset({"lab"})
            ),
            SNMPCommunityCredential(
                id="ro", community=Secret(bed.community), order=2, tags=frozenset({"lab"})
            ),
            SNMPv3Credential(
                id="v3",
                user=bed.v3_user,
                auth_protocol="SHA",
                auth_key=Secret(bed.v3_auth_key),
                priv_protocol="AES",
                priv_key=Secret(bed.v3_priv_key),
                order=3,
            ),
        ],
        snmp_public_fallback=False,
    )


def test_snmp_probe_end_to_end(bed: SnmpdTestBed) -> None:
    probe = SnmpProbe()
    store = _store(bed)
    params = probe.parse_params(
        bed.address,
        {
            "oid_spec_list": "walk system  // the group\ntable ifTable ifIndex,ifDescr(#mpa1),ifType\n",
            "timeout": "1500",
            "retries": "0",
        },
    )
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=store, deadline=time.monotonic() + 60)
    result = bed.run(lambda: probe.run(params, context))
    # "stale" ranks first: "ro", tried side by side, wins once stale's 1.5 s went unanswered
    assert result.credential_id == "ro"
    assert result.elapsed_ms >= 1500
    assert store.affinity.get_affinity(bed.address, PROTOCOL_SNMP) == "ro"
    assert (probe.memory.get(bed.address) or 0) > ClientOptions().initial_bulk
    root = ET.fromstring(ET.tostring(probe.encode_results(result)[0]))
    assert root.findtext("snmp/system/sysName") == "snmptest"
    descrs = [row.findtext("ifDescr") for row in root.findall("snmp/interfaces/ifTable/ifEntry")]
    assert descrs
    assert all(text is not None and "mpa1" in text for text in descrs)
    assert len(descrs) == 11
    assert bed.community not in ET.tostring(root, encoding="unicode")
    # the affinity now goes first: a second run does not wait for "stale"
    again = bed.run(lambda: probe.run(params, context))
    assert again.credential_id == "ro"
    assert again.elapsed_ms < 1500


def test_snmp_probe_restricted_to_v3(bed: SnmpdTestBed) -> None:
    probe = SnmpProbe()
    params = probe.parse_params(bed.address, {"oid_spec_list": "walk sysName", "version": "3"})
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=_store(bed))
    result = bed.run(lambda: probe.run(params, context))
    assert (result.version, result.credential_id) == ("3", "v3")
    assert result.varbinds[0][1].value == b"snmptest"


def test_every_credential_failing_says_so_and_skips_the_address(bed: SnmpdTestBed) -> None:
    store = CredentialStore(
        [
            SNMPCommunityCredential(id="bad1", community=Secret("mpc-bad-1")),
            SNMPv3Credential(
                id="badv3",
                user=bed.v3_user,
                auth_protocol="SHA",
                auth_key=Secret("mpa-not-the-key"),
                priv_protocol="AES",
                priv_key=Secret(bed.v3_priv_key),
            ),
        ],
        snmp_public_fallback=False,
    )
    probe = SnmpProbe()
    params = probe.parse_params(
        bed.address, {"oid_spec_list": "walk system", "timeout": "300", "retries": "0"}
    )
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=store)
    with pytest.raises(AuthenticationFailed) as caught:
        bed.run(lambda: probe.run(params, context))
    message = str(caught.value)
    assert "'bad1': no answer" in message
    assert "'badv3': wrong authentication key" in message
    with pytest.raises(AuthenticationFailed, match="skipped for another"):
        bed.run(lambda: probe.run(params, context))


def test_classify_probe_on_the_test_bed(bed: SnmpdTestBed) -> None:
    params = CLASSIFY_PROBE.parse_params(bed.address, {"credential_id": "ro"})
    context = ProbeContext(policy=TargetPolicy.lab(), credentials=_store(bed))
    result = bed.run(lambda: CLASSIFY_PROBE.run(params, context))
    assert result.classification.ci_class == LINUX_SERVER
    assert result.facts.sys_name == "snmptest"
    assert len(result.interfaces) == 2 * VETH_PAIRS + 1
    assert {interface.name for interface in result.interfaces} >= {"lo", "mpa0", "mpb99"}
    assert [entry.address for entry in result.ip_addresses] == ["127.0.0.1"]
