"""``SSHCommand``: run one command on a host over SSH and return its stdout, stderr and exit status.

Parameters and defaults follow docs/ecc-reference.md section 4; the result is
``<result command=".."><stdout>..</stdout><stderr>..</stderr></result>`` with the exit
status, the credential id that worked and the host key fingerprint as attributes.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from midprobe.capabilities.errors import ProbeError, ProbeParameterError
from midprobe.probes.base import ProbeContext
from midprobe.probes.credentials import CredentialStore
from midprobe.probes.ssh.channel import DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_PATH, CommandOutput
from midprobe.probes.ssh.connections import SSHConnectionPool
from midprobe.probes.ssh.known_hosts import FileKnownHosts, InMemoryKnownHosts, KnownHostsStore
from midprobe.probes.ssh.session import ConnectionInfo, SSHConnection, SSHTimeouts, ssh_connection
from midprobe.probes.xml_encode import xml_safe_text

TOPIC = "SSHCommand"
#: Environment variable naming the known_hosts file the default probes record host keys in.
KNOWN_HOSTS_ENV = "MIDPROBE_KNOWN_HOSTS"

_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


@dataclass(frozen=True)
class SSHOptions:
    """What every SSH probe request shares: where, how long, which credentials, host key policy."""

    host: str
    port: int = 22
    connect_timeout_ms: int = 15_000
    command_timeout_ms: int = 300_000
    channel_timeout_ms: int = 300_000
    credential_id: str | None = None
    credential_tag: str | None = None
    #: None: the probe's default (``strict_host_keys`` of the probe object).
    strict_host_key_checking: bool | None = None
    #: Adds the ids of the credentials tried to the result (never the secrets).
    credentials_debug: bool = False

    def timeouts(self) -> SSHTimeouts:
        return SSHTimeouts(
            connect=self.connect_timeout_ms / 1000.0,
            auth=self.connect_timeout_ms / 1000.0 * 2,
            command=self.command_timeout_ms / 1000.0,
            channel=self.channel_timeout_ms / 1000.0,
        )


@dataclass(frozen=True)
class SSHCommandParams:
    options: SSHOptions
    command: str
    must_sudo: bool = False
    #: Directories put first on PATH; None when ``set_path`` is false.
    set_path: str | None = DEFAULT_PATH
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES


@dataclass(frozen=True)
class SSHCommandResult:
    output: CommandOutput
    connection: ConnectionInfo
    credentials_debug: bool = False


# -- parameter parsing (pure) ---------------------------------------------------------------------


def parse_ssh_options(source: str, parameters: Mapping[str, str]) -> SSHOptions:
    """The shared SSH parameters of an ECC request (raises ``ProbeParameterError`` naming the parameter)."""
    try:
        host = str(ipaddress.ip_address(source.strip()))
    except ValueError:
        raise ProbeParameterError("must be an IP address", parameter="source") from None
    return SSHOptions(
        host=host,
        port=parse_int(parameters, "port", 22, minimum=1, maximum=65535),
        connect_timeout_ms=parse_int(parameters, "connect_timeout_ms", 15_000, minimum=1),
        command_timeout_ms=parse_int(parameters, "command_timeout_ms", 300_000, minimum=1),
        channel_timeout_ms=parse_int(parameters, "channel_timeout_ms", 300_000, minimum=1),
        credential_id=parameters.get("credential_id") or None,
        credential_tag=parameters.get("credential_tag") or None,
        strict_host_key_checking=(
            parse_bool(parameters, "strict_host_key_checking", False)
            if parameters.get("strict_host_key_checking")
            else None
        ),
        credentials_debug=parse_bool(parameters, "credentials_debug", False),
    )


def parse_bool(parameters: Mapping[str, str], name: str, default: bool) -> bool:
    raw = parameters.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ProbeParameterError("must be true or false", parameter=name)


def parse_int(
    parameters: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    raw = parameters.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ProbeParameterError("must be an integer", parameter=name) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ProbeParameterError(f"must be {bound}", parameter=name)
    return value


def parse_command_params(source: str, parameters: Mapping[str, str]) -> SSHCommandParams:
    command = (parameters.get("name") or parameters.get("command") or "").strip()
    if not command:
        raise ProbeParameterError("the command to run is missing", parameter="name")
    raw_path = (parameters.get("set_path") or "true").strip()
    set_path: str | None
    if raw_path.startswith("/"):
        set_path = raw_path
    else:
        set_path = DEFAULT_PATH if parse_bool({"set_path": raw_path}, "set_path", True) else None
    if set_path is not None and not re.fullmatch(r"[A-Za-z0-9_./:+-]+", set_path):
        raise ProbeParameterError("may hold only letters, digits and _ . / : + -", parameter="set_path")
    return SSHCommandParams(
        options=parse_ssh_options(source, parameters),
        command=command,
        must_sudo=parse_bool(parameters, "must_sudo", False),
        set_path=set_path,
        max_output_bytes=parse_int(
            parameters, "max_output_bytes", DEFAULT_MAX_OUTPUT_BYTES, minimum=1024, maximum=256 * 1024 * 1024
        ),
    )


# -- result encoding (pure) -----------------------------------------------------------------------


def xml_text(text: str) -> str:
    """``text`` with characters XML 1.0 forbids replaced by U+FFFD (command output may hold any byte)."""
    return xml_safe_text(text)


def encode_command_output(
    output: CommandOutput, connection: ConnectionInfo | None, *, credentials_debug: bool = False
) -> ET.Element:
    """``<result command=.. exit_status=.. credential_id=.. host_key=..><stdout/><stderr/></result>``."""
    element = ET.Element("result", command=xml_text(output.command))
    if output.exit_status is not None:
        element.set("exit_status", str(output.exit_status))
    if output.truncated:
        element.set("truncated", "true")
    element.set("elapsed_ms", f"{output.elapsed_ms:g}")
    if connection is not None:
        element.set("credential_id", connection.credential_id)
        element.set("host_key", connection.host_key.describe())
        element.set("host_key_status", connection.host_key_status)
        if credentials_debug:
            element.set("credentials_tried", ",".join(connection.credentials_tried))
    ET.SubElement(element, "stdout").text = xml_text(output.stdout)
    ET.SubElement(element, "stderr").text = xml_text(output.stderr)
    return element


# -- the probe ------------------------------------------------------------------------------------


def default_known_hosts() -> KnownHostsStore:
    """The file named by ``MIDPROBE_KNOWN_HOSTS`` when set, else an in-memory store for this process.

    One store per file (or one in memory) for the whole process, so the default probes check host
    keys against the same store, and so may share pooled connections (``connections.py``).
    """
    return _known_hosts_store(os.environ.get(KNOWN_HOSTS_ENV) or None)


@functools.cache
def _known_hosts_store(path: str | None) -> KnownHostsStore:
    return FileKnownHosts(path) if path else InMemoryKnownHosts()


def credential_store(context: ProbeContext) -> CredentialStore:
    store = context.credentials
    if not isinstance(store, CredentialStore):
        raise ProbeError("no credentials were given: pass a credentials file (--credentials FILE)")
    return store


#: Output kept per command by the probes that run a fixed list of commands (classify, explore).
SCRIPT_OUTPUT_CAP = 256 * 1024


@dataclass(frozen=True)
class SSHScriptParams:
    """The parameters of a probe that runs its own fixed list of commands (SSHClassify,
    SSHIdentity, SSHExplore): where and how to connect, and how much output to keep per command."""

    options: SSHOptions
    max_output_bytes: int = SCRIPT_OUTPUT_CAP


def parse_script_params(source: str, parameters: Mapping[str, str]) -> SSHScriptParams:
    return SSHScriptParams(
        options=parse_ssh_options(source, parameters),
        max_output_bytes=parse_int(
            parameters, "max_output_bytes", SCRIPT_OUTPUT_CAP, minimum=1024, maximum=64 * 1024 * 1024
        ),
    )


async def run_command(
    connection: SSHConnection,
    command: str,
    options: SSHOptions,
    *,
    max_output: int,
    must_sudo: bool = False,
    set_path: str | None = DEFAULT_PATH,
) -> CommandOutput:
    """``command`` on ``connection`` with the request's command and channel timeouts."""
    return await connection.run(
        command,
        must_sudo=must_sudo,
        set_path=set_path,
        max_output=max_output,
        command_timeout=options.command_timeout_ms / 1000.0,
        channel_timeout=options.channel_timeout_ms / 1000.0,
    )


class SSHProbeBase:
    """Known hosts and host key policy shared by the SSH probes."""

    required_capabilities: tuple[str, ...] = ()

    def __init__(self, known_hosts: KnownHostsStore | None = None, *, strict_host_keys: bool = False) -> None:
        self._known_hosts = known_hosts
        self.strict_host_keys = strict_host_keys

    @property
    def known_hosts(self) -> KnownHostsStore:
        if self._known_hosts is None:
            self._known_hosts = default_known_hosts()
        return self._known_hosts

    def _connect(
        self, options: SSHOptions, context: ProbeContext
    ) -> contextlib.AbstractAsyncContextManager[SSHConnection]:
        """Check the target against the policy, then connect and log in (see ``ssh_connection``)."""
        context.policy.check(options.host)
        strict = (
            self.strict_host_keys
            if options.strict_host_key_checking is None
            else options.strict_host_key_checking
        )
        # With the runner's pool, requests for the same host and credential share a connection.
        connect = ssh_connection if context.shared is None else context.shared.get(SSHConnectionPool).lease
        return connect(
            options.host,
            options.port,
            store=credential_store(context),
            known_hosts=self.known_hosts,
            strict_host_keys=strict,
            timeouts=options.timeouts(),
            deadline=min(context.deadline, time.monotonic() + _total_budget(options)),
            restrict_id=options.credential_id,
            restrict_tag=options.credential_tag,
        )


def _total_budget(options: SSHOptions) -> float:
    """An upper bound for one request, so even a generous context deadline cannot be exceeded forever."""
    return (options.connect_timeout_ms * 4 + options.command_timeout_ms * 8) / 1000.0


class SSHCommandProbe(SSHProbeBase):
    topic = TOPIC

    def parse_params(self, source: str, parameters: Mapping[str, str]) -> SSHCommandParams:
        return parse_command_params(source, parameters)

    async def run(self, params: SSHCommandParams, context: ProbeContext) -> SSHCommandResult:
        async with self._connect(params.options, context) as connection:
            output = await run_command(
                connection,
                params.command,
                params.options,
                max_output=params.max_output_bytes,
                must_sudo=params.must_sudo,
                set_path=params.set_path,
            )
            return SSHCommandResult(output, connection.info, params.options.credentials_debug)

    def encode_results(self, result: SSHCommandResult) -> Sequence[ET.Element]:
        return [
            encode_command_output(
                result.output, result.connection, credentials_debug=result.credentials_debug
            )
        ]


PROBE = SSHCommandProbe()
