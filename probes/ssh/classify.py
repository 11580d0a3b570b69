"""``SSHClassify``: log in once, run the identification commands, and classify the host.

The commands (``CLASSIFY_COMMANDS``, a data table) run one after another on one
connection; each answers in the ECC ``<result command=..>`` shape, followed by one
``<result classification="cmdb_ci_..">`` holding the typed facts the parsers found and the
evidence for the class the shared classifier (``midprobe.probes.classify``) chose from ``uname -a``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from midprobe.probes.base import ProbeContext
from midprobe.probes.classify import Classifier
from midprobe.probes.ssh.channel import CommandOutput
from midprobe.probes.ssh.command import (
    SSHProbeBase,
    SSHScriptParams,
    encode_command_output,
    parse_script_params,
    run_command,
    xml_text,
)
from midprobe.probes.ssh.known_hosts import KnownHostsStore
from midprobe.probes.ssh.parsers import UnixFacts, unix_facts
from midprobe.probes.ssh.session import ConnectionInfo

TOPIC = "SSHClassify"
#: (fact source name, command). Fallbacks keep each command useful on hosts without /etc/os-release or ip.
CLASSIFY_COMMANDS: tuple[tuple[str, str], ...] = (
    ("uname", "uname -a"),
    ("os_release", "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release"),
    ("hostname", "hostname"),
    ("addresses", "ip -o addr show 2>/dev/null || hostname -I"),
    ("cpuinfo", "cat /proc/cpuinfo"),
    ("meminfo", "cat /proc/meminfo"),
)


@dataclass(frozen=True)
class SSHClassifyResult:
    outputs: tuple[CommandOutput, ...]
    facts: UnixFacts
    connection: ConnectionInfo
    credentials_debug: bool = False


def encode_facts(facts: UnixFacts, connection: ConnectionInfo) -> ET.Element:
    """``<result classification=..>`` with ``<os>``, ``<kernel>``, ..., ``<address>`` and ``<evidence>``."""
    element = ET.Element(
        "result", credential_id=connection.credential_id, host_key=connection.host_key.describe()
    )
    if facts.ci_class is not None:
        element.set("classification", facts.ci_class)

    def child(tag: str, **attributes: str | int | None) -> None:
        present = {name: xml_text(str(value)) for name, value in attributes.items() if value is not None}
        if present:
            ET.SubElement(element, tag, present)

    child(
        "os", name=facts.os_name, version=facts.os_version, id=facts.os_id, pretty_name=facts.os_pretty_name
    )
    child("kernel", name=facts.kernel_name, release=facts.kernel_release, machine=facts.machine)
    if facts.hostname:
        ET.SubElement(element, "hostname").text = xml_text(facts.hostname)
    child("cpu", count=facts.cpu_count, model=facts.cpu_model)
    child("memory", mb=facts.memory_mb)
    for address in facts.addresses:
        child(
            "address",
            ip=address.address,
            prefix_length=address.prefix_length,
            interface=address.interface,
            scope=address.scope,
        )
    for reason in facts.evidence:
        ET.SubElement(element, "evidence").text = xml_text(reason)
    return element


class SSHClassifyProbe(SSHProbeBase):
    topic = TOPIC

    def __init__(
        self,
        known_hosts: KnownHostsStore | None = None,
        *,
        strict_host_keys: bool = False,
        classifier: Classifier | None = None,
    ) -> None:
        super().__init__(known_hosts, strict_host_keys=strict_host_keys)
        #: The rules table to classify with; ``None``: the one shipped (``probes/classify/rules.toml``).
        self.classifier = classifier

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> SSHScriptParams:
        return parse_script_params(source, parameters)

    async def run(self, params: SSHScriptParams, context: ProbeContext) -> SSHClassifyResult:
        outputs: list[CommandOutput] = []
        async with self._connect(params.options, context) as connection:
            for _, command in CLASSIFY_COMMANDS:
                outputs.append(
                    await run_command(connection, command, params.options, max_output=params.max_output_bytes)
                )
            info = connection.info
        stdout = {
            name: output.stdout if output.exit_status == 0 else None
            for (name, _), output in zip(CLASSIFY_COMMANDS, outputs, strict=True)
        }
        facts = unix_facts(stdout, address=params.options.host, classifier=self.classifier)
        return SSHClassifyResult(tuple(outputs), facts, info, params.options.credentials_debug)

    def encode_results(self, result: SSHClassifyResult) -> Sequence[ET.Element]:
        elements = [
            encode_command_output(output, result.connection, credentials_debug=result.credentials_debug)
            for output in result.outputs
        ]
        elements.append(encode_facts(result.facts, result.connection))
        return elements


PROBE = SSHClassifyProbe()
