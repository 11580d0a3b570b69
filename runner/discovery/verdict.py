"""Everything one device's answers said, read together, and the class it all points to.

``midprobe scan`` and discovery classify a host the same way at its end: each ECC answer of the
host (``BannerSniff``, ``DNSNameResolver``, the nmap scans, ``SSHClassify``, ``SNMPClassify``) is laid
over one :class:`DeviceReadings` as it is read (``read``), and the rules of ``probes/classify`` weigh
all of it at once (:meth:`DeviceReadings.observations`): the open ports, the banners, nmap's services
and OS guess, ``uname``, sysObjectID and sysDescr, the SNMP capabilities and which logins worked.
The scan reports that verdict per host; discovery logs it when the device is done, and writes a CI
from it for a device no credentialed classifier could classify (:data:`COMBINED_MIN_CONFIDENCE`).
I/O-free: the callers fetch the answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from midprobe.probes.classify import Observations
from midprobe.probes.shazzam import ShazzamScanner
from midprobe.runner.discovery import readers
from midprobe.runner.ecc.payload import ResultsPayload

__all__ = ["COMBINED_MIN_CONFIDENCE", "NMAP_STAGES", "READ_TOPICS", "DeviceReadings"]

#: How the nmap topics are named in a report's error lines.
NMAP_STAGES: Final = {"NmapServiceScan": "nmap -sV", "NmapOSScan": "nmap -O", "NmapHostScan": "nmap"}
#: The topics whose answers :meth:`DeviceReadings.read` takes.
READ_TOPICS: Final = frozenset(
    {"BannerSniff", "DNSNameResolver", "SSHClassify", "SNMPClassify", *NMAP_STAGES}
)
#: The least confidence of a combined verdict that makes a CI of a device credentials did not classify.
COMBINED_MIN_CONFIDENCE: Final = 0.5


@dataclass
class DeviceReadings:
    """What the answers of one device said (each topic fills its own fields)."""

    host_name: str | None = None
    banners: dict[int, str] = field(default_factory=dict)
    #: What BannerSniff read (its SNMP tap's sysObjectID/sysDescr stand in when no credentialed SNMP answers).
    banner_reading: readers.BannerReading | None = None
    nmap: readers.NmapReading = field(default_factory=readers.NmapReading)
    uname: str | None = None
    os: dict[str, str] | None = None
    sys_descr: str | None = None
    sys_object_id: str | None = None
    credential_id: dict[str, str] = field(default_factory=dict)
    #: Shazzam scanner elements for what the banner readers found (BannerTCP, HTTP/HTTPS, SNMP).
    reader_scanners: tuple[ShazzamScanner, ...] = ()
    #: SNMP capabilities (routing, switching, printing) and what showed each, for the classifier.
    snmp_capabilities: dict[str, str] = field(default_factory=dict)
    #: A stage's failure, one line each (``dns: ...``); nmap's own lines follow in :attr:`all_errors`.
    errors: list[str] = field(default_factory=list)

    def read(self, topic: str, payload: ResultsPayload) -> None:
        """Lay one answer of ``topic`` (one of :data:`READ_TOPICS`; an error answer is the caller's) over
        what is known."""
        if topic == "DNSNameResolver":
            self.host_name = readers.read_host_name(payload) or self.host_name
        elif topic == "BannerSniff":
            reading = readers.read_banners(payload)
            self.banners.update(reading.banners)
            self.banner_reading = reading
            self.reader_scanners = reading.scanners
        elif topic in NMAP_STAGES:
            stage = NMAP_STAGES[topic]
            readers.read_nmap(payload, stage, self.nmap)
            if not self.nmap.reported:
                self.nmap.errors.append(f"{stage}: nmap reported nothing for the host")
        elif topic == "SSHClassify":
            ssh = readers.read_ssh(payload)
            self.credential_id["ssh"] = ssh.credential_id
            self.uname = ssh.uname
            self.os = ssh.os
        elif topic == "SNMPClassify":
            snmp = readers.read_snmp(payload)
            if snmp.credential_id:
                self.credential_id["snmp"] = snmp.credential_id
            self.sys_descr = snmp.sys_descr or self.sys_descr
            if snmp.sys_object_id is not None:
                self.sys_object_id = snmp.sys_object_id
            self.snmp_capabilities = snmp.capabilities
        else:
            raise ValueError(f"no reading for topic {topic!r}")

    def settle(self) -> None:
        """Once every answer is read: the credential-less SNMP tap (community ``public``) stands in for
        sysObjectID and sysDescr when no credentialed SNMP answered."""
        public = self.banner_reading
        if self.sys_object_id is None and public is not None and public.snmp_answered:
            self.sys_object_id = public.sys_object_id
            self.sys_descr = public.sys_descr

    @property
    def all_errors(self) -> tuple[str, ...]:
        return (*self.errors, *self.nmap.errors)

    def observations(self, address: str, open_ports: Iterable[int]) -> Observations:
        """What the classifier weighs for the device at ``address`` with these open TCP ports."""
        return Observations(
            address=address,
            open_tcp_ports=frozenset(open_ports),
            banners=self.banners,
            uname=self.uname,
            sys_object_id=self.sys_object_id,
            sys_descr=self.sys_descr,
            nmap_os_classes=tuple(self.nmap.os_classes),
            nmap_services=self.nmap.services,
            snmp_capabilities=self.snmp_capabilities,
            logged_in=frozenset(self.credential_id),
        )
