"""Read the credentials file (``[[credential]]`` tables, TOML) into typed credentials.

Every error is one ``CredentialError`` line naming the file, the entry
(``credential[2] "ops-key"``, counted from 1) and the field; never a value of a secret.
Secrets may come from the environment: ``password_env = "VAR"`` instead of ``password``.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from midprobe.capabilities.errors import CredentialError
from midprobe.capabilities.model import suggest
from midprobe.probes.credentials.model import (
    AUTH_PROTOCOLS,
    CREDENTIAL_TYPES,
    DEFAULT_ORDER,
    PRIV_PROTOCOLS,
    Credential,
    InvalidField,
    SNMPCommunityCredential,
    SNMPv3Credential,
    SNMPVersion,
    SSHPasswordCredential,
    SSHPrivateKeyCredential,
    normalise_protocol_name,
)
from midprobe.probes.credentials.secret import Secret
from midprobe.probes.safety import IPNetwork

_TOP_LEVEL_KEYS = frozenset({"credential", "snmp_public_fallback"})
_COMMON_KEYS = frozenset({"id", "type", "order", "tags", "ip_ranges", "failure_budget"})
_TYPE_KEYS: dict[str, frozenset[str]] = {
    "ssh_password": frozenset({"user", "password", "password_env"}),
    "ssh_private_key": frozenset(
        {"user", "private_key_file", "private_key", "private_key_env", "passphrase", "passphrase_env"}
    ),
    "snmp": frozenset({"community", "community_env", "version"}),
    "snmpv3": frozenset(
        {
            "user",
            "auth_protocol",
            "auth_key",
            "auth_key_env",
            "priv_protocol",
            "priv_key",
            "priv_key_env",
            "context_name",
        }
    ),
}
_VERSION_SPELLINGS: dict[object, SNMPVersion] = {"1": "1", "v1": "1", 1: "1", "2c": "2c", "v2c": "2c"}


@dataclass(frozen=True)
class CredentialFile:
    """What one credentials file holds, in file order."""

    source: str
    credentials: tuple[Credential, ...]
    #: SNMP v1/v2c tries the community ``public`` last unless this is false.
    snmp_public_fallback: bool = True


def load_credential_file(path: str | Path, *, environ: Mapping[str, str] | None = None) -> CredentialFile:
    """Read and validate a credentials file."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CredentialError(f"cannot read the file: {error.strerror or error}", source=source) from None
    except UnicodeDecodeError:
        raise CredentialError("is not UTF-8 text", source=source) from None
    return parse_credentials(text, source=source, environ=environ, base_dir=path.parent)


def parse_credentials(
    text: str,
    *,
    source: str = "<credentials>",
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> CredentialFile:
    """Validate the text of a credentials file (``private_key_file`` is read relative to ``base_dir``)."""
    return parse_credential_document(
        read_credential_toml(text, source), source=source, environ=environ, base_dir=base_dir
    )


def read_credential_toml(text: str, source: str) -> dict[str, Any]:
    """The TOML document of a credentials file (``CredentialError`` naming the line, never the text)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # tomllib names the line and column, never the text around it.
        raise CredentialError(f"is not valid TOML: {error}", source=source) from None


def parse_credential_document(
    document: Mapping[str, Any],
    *,
    source: str = "<credentials>",
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> CredentialFile:
    """Validate a credentials document: a credentials file's TOML, or one the instance sealed to this MID."""
    for position, key in enumerate(document, start=1):
        if key not in _TOP_LEVEL_KEYS:
            shown, message = _unknown_key(position, key, _TOP_LEVEL_KEYS)
            raise CredentialError(
                f"{message} (expected [[credential]] tables)", source=source, field=shown or None
            )
    fallback = document.get("snmp_public_fallback", True)
    if not isinstance(fallback, bool):
        raise CredentialError("must be true or false", source=source, field="snmp_public_fallback")
    entries = document.get("credential", [])
    if not isinstance(entries, list):
        raise CredentialError(
            "must be an array of tables: write [[credential]]", source=source, field="credential"
        )
    reader = _EntryReader(environ if environ is not None else os.environ, base_dir or Path.cwd())
    credentials: list[Credential] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        name = _entry_name(index, entry)
        if not isinstance(entry, dict):
            raise CredentialError("must be a table: write [[credential]]", source=source, entry=name)
        try:
            credential = reader.read(entry)
        except InvalidField as invalid:
            raise CredentialError(
                invalid.message, source=source, entry=name, field=invalid.field_name or None
            ) from None
        except CredentialError as error:  # raised by a dataclass's own checks
            raise CredentialError(
                _core_message(error), source=source, entry=name, field=error.field
            ) from None
        if credential.id in seen:
            raise CredentialError("is used by an earlier credential", source=source, entry=name, field="id")
        seen.add(credential.id)
        credentials.append(credential)
    return CredentialFile(source=source, credentials=tuple(credentials), snmp_public_fallback=fallback)


def _entry_name(index: int, entry: object) -> str:
    if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"]:
        return f'credential[{index}] "{entry["id"]}"'
    return f"credential[{index}]"


def _unknown_key(position: int, key: str, allowed: frozenset[str]) -> tuple[str, str]:
    """The field to name and the message for an unknown key.

    The key is named only when it is a misspelling of a known one: anything else may be a secret
    written where a key belongs (``"hunter2" = true``), so it is counted, not shown.
    """
    hint = suggest(key, sorted(allowed))
    if hint:
        return key, f"unknown key{hint}"
    return "", f"unknown key (key number {position}; allowed: {', '.join(sorted(allowed))})"


def _core_message(error: CredentialError) -> str:
    """The message of a ``CredentialError`` without its ``entry: field:`` prefix."""
    prefix = ": ".join(part for part in (error.source, error.entry, error.field) if part)
    return error.message[len(prefix) + 2 :] if prefix and error.message.startswith(prefix) else error.message


class _EntryReader:
    """Reads one ``[[credential]]`` table; raises ``InvalidField`` for the first bad field."""

    def __init__(self, environ: Mapping[str, str], base_dir: Path) -> None:
        self._environ = environ
        self._base_dir = base_dir

    def read(self, entry: dict[str, Any]) -> Credential:
        kind = entry.get("type")
        if kind is None:
            raise InvalidField("type", f"is required: one of {', '.join(CREDENTIAL_TYPES)}")
        if not isinstance(kind, str) or kind not in CREDENTIAL_TYPES:
            hint = suggest(kind, CREDENTIAL_TYPES) if isinstance(kind, str) else ""
            raise InvalidField("type", f"must be one of {', '.join(CREDENTIAL_TYPES)}{hint}")
        allowed = _COMMON_KEYS | _TYPE_KEYS[kind]
        for position, key in enumerate(entry, start=1):
            if key not in allowed:
                shown, message = _unknown_key(position, key, allowed)
                raise InvalidField(shown, f"{message}: not a key of a {kind} credential")
        common: dict[str, Any] = {
            "id": self._text(entry, "id", required=True),
            "order": self._integer(entry, "order", DEFAULT_ORDER),
            "tags": frozenset(self._text_list(entry, "tags")),
            "ip_ranges": tuple(self._network(text) for text in self._text_list(entry, "ip_ranges")),
            "failure_budget": self._optional_integer(entry, "failure_budget"),
        }
        builders: dict[str, Callable[[dict[str, Any], dict[str, Any]], Credential]] = {
            "ssh_password": self._ssh_password,
            "ssh_private_key": self._ssh_private_key,
            "snmp": self._snmp,
            "snmpv3": self._snmpv3,
        }
        return builders[kind](entry, common)

    # -- the four types ---------------------------------------------------------------------------

    def _ssh_password(self, entry: dict[str, Any], common: dict[str, Any]) -> Credential:
        password = self._secret(entry, "password", required=True)
        assert password is not None
        return SSHPasswordCredential(
            **common, user=self._text(entry, "user", required=True), password=password
        )

    def _ssh_private_key(self, entry: dict[str, Any], common: dict[str, Any]) -> Credential:
        user = self._text(entry, "user", required=True)
        passphrase = self._secret(entry, "passphrase", required=False)
        inline = self._secret(entry, "private_key", required=False)
        key_file = self._optional_text(entry, "private_key_file")
        if (inline is None) == (key_file is None):
            raise InvalidField(
                "private_key_file", "give exactly one of private_key_file, private_key, private_key_env"
            )
        path: Path | None = None
        if key_file is not None:
            path = Path(key_file).expanduser()
            if not path.is_absolute():
                path = self._base_dir / path
            try:
                data = path.read_bytes()
            except OSError as error:
                raise InvalidField(
                    "private_key_file", f"cannot read {path}: {error.strerror or error}"
                ) from None
            field_name = "private_key_file"
        else:
            assert inline is not None
            data = inline.reveal().encode()
            field_name = "private_key"
        # cryptography's key loaders only for a file that holds a key (the agent imports this package)
        from midprobe.probes.credentials.keys import load_private_key

        key = load_private_key(data, passphrase.reveal() if passphrase else None, field_name=field_name)
        return SSHPrivateKeyCredential(
            **common, user=user, key=key, private_key_file=path, passphrase=passphrase
        )

    def _snmp(self, entry: dict[str, Any], common: dict[str, Any]) -> Credential:
        community = self._secret(entry, "community", required=True)
        assert community is not None
        raw_version = entry.get("version", "2c")
        version = None
        if isinstance(raw_version, str):
            version = _VERSION_SPELLINGS.get(raw_version.lower())
        elif isinstance(raw_version, int) and not isinstance(raw_version, bool):
            version = _VERSION_SPELLINGS.get(raw_version)
        if version is None:
            raise InvalidField("version", 'must be "1" or "2c" (use type = "snmpv3" for version 3)')
        return SNMPCommunityCredential(**common, community=community, version=version)

    def _snmpv3(self, entry: dict[str, Any], common: dict[str, Any]) -> Credential:
        return SNMPv3Credential(
            **common,
            user=self._text(entry, "user", required=True),
            auth_protocol=self._protocol(entry, "auth_protocol", AUTH_PROTOCOLS),
            auth_key=self._secret(entry, "auth_key", required=False),
            priv_protocol=self._protocol(entry, "priv_protocol", PRIV_PROTOCOLS),
            priv_key=self._secret(entry, "priv_key", required=False),
            context_name=self._optional_text(entry, "context_name") or "",
        )

    # -- field readers ----------------------------------------------------------------------------

    def _secret(self, entry: dict[str, Any], name: str, *, required: bool) -> Secret | None:
        env_key = f"{name}_env"
        if name in entry and env_key in entry:
            raise InvalidField(name, f"give {name} or {env_key}, not both")
        if name in entry:
            value = entry[name]
            if not isinstance(value, str):
                raise InvalidField(name, "must be a string")  # the value is never shown
            if not value:
                raise InvalidField(name, "must not be empty")
            return Secret(value)
        if env_key in entry:
            variable = entry[env_key]
            if not isinstance(variable, str) or not variable:
                raise InvalidField(env_key, "must name an environment variable")
            value = self._environ.get(variable)
            # The variable's name is not shown: a secret pasted here by mistake must not reach a log.
            if value is None:
                raise InvalidField(env_key, "names an environment variable that is not set")
            if not value:
                raise InvalidField(env_key, "names an environment variable that is empty")
            return Secret(value)
        if required:
            raise InvalidField(name, f"is required (or {env_key} naming an environment variable)")
        return None

    @staticmethod
    def _text(entry: dict[str, Any], name: str, *, required: bool) -> str:
        value = entry.get(name)
        if value is None and required:
            raise InvalidField(name, "is required")
        if not isinstance(value, str) or not value.strip():
            raise InvalidField(name, "must be a non-empty string")
        return value

    def _optional_text(self, entry: dict[str, Any], name: str) -> str | None:
        return self._text(entry, name, required=False) if name in entry else None

    @staticmethod
    def _integer(entry: dict[str, Any], name: str, default: int) -> int:
        value = entry.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidField(name, "must be an integer")
        return value

    def _optional_integer(self, entry: dict[str, Any], name: str) -> int | None:
        return self._integer(entry, name, 0) if name in entry else None

    @staticmethod
    def _text_list(entry: dict[str, Any], name: str) -> list[str]:
        value = entry.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise InvalidField(name, "must be a list of non-empty strings")
        return value

    @staticmethod
    def _network(text: str) -> IPNetwork:
        try:
            return ipaddress.ip_network(text.strip())
        except ValueError:
            raise InvalidField(
                "ip_ranges", "holds an item that is not an address or a CIDR network"
            ) from None

    @staticmethod
    def _protocol(entry: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str | None:
        value = entry.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidField(name, f"must be one of {', '.join(allowed)}")
        normalised = normalise_protocol_name(value)
        if normalised == "NONE":
            return None
        if normalised not in allowed:  # a key pasted into the protocol field must not be echoed
            raise InvalidField(name, f"must be one of {', '.join(allowed)}")
        return normalised
