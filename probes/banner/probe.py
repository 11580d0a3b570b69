"""The ``BannerSniff`` topic: the ECC ``<result>`` encoder (pure) and the probe object."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

from midprobe.probes.banner.parsers import (
    SYS_DESCR,
    SYS_OBJECT_ID,
    TOPIC,
    BannerParams,
    BannerResult,
    parse_banner_params,
)
from midprobe.probes.banner.sniffer import sniff
from midprobe.probes.base import ProbeContext
from midprobe.probes.ports import service_name
from midprobe.probes.xml_encode import scanner_element, sub_element

# --- the ECC payload (pure) ------------------------------------------------------------------------


def encode_banners(result: BannerResult) -> ET.Element:
    """``<result><host ip=".."><scanner name="BannerTCP" port="22" .../>...</host></result>``."""
    element = ET.Element("result")
    host = sub_element(
        element,
        "host",
        ip=result.address,
        elapsed_ms=str(result.elapsed_ms),
        hostName=result.host_name or None,
    )
    for port in result.ports:
        http, tls = port.http, port.tls
        scanner = scanner_element(
            host,
            name=port.scanner,
            port=port.port,
            portprobe=service_name(port.port, port.protocol),
            protocol=port.protocol,
            result=port.state,
            service=port.service,
            banner_text=port.banner or None,
            http_status=None if http is None else str(http.status),
            http_status_line=None if http is None else http.status_line,
            http_server=None if http is None else http.server,
            tls_version=None if tls is None else tls.version,
            tls_cipher=None if tls is None else tls.cipher,
            tls_subject=None if tls is None else tls.subject,
            tls_issuer=None if tls is None else tls.issuer,
            tls_not_after=None if tls is None else tls.not_after,
            detail=port.detail or None,
        )
        if port.snmp is not None:
            from midprobe.probes.snmp.values import SnmpType, format_oid  # only with an SNMP tap

            if port.snmp.sys_object_id is not None:
                oid = format_oid(SYS_OBJECT_ID[:-1])
                sub_element(
                    scanner, "sysObjectID", port.snmp.sys_object_id, oid=oid, type=SnmpType.OBJECT_ID.value
                )
            if port.snmp.sys_descr is not None:
                oid = format_oid(SYS_DESCR[:-1])
                sub_element(
                    scanner, "sysDescr", port.snmp.sys_descr, oid=oid, type=SnmpType.OCTET_STRING.value
                )
    return element


class BannerSniffProbe:
    topic = TOPIC
    required_capabilities: tuple[str, ...] = ()

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> BannerParams:
        return parse_banner_params(source, parameters)

    async def run(self, params: BannerParams, context: ProbeContext) -> BannerResult:
        return await sniff(params, context)

    def encode_results(self, result: BannerResult) -> Sequence[ET.Element]:
        return [encode_banners(result)]


PROBE = BannerSniffProbe()
#: The package's other names for it (``probes/banner/__init__.py``); the registry reads ``PROBES``.
BANNER_SNIFF_PROBE = PROBE
PROBES = (PROBE,)
