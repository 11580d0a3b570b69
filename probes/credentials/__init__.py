"""Credentials for SSH and SNMP: typed, loaded from one TOML file, ordered per device, never leaked.

Import from here; the submodules are the implementation, each loaded when a name of it is first
used (the redaction helpers of ``redact`` do not pull in the credential model and loader).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from midprobe.probes.lazy import lazy_names

if TYPE_CHECKING:
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

#: Which submodule defines each name of the package.
_DEFINED_IN: dict[str, str] = {
    "CredentialFile": "loader",
    "load_credential_file": "loader",
    "parse_credentials": "loader",
    "AUTH_PROTOCOLS": "model",
    "CREDENTIAL_TYPES": "model",
    "DEFAULT_ORDER": "model",
    "PRIV_PROTOCOLS": "model",
    "PROTOCOL_SNMP": "model",
    "PROTOCOL_SSH": "model",
    "PROTOCOLS": "model",
    "Credential": "model",
    "CredentialBase": "model",
    "SecurityLevel": "model",
    "SNMPCommunityCredential": "model",
    "SNMPv3Credential": "model",
    "SNMPVersion": "model",
    "SSHPasswordCredential": "model",
    "SSHPrivateKeyCredential": "model",
    "REDACTED": "secret",
    "Secret": "secret",
    "PUBLIC_COMMUNITY": "store",
    "PUBLIC_COMMUNITY_ID": "store",
    "AffinityStore": "store",
    "CredentialStore": "store",
    "InMemoryAffinityStore": "store",
    "order_candidates": "store",
    "Clock": "tracker",
    "FailurePolicy": "tracker",
    "FailureTracker": "tracker",
}


if not TYPE_CHECKING:  # the type checker reads the names above, and flags any other
    __getattr__ = lazy_names(__name__, _DEFINED_IN)


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
