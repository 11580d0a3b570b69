"""SNMP probe parameters, table row filtering and the result XML (pure parts)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from midprobe.capabilities.errors import ConfigError, ProbeParameterError, TargetNotAllowed
from midprobe.probes.base import ProbeContext
from midprobe.probes.credentials import Secret
from midprobe.probes.registry import default_registry
from midprobe.probes.safety import TargetPolicy
from midprobe.probes.snmp.auth import CommunityAuth, UsmAuth
from midprobe.probes.snmp.client import ClientOptions, SnmpClient
from midprobe.probes.snmp.oidspec import TableSpec, parse_oid_spec_list
from midprobe.probes.snmp.query import PROBE, SnmpResult, SpecOutcome, encode_snmp_result, rows_of
from midprobe.probes.snmp.values import SnmpType, SnmpValue

IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)


def test_defaults_and_parsing() -> None:
    params = PROBE.parse_params("198.18.0.11", {"oid_spec_list": "walk system"})
    connection = params.connection
    assert (connection.timeout_ms, connection.retries, connection.use_getbulk, connection.port) == (
        1500,
        2,
        True,
        161,
    )
    assert connection.version is None
    assert connection.credential_id is None
    options = connection.session_request("198.18.0.11").options
    assert (options.timeout, options.retries, options.use_bulk) == (1.5, 2, True)
    params = PROBE.parse_params(
        " switch1 ",
        {
            "oid_spec_list": "walk system",
            "timeout": "250",
            "retries": "0",
            "use_getbulk": "False",
            "port": "1161",
            "version": "v2c",
            "credential_id": "ro",
            "credential_tag": "lab",
            "index": "20",
        },
    )
    connection = params.connection
    assert connection.source == "switch1"
    assert (connection.timeout_ms, connection.retries, connection.use_getbulk, connection.port) == (
        250,
        0,
        False,
        1161,
    )
    assert (connection.version, connection.credential_id, connection.credential_tag) == ("2c", "ro", "lab")
    assert connection.community_index == "20"


@pytest.mark.parametrize(
    ("parameters", "parameter"),
    [
        ({}, "oid_spec_list"),
        ({"oid_spec_list": "  "}, "oid_spec_list"),
        ({"oid_spec_list": "walk system", "timeout": "soon"}, "timeout"),
        ({"oid_spec_list": "walk system", "timeout": "0"}, "timeout"),
        ({"oid_spec_list": "walk system", "retries": "-1"}, "retries"),
        ({"oid_spec_list": "walk system", "use_getbulk": "perhaps"}, "use_getbulk"),
        ({"oid_spec_list": "walk system", "port": "70000"}, "port"),
        ({"oid_spec_list": "walk system", "version": "4"}, "version"),
        ({"oid_spec_list": "walk system", "index": "1;2"}, "index"),
        ({"oid_spec_list": "bogus"}, "oid_spec_list"),
    ],
)
def test_bad_parameters_name_themselves(parameters: dict[str, str], parameter: str) -> None:
    with pytest.raises(ProbeParameterError) as caught:
        PROBE.parse_params("198.18.0.11", parameters)
    assert caught.value.parameter == parameter


def test_source_is_required() -> None:
    with pytest.raises(ProbeParameterError, match="needs a source"):
        PROBE.parse_params("", {"oid_spec_list": "walk system"})


def _int(n: int) -> SnmpValue:
    return SnmpValue(SnmpType.INTEGER, n)


def _str(text: str) -> SnmpValue:
    return SnmpValue(SnmpType.OCTET_STRING, text.encode())


def test_rows_of_keeps_rows_where_any_filter_matches() -> None:
    (spec,) = parse_oid_spec_list("table ifTable ifIndex,ifDescr(#Gi),ifType(=24)")
    assert isinstance(spec, TableSpec)
    index = [((*IF_ENTRY, 1, n), _int(n)) for n in (1, 2, 3, 4)]
    descr = [
        ((*IF_ENTRY, 2, n), _str(name))
        for n, name in ((1, "lo"), (2, "eth0"), (3, "Gi1-0-1"), (4, "Gi1-0-2"))
    ]
    kind = [((*IF_ENTRY, 3, n), _int(t)) for n, t in ((1, 24), (2, 6), (3, 6))]  # row 4 has no ifType
    rows = rows_of(spec, [index, descr, kind])
    instances = sorted({oid[-1] for oid, _ in rows})
    assert instances == [1, 3, 4]  # lo by ifType, the Gi ports by ifDescr; eth0 matches neither
    assert [oid for oid, _ in rows][:3] == [(*IF_ENTRY, 1, 1), (*IF_ENTRY, 2, 1), (*IF_ENTRY, 3, 1)]


def test_rows_of_without_filters_keeps_sparse_rows() -> None:
    (spec,) = parse_oid_spec_list("table ifTable ifIndex,ifDescr")
    assert isinstance(spec, TableSpec)
    rows = rows_of(spec, [[((*IF_ENTRY, 1, 1), _int(1))], [((*IF_ENTRY, 2, 7), _str("x"))]])
    assert [oid[-1] for oid, _ in rows] == [1, 7]


def test_result_xml_reports_spec_errors_and_early_stops() -> None:
    walk, table = parse_oid_spec_list("walk system\ntable ifTable ifIndex")
    result = SnmpResult(
        source="switch1",
        address="198.18.0.11",
        port=161,
        version="2c",
        credential_id="ro",
        outcomes=(
            SpecOutcome(
                walk, (((1, 3, 6, 1, 2, 1, 1, 5, 0), _str("switch1")),), stopped="OID not increasing: x"
            ),
            SpecOutcome(table, error="SNMP agent 198.18.0.11:161 answered genErr (5)"),
        ),
    )
    root = ET.fromstring(ET.tostring(encode_snmp_result(result)))
    snmp = root.find("snmp")
    assert snmp is not None
    assert snmp.attrib == {
        "source": "switch1",
        "address": "198.18.0.11",
        "port": "161",
        "version": "2c",
        "credential_id": "ro",
    }
    assert snmp.findtext("system/sysName") == "switch1"
    warning, error = root.find("warning"), root.find("error")
    assert warning is not None
    assert warning.get("spec") == "walk system"
    assert warning.get("line") == "1"
    assert error is not None
    assert error.get("line") == "2"
    assert "genErr" in (error.text or "")


def test_registered_under_both_topics() -> None:
    registry = default_registry()
    assert registry.get("SNMP") is PROBE
    assert "SNMPClassify" in registry


def test_client_refuses_targets_outside_the_policy_before_sending() -> None:
    with pytest.raises(TargetNotAllowed):
        SnmpClient("192.0.2.7", CommunityAuth(Secret("x")), policy=TargetPolicy.lab())
    with pytest.raises(ConfigError, match="not an IP address"):
        SnmpClient("switch1", CommunityAuth(Secret("x")))


def test_probe_refuses_targets_outside_the_policy() -> None:
    params = PROBE.parse_params("192.0.2.7", {"oid_spec_list": "walk system"})
    with pytest.raises(TargetNotAllowed):
        asyncio.run(PROBE.run(params, ProbeContext(policy=TargetPolicy.lab())))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"timeout": 0}, "timeout"), ({"retries": 99}, "retries"), ({"initial_bulk": 0}, "initial_bulk")],
)
def test_client_options_validate(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ClientOptions(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_auth_objects_never_show_secrets() -> None:
    community = CommunityAuth(Secret("s3cret-community"), "2c", "ro")
    user = UsmAuth("monitor", "SHA", Secret("auth-s3cret"), "AES", Secret("priv-s3cret"), credential_id="v3")
    text = repr(community) + repr(user) + community.describe() + user.describe()
    assert "s3cret" not in text
    assert user.security_level == "authPriv"
    assert community.with_index("20").community.reveal() == "s3cret-community@20"
    with pytest.raises(ConfigError):
        UsmAuth("monitor", None, None, "AES", Secret("priv-s3cret"))
