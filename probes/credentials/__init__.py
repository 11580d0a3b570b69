"""Credentials for SSH and SNMP: typed, loaded from one TOML file, ordered per device, never leaked.

Import from here; the submodules are the implementation.
"""

from __future__ import annotations

from midprobe.probes.credentials.loader import CredentialFile, load_credential_file, parse_credentials
from midprobe.probes.credentials.model import (
    AUTH_PROTOCOLS,
    CREDENTIAL_TYPES,
    DEFAULT_ORDER,
    PRIV_PROTOCOLS,
    PROTOCOL_SNMP,
    PROTOCOL_SSH,
    PROTOCOLS,
    Credential,
    CredentialBase,
    SecurityLevel,
    SNMPCommunityCredential,
    SNMPv3Credential,
    SNMPVersion,
    SSHPasswordCredential,
    SSHPrivateKeyCredential,
)
from midprobe.probes.credentials.secret import REDACTED, Secret
from midprobe.probes.credentials.store import (
    PUBLIC_COMMUNITY,
    PUBLIC_COMMUNITY_ID,
    AffinityStore,
    CredentialStore,
    InMemoryAffinityStore,
    order_candidates,
)
from midprobe.probes.credentials.tracker import Clock, FailurePolicy, FailureTracker

__all__ = [
    "AUTH_PROTOCOLS",
    "CREDENTIAL_TYPES",
    "DEFAULT_ORDER",
    "PRIV_PROTOCOLS",
    "PROTOCOLS",
    "PROTOCOL_SNMP",
    "PROTOCOL_SSH",
    "PUBLIC_COMMUNITY",
    "PUBLIC_COMMUNITY_ID",
    "REDACTED",
    "AffinityStore",
    "Clock",
    "Credential",
    "CredentialBase",
    "CredentialFile",
    "CredentialStore",
    "FailurePolicy",
    "FailureTracker",
    "InMemoryAffinityStore",
    "SNMPCommunityCredential",
    "SNMPVersion",
    "SNMPv3Credential",
    "SSHPasswordCredential",
    "SSHPrivateKeyCredential",
    "Secret",
    "SecurityLevel",
    "load_credential_file",
    "order_candidates",
    "parse_credentials",
]
