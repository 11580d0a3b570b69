"""The credential types: frozen dataclasses, one per ``type`` of the credentials file.

Every secret field is a :class:`~midprobe.probes.credentials.secret.Secret`, so a
credential can be printed, logged or put in an exception without leaking it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NoReturn, Self, SupportsIndex

from midprobe.capabilities.errors import CredentialError
from midprobe.probes.credentials.secret import Secret
from midprobe.probes.safety import IPAddress, IPNetwork

if TYPE_CHECKING:  # only named in an annotation: an agent without SSH work never imports paramiko
    import paramiko

#: Protocol families a credential serves; affinity is kept per device and family.
PROTOCOL_SSH = "ssh"
PROTOCOL_SNMP = "snmp"
PROTOCOLS: tuple[str, ...] = (PROTOCOL_SSH, PROTOCOL_SNMP)

#: ``order`` of a credential that does not say (ServiceNow's default order is 100 as well).
DEFAULT_ORDER = 100

SNMPVersion = Literal["1", "2c"]
SNMP_VERSIONS: tuple[SNMPVersion, ...] = ("1", "2c")

#: SNMPv3 authentication protocols (RFC 3414 MD5/SHA-1, RFC 7860 SHA-2).
AUTH_PROTOCOLS: tuple[str, ...] = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
#: SNMPv3 privacy protocols. ``AES192``/``AES256`` extend the key as net-snmp does
#: (Blumenthal draft); ``AES192C``/``AES256C`` as Cisco does (Reeder draft).
PRIV_PROTOCOLS: tuple[str, ...] = ("DES", "3DES", "AES", "AES192", "AES256", "AES192C", "AES256C")

_PROTOCOL_ALIASES: dict[str, str] = {
    "SHA1": "SHA",
    "HMACSHA": "SHA",
    "AES128": "AES",
    "DES3": "3DES",
    "3DESEDE": "3DES",
    "TRIPLEDES": "3DES",
}

#: RFC 3414 section 11.2: a localised key is derived from a passphrase of at least 8 octets.
MIN_SNMPV3_KEY_LENGTH = 8


class InvalidField(ValueError):
    """Internal: one field is wrong. The loader adds the file and entry; never holds a value."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name
        self.message = message


def normalise_protocol_name(value: str) -> str:
    """``sha-256`` -> ``SHA256``, ``AES-128`` -> ``AES``, ``3des`` -> ``3DES``."""
    squeezed = value.upper().replace("-", "").replace("_", "").replace(" ", "")
    return _PROTOCOL_ALIASES.get(squeezed, squeezed)


@dataclass(frozen=True, kw_only=True)
class CredentialBase:
    """Keys every credential has, whatever its type."""

    id: str
    #: Lower is tried first; equal orders keep the file order.
    order: int = DEFAULT_ORDER
    tags: frozenset[str] = frozenset()
    #: Optional scope: the credential is offered only to addresses inside one of these.
    ip_ranges: tuple[IPNetwork, ...] = ()
    #: Authentication failures allowed across all devices per budget window (None: the tracker's default).
    failure_budget: int | None = None

    type: ClassVar[str]
    protocol: ClassVar[str]

    def __post_init__(self) -> None:
        try:
            self._validate_common()
            self._validate()
        except InvalidField as invalid:
            raise CredentialError(
                invalid.message, entry=f"credential {self.id!r}", field=invalid.field_name
            ) from None

    def _validate_common(self) -> None:
        if not self.id or not self.id.strip():
            raise InvalidField("id", "must be a non-empty string")
        if self.failure_budget is not None and self.failure_budget < 1:
            raise InvalidField("failure_budget", "must be at least 1")

    def _validate(self) -> None:
        """Type-specific checks (raise ``InvalidField``)."""

    def applies_to(self, address: IPAddress | str) -> bool:
        """True when the credential's ``ip_ranges`` (if any) hold ``address``."""
        if not self.ip_ranges:
            return True
        addr = ipaddress.ip_address(address)
        return any(addr.version == net.version and addr in net for net in self.ip_ranges)

    def describe(self) -> str:
        """``ssh_password "linux-admin"``: safe to log and to put in payloads."""
        return f'{self.type} "{self.id}"'

    # Every credential holds a secret (a Secret, or an unencrypted paramiko key that no Secret
    # wraps): refusing to pickle keeps it out of queues, caches and process pools. Frozen, so
    # copies may share it.
    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError(f"credential {self.id!r} is never pickled or serialised")

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self


@dataclass(frozen=True, kw_only=True)
class SSHPasswordCredential(CredentialBase):
    """An SSH user and password (also answers keyboard-interactive password prompts)."""

    user: str
    password: Secret

    type: ClassVar[str] = "ssh_password"
    protocol: ClassVar[str] = PROTOCOL_SSH

    def _validate(self) -> None:
        _require_text("user", self.user)
        if not self.password:
            raise InvalidField("password", "must not be empty")


@dataclass(frozen=True, kw_only=True)
class SSHPrivateKeyCredential(CredentialBase):
    """An SSH user and private key (RSA, ECDSA or Ed25519), decrypted once at load time."""

    user: str
    #: The decrypted key; its repr shows only the algorithm and public fingerprint.
    key: paramiko.PKey = field(repr=False, compare=False)
    #: ``ssh-ed25519``, ``ecdsa-sha2-nistp256``, ``ssh-rsa``, ...
    key_type: str = ""
    #: SHA256 fingerprint of the public half (OpenSSH style); safe to show.
    key_fingerprint: str = ""
    private_key_file: Path | None = None
    passphrase: Secret | None = None

    type: ClassVar[str] = "ssh_private_key"
    protocol: ClassVar[str] = PROTOCOL_SSH

    def _validate(self) -> None:
        _require_text("user", self.user)
        if not self.key_type:
            object.__setattr__(self, "key_type", self.key.get_name())
        if not self.key_fingerprint:
            object.__setattr__(self, "key_fingerprint", self.key.fingerprint)


@dataclass(frozen=True, kw_only=True)
class SNMPCommunityCredential(CredentialBase):
    """An SNMP v1 or v2c community string."""

    community: Secret
    version: SNMPVersion = "2c"

    type: ClassVar[str] = "snmp"
    protocol: ClassVar[str] = PROTOCOL_SNMP

    def _validate(self) -> None:
        if not self.community:
            raise InvalidField("community", "must not be empty")
        if self.version not in SNMP_VERSIONS:
            raise InvalidField("version", f"must be one of {', '.join(SNMP_VERSIONS)}")


SecurityLevel = Literal["noAuthNoPriv", "authNoPriv", "authPriv"]


@dataclass(frozen=True, kw_only=True)
class SNMPv3Credential(CredentialBase):
    """An SNMPv3 USM user: optional authentication, optional privacy (which needs authentication)."""

    user: str
    auth_protocol: str | None = None
    auth_key: Secret | None = None
    priv_protocol: str | None = None
    priv_key: Secret | None = None
    context_name: str = ""

    type: ClassVar[str] = "snmpv3"
    protocol: ClassVar[str] = PROTOCOL_SNMP

    @property
    def security_level(self) -> SecurityLevel:
        if self.priv_protocol is not None:
            return "authPriv"
        if self.auth_protocol is not None:
            return "authNoPriv"
        return "noAuthNoPriv"

    def _validate(self) -> None:
        _require_text("user", self.user)
        _check_protocol_and_key("auth", self.auth_protocol, self.auth_key, AUTH_PROTOCOLS)
        _check_protocol_and_key("priv", self.priv_protocol, self.priv_key, PRIV_PROTOCOLS)
        if self.priv_protocol is not None and self.auth_protocol is None:
            raise InvalidField("priv_protocol", "privacy needs authentication: set auth_protocol too")


def _require_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(name, "must be a non-empty string")


def _check_protocol_and_key(
    kind: str, protocol: str | None, key: Secret | None, allowed: tuple[str, ...]
) -> None:
    if protocol is None:
        if key is not None:
            raise InvalidField(f"{kind}_protocol", f"is missing although {kind}_key is set")
        return
    if protocol not in allowed:
        raise InvalidField(f"{kind}_protocol", f"{protocol!r} is not one of {', '.join(allowed)}")
    if key is None:
        raise InvalidField(f"{kind}_key", f"is required with {kind}_protocol {protocol}")
    if len(key.reveal()) < MIN_SNMPV3_KEY_LENGTH:
        raise InvalidField(f"{kind}_key", f"must be at least {MIN_SNMPV3_KEY_LENGTH} characters long")


Credential = SSHPasswordCredential | SSHPrivateKeyCredential | SNMPCommunityCredential | SNMPv3Credential
CREDENTIAL_TYPES: dict[str, type[Credential]] = {
    cls.type: cls
    for cls in (SSHPasswordCredential, SSHPrivateKeyCredential, SNMPCommunityCredential, SNMPv3Credential)
}
