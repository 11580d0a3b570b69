"""Encodes parsed nmap scans as ECC ``<result>`` elements (pure; the layout is our choice, see docs/nmap.md).

One ``<result>`` per nmap run::

    <result topic="NmapHostScan" scan="host scan" nmap_version="7.93" exit="success" elapsed="2.31"
            hosts_up="1" hosts_down="0" hosts_total="1" args="nmap -PS ...">
      <host address="198.18.200.2" status="up" reason="user-set" hostname="..." mac="..."
            ci_class="cmdb_ci_linux_server">
        <port protocol="tcp" portid="22" state="open" reason="syn-ack" service="ssh" guess="false"
              method="probed" conf="10" product="OpenSSH" version="9.2p1 Debian 2+deb12u3"
              extrainfo="protocol 2.0"><cpe>cpe:/a:openbsd:openssh:9.2p1</cpe>
          <script id="ssh-hostkey" output="..."/></port>
        <extraports state="closed" count="995"/>
        <os name="Linux 4.15 - 5.8" accuracy="100" ci_class="cmdb_ci_linux_server">
          <osclass type="general purpose" vendor="Linux" family="Linux" generation="4.X" accuracy="100"/>
        </os>
        <script id="..." output="..."/>
      </host>
    </result>

``service`` carries nmap's display name, so a guess ends in ``?`` and has ``guess="true"``: per docs/ecc-reference.md
section 4 it creates nothing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from midprobe.probes.nmap.cmdb import cmdb_class_for_host, cmdb_class_for_os
from midprobe.probes.nmap.parse import NmapHost, NmapPort, NmapScan, NmapScriptOutput


def _set(element: ET.Element, **attributes: str | int | None) -> None:
    for name, value in attributes.items():
        if value is not None:
            element.set(name, str(value))


def _script(parent: ET.Element, script: NmapScriptOutput) -> None:
    ET.SubElement(parent, "script", id=script.id, output=script.output)


def _port(parent: ET.Element, port: NmapPort) -> None:
    element = ET.SubElement(parent, "port")
    _set(element, protocol=port.protocol, portid=port.portid, state=port.state, reason=port.reason)
    service = port.service
    if service is not None:
        _set(
            element,
            service=service.display_name,
            guess="true" if service.guessed else "false",
            method=service.method,
            conf=service.confidence,
            product=service.product,
            version=service.version,
            extrainfo=service.extrainfo,
            ostype=service.ostype,
            devicetype=service.devicetype,
            tunnel=service.tunnel,
        )
        for cpe in service.cpes:
            ET.SubElement(element, "cpe").text = cpe
    for script in port.scripts:
        _script(element, script)


def _host(parent: ET.Element, host: NmapHost, *, classify: bool) -> None:
    element = ET.SubElement(parent, "host")
    _set(
        element,
        address=host.address,
        status=host.status,
        reason=host.reason,
        hostname=host.hostname,
        mac=host.mac,
        timed_out="true" if host.timed_out else None,
        ci_class=cmdb_class_for_host(host) if classify and host.is_up else None,
    )
    for port in host.ports:
        _port(element, port)
    for extra in host.extraports:
        ET.SubElement(element, "extraports", state=extra.state, count=str(extra.count))
    for match in host.os_matches:
        os_element = ET.SubElement(
            element, "os", name=match.name, accuracy=str(match.accuracy), ci_class=cmdb_class_for_os(match)
        )
        for osclass in match.classes:
            _set(
                ET.SubElement(os_element, "osclass"),
                type=osclass.type,
                vendor=osclass.vendor,
                family=osclass.family,
                generation=osclass.generation,
                accuracy=osclass.accuracy,
            )
    for script in host.scripts:
        _script(element, script)


def encode_scan(scan: NmapScan, *, topic: str, label: str, classify: bool = False) -> ET.Element:
    """One ECC ``<result>`` for one nmap run; ``classify`` adds each live host's CMDB class."""
    result = ET.Element("result")
    _set(
        result,
        topic=topic,
        scan=label,
        nmap_version=scan.version,
        exit=scan.runstats.exit,
        elapsed=f"{scan.runstats.elapsed:g}",
        hosts_up=scan.runstats.hosts_up,
        hosts_down=scan.runstats.hosts_down,
        hosts_total=scan.runstats.hosts_total,
        args=scan.args,
    )
    for host in scan.hosts:
        _host(result, host, classify=classify)
    return result
