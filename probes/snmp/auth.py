"""How the SNMP client authenticates: a community (v1/v2c) or an SNMPv3 USM user.

The client takes these small typed objects, so it is usable without a credential store;
``auth_from_credential`` turns a stored credential into one. Secrets stay ``Secret``s
until the one line that hands them to the codec or to pysnmp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from midprobe.capabilities.errors import CredentialError
from midprobe.probes.credentials.model import SNMPCommunityCredential, SNMPv3Credential
from midprobe.probes.credentials.secret import Secret

SnmpVersion = Literal["1", "2c", "3"]
SNMP_VERSIONS: tuple[SnmpVersion, ...] = ("1", "2c", "3")

AUTH_PROTOCOLS = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
PRIV_PROTOCOLS = ("DES", "3DES", "AES", "AES192", "AES256", "AES192C", "AES256C")


@dataclass(frozen=True)
class CommunityAuth:
    """SNMP v1 or v2c with a community string."""

    community: Secret
    version: Literal["1", "2c"] = "2c"
    credential_id: str | None = None

    def __post_init__(self) -> None:
        if self.version not in ("1", "2c"):
            raise CredentialError(
                f"community auth needs version 1 or 2c, not {self.version!r}", field="version"
            )

    def with_index(self, index: str) -> CommunityAuth:
        """Cisco community indexing: ``community@index`` (e.g. one VLAN's bridge tables)."""
        if not index or index == "0":
            return self
        return CommunityAuth(Secret(f"{self.community.reveal()}@{index}"), self.version, self.credential_id)

    def describe(self) -> str:
        return f"v{self.version} community" + (f" {self.credential_id!r}" if self.credential_id else "")


@dataclass(frozen=True)
class UsmAuth:
    """An SNMPv3 USM user; ``auth_protocol=None`` is noAuthNoPriv, ``priv_protocol=None`` no privacy."""

    user: str
    auth_protocol: str | None = None
    auth_key: Secret | None = None
    priv_protocol: str | None = None
    priv_key: Secret | None = None
    context_name: str = ""
    credential_id: str | None = None

    def __post_init__(self) -> None:
        if not self.user:
            raise CredentialError("must be a non-empty string", field="user")
        if (self.auth_protocol is None) != (self.auth_key is None):
            raise CredentialError("auth_protocol and auth_key go together", field="auth_key")
        if (self.priv_protocol is None) != (self.priv_key is None):
            raise CredentialError("priv_protocol and priv_key go together", field="priv_key")
        if self.auth_protocol is not None and self.auth_protocol not in AUTH_PROTOCOLS:
            raise CredentialError(f"{self.auth_protocol!r} is not one of {', '.join(AUTH_PROTOCOLS)}")
        if self.priv_protocol is not None:
            if self.priv_protocol not in PRIV_PROTOCOLS:
                raise CredentialError(f"{self.priv_protocol!r} is not one of {', '.join(PRIV_PROTOCOLS)}")
            if self.auth_protocol is None:
                raise CredentialError("privacy needs authentication", field="priv_protocol")

    @property
    def version(self) -> Literal["3"]:
        return "3"

    @property
    def security_level(self) -> str:
        if self.priv_protocol is not None:
            return "authPriv"
        return "authNoPriv" if self.auth_protocol is not None else "noAuthNoPriv"

    def describe(self) -> str:
        who = f" {self.credential_id!r}" if self.credential_id else ""
        return f"v3 user {self.user!r} ({self.security_level}){who}"


SnmpAuth = CommunityAuth | UsmAuth


def auth_from_credential(credential: object) -> SnmpAuth:
    """The client auth for a stored SNMP credential (``CredentialError`` for anything else)."""
    if isinstance(credential, SNMPCommunityCredential):
        return CommunityAuth(credential.community, credential.version, credential.id)
    if isinstance(credential, SNMPv3Credential):
        return UsmAuth(
            user=credential.user,
            auth_protocol=credential.auth_protocol,
            auth_key=credential.auth_key,
            priv_protocol=credential.priv_protocol,
            priv_key=credential.priv_key,
            context_name=credential.context_name,
            credential_id=credential.id,
        )
    raise CredentialError(f"{type(credential).__name__} is not an SNMP credential")
