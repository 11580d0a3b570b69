"""The one error hierarchy of midprobe.

It lives in the foundation package because every other package may import
``midprobe.capabilities`` but not the reverse. Foreign exceptions (socket,
paramiko, pysnmp, sqlite3, psycopg) are translated into these where they enter.
Every error formats its own one-line message from structured fields.
"""

from __future__ import annotations


class MidprobeError(Exception):
    """Root of every error midprobe raises on purpose.

    The CLI turns any of these into one line on stderr and exit status 2.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as its class, arguments and fields, and rebuilt without ``__init__`` (whose
        parameters differ from class to class), so an error crosses a process boundary as it was
        raised (the scan engine's child process: ``probes/tcpscan/child.py``)."""
        return (_rebuilt, (type(self), self.args, dict(self.__dict__)))


def _rebuilt(kind: type[MidprobeError], args: tuple[object, ...], fields: dict[str, object]) -> MidprobeError:
    error = kind.__new__(kind)
    error.args = args
    error.__dict__.update(fields)
    return error


class ConfigError(MidprobeError):
    """Bad configuration or bad user input: names the file, entry and field when known."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        entry: str | None = None,
        field: str | None = None,
    ) -> None:
        self.source = source
        self.entry = entry
        self.field = field
        where = ": ".join(part for part in (source, entry, field) if part)
        super().__init__(f"{where}: {message}" if where else message)


class TargetSpecError(ConfigError):
    """A target specification (address, CIDR, range, host name) that cannot be parsed."""


class PortSpecError(ConfigError):
    """A port list in nmap syntax that cannot be parsed."""


class CredentialError(ConfigError):
    """A credential definition that is missing fields or cannot be read."""


class QueueUrlError(ConfigError):
    """A queue URL that names no supported backend or is malformed."""


class EncodedQueryError(ConfigError):
    """A ServiceNow encoded query (``sysparm_query``) that cannot be parsed: names the term and why."""

    def __init__(self, message: str, *, term: str | None = None) -> None:
        self.term = term
        super().__init__(f"term {term!r}: {message}" if term is not None else message, field="sysparm_query")


class NotAllowedByCapability(ConfigError):
    """A capability change that ServiceNow forbids, e.g. adding or removing ``Nmap`` by hand."""


class BadArgumentException(MidprobeError):  # the ServiceNow name, kept on purpose
    """A MID selection request names a capability that is not defined."""


class PayloadError(MidprobeError):
    """An ECC payload that is not well-formed, too large, or not of the expected shape."""


class QueueError(MidprobeError):
    """The ECC queue backend failed (connection lost, lock timeout, schema mismatch)."""


class LabError(MidprobeError):
    """The lab could not be built, queried or torn down."""


class ToolError(MidprobeError):
    """A program midprobe hands work to outside the probes (Graphviz drawing a map) is missing or failed."""


class NotInLab(MidprobeError):
    """Lab mode asked for in a network namespace whose routes lead outside the lab."""


class TargetNotAllowed(MidprobeError):
    """A target outside the networks the current safety policy allows."""

    def __init__(self, target: str, allowed: str) -> None:
        self.target = target
        self.allowed = allowed
        super().__init__(f"target {target} is outside the allowed networks ({allowed})")


class ProbeError(MidprobeError):
    """A probe failed; the runner turns this into an ECC error result."""


class ProbeParameterError(ProbeError):
    """A probe request whose parameters do not validate."""

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        self.parameter = parameter
        super().__init__(f"parameter {parameter!r}: {message}" if parameter else message)


class ProbeTimeout(ProbeError):
    """A probe, connection or command ran past its deadline."""

    def __init__(self, what: str, timeout: float, *, hint: str | None = None) -> None:
        self.what = what
        self.timeout = timeout
        #: What usually causes this time-out, for the user (shown in parentheses).
        self.hint = hint
        super().__init__(f"{what} timed out after {timeout:g} s" + (f" ({hint})" if hint else ""))


class ConnectTimeout(ProbeTimeout):
    """No answer while connecting."""


class ReadTimeout(ProbeTimeout):
    """Connected, but the peer stopped answering."""


class NetworkError(ProbeError):
    """The network refused or dropped the connection."""


class ChannelOpenFailed(NetworkError):
    """No channel could be opened on an SSH connection: the command did not start."""


class AuthenticationFailed(ProbeError):
    """The device rejected every credential offered."""


class ProtocolError(ProbeError):
    """The device answered with something the protocol does not allow."""


class HostKeyMismatch(ProbeError):
    """An SSH server offered a host key other than the one recorded for it (strict mode refuses)."""

    def __init__(self, host: str, recorded: str, offered: str) -> None:
        self.host = host
        self.recorded = recorded
        self.offered = offered
        super().__init__(
            f"host key of {host} changed: recorded {recorded}, offered {offered}; "
            "refusing to connect in strict host key mode"
        )


class SudoFailed(ProbeError):
    """sudo did not run a command as root: no rule for the user, a password it refused, or none to give."""

    def __init__(self, command: str, user: str, host: str, reason: str) -> None:
        self.command = command
        self.user = user
        self.host = host
        self.reason = reason
        super().__init__(f"sudo refused to run {command!r} as root for {user} on {host}: {reason}")


class MissingCapability(ProbeError):
    """This agent lacks a capability the topic needs (e.g. ``Nmap``)."""

    def __init__(self, topic: str, capability: str) -> None:
        self.topic = topic
        self.capability = capability
        super().__init__(f"topic {topic} needs the {capability} capability, which this agent does not have")


__all__ = [
    "AuthenticationFailed",
    "BadArgumentException",
    "ConfigError",
    "ConnectTimeout",
    "CredentialError",
    "EncodedQueryError",
    "HostKeyMismatch",
    "LabError",
    "MidprobeError",
    "MissingCapability",
    "NetworkError",
    "NotAllowedByCapability",
    "PayloadError",
    "PortSpecError",
    "ProbeError",
    "ProbeParameterError",
    "ProbeTimeout",
    "ProtocolError",
    "QueueError",
    "QueueUrlError",
    "ReadTimeout",
    "SudoFailed",
    "TargetNotAllowed",
    "TargetSpecError",
]
