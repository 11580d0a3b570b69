"""SNMP failures by kind, under the one midprobe hierarchy, each with a message a user can act on.

SNMPv3 answers a bad credential with a Report naming a USM counter; each counter has its own
class here, so "wrong auth key" and "wrong privacy key" never read alike. v1/v2c agents stay
silent on a wrong community, so that surfaces as a timeout that says so.
"""

from __future__ import annotations

from midprobe.capabilities.errors import AuthenticationFailed, NetworkError, ProbeTimeout, ProtocolError


class SnmpTimeout(ProbeTimeout):
    """No answer to a request after every retry."""

    def __init__(self, target: str, timeout: float, attempts: int, *, community_based: bool) -> None:
        self.target = target
        self.attempts = attempts
        self.community_based = community_based
        hint = (
            "wrong community, no agent, or a filter: v1/v2c agents do not answer a bad community"
            if community_based
            else "no agent, a filter, or an agent that drops this user's requests"
        )
        super().__init__(
            f"SNMP request to {target} ({attempts} attempts of {timeout:g} s)", timeout, hint=hint
        )


class SnmpDeadlineExceeded(ProbeTimeout):
    """The probe's overall deadline ran out while it was still talking to the agent."""


class SnmpUnreachable(NetworkError):
    """The target answered with ICMP port/host unreachable: nothing listens on the SNMP port."""

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        super().__init__(f"SNMP agent {target} is unreachable: {reason}")


class SnmpAuthenticationFailed(AuthenticationFailed):
    """An SNMPv3 agent rejected the USM credential; ``counter`` names the usmStats counter."""

    counter = "usmStats"
    explanation = "the agent rejected the credential"

    def __init__(self, target: str, user: str, *, detail: str | None = None) -> None:
        self.target = target
        self.user = user
        self.detail = detail
        why = f"; {detail}" if detail else ""
        super().__init__(f"SNMPv3 user {user!r} at {target}: {self.explanation} ({self.counter}{why})")


class SnmpUnknownUser(SnmpAuthenticationFailed):
    counter = "usmStatsUnknownUserNames"
    explanation = "the agent does not know this user"


class SnmpWrongDigest(SnmpAuthenticationFailed):
    counter = "usmStatsWrongDigests"
    explanation = "wrong authentication key or protocol (the message digest did not verify)"


class SnmpDecryptionFailed(SnmpAuthenticationFailed):
    counter = "usmStatsDecryptionErrors"
    explanation = "wrong privacy key or protocol (the agent could not decrypt the request)"


class SnmpNotInTimeWindow(SnmpAuthenticationFailed):
    counter = "usmStatsNotInTimeWindows"
    explanation = "the request stayed outside the agent's time window after re-synchronising"


class SnmpUnsupportedSecurityLevel(SnmpAuthenticationFailed):
    counter = "usmStatsUnsupportedSecLevels"
    explanation = "the agent does not accept this security level for the user (auth/priv settings differ)"


class SnmpProtocolError(ProtocolError):
    """The agent's answer broke the protocol (malformed, mismatched, or an unexpected report)."""


class SnmpErrorStatus(SnmpProtocolError):
    """The agent answered with a non-zero error-status (``noAccess``, ``genErr``, ...)."""

    def __init__(self, target: str, status: int, status_name: str, index: int, oid: str | None) -> None:
        self.target = target
        self.status = status
        self.status_name = status_name
        self.index = index
        self.oid = oid
        where = f" at {oid}" if oid else ""
        super().__init__(f"SNMP agent {target} answered {status_name} ({status}){where}")


__all__ = [
    "SnmpAuthenticationFailed",
    "SnmpDeadlineExceeded",
    "SnmpDecryptionFailed",
    "SnmpErrorStatus",
    "SnmpNotInTimeWindow",
    "SnmpProtocolError",
    "SnmpTimeout",
    "SnmpUnknownUser",
    "SnmpUnreachable",
    "SnmpUnsupportedSecurityLevel",
    "SnmpWrongDigest",
]
