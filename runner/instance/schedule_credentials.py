"""A discovery's credentials, kept by the instance sealed to its own key: the one place they are stored.

``discover run --queue https://...`` reads the schedule's credentials file on the user's machine,
resolves its ``*_env`` variables and ``private_key_file`` keys there (a self-contained document,
:func:`~midprobe.probes.credentials.sealing.portable_document`) and sends it over TLS with the
schedule. The instance keeps it here, keyed by the discovery's status id, sealed to the
instance's own key pair (``credentials-key.pem`` in its TLS folder), so neither the database
file, its write-ahead log nor a backup of it ever holds a secret in clear. It is opened only to
be sealed again to the key of a MID that holds work of the discovery
(:func:`~midprobe.runner.instance.credentials.seal_discovery_credentials`), and dropped when the
discovery ends. It never enters the ECC queue, a log line, an error message or an answer.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from midprobe.capabilities.errors import CredentialError
from midprobe.probes.credentials.loader import parse_credential_document
from midprobe.probes.credentials.sealing import MidKeyPair, open_document, seal_document
from midprobe.runner.cmdb.database import Database, SqlStore

log = logging.getLogger("midprobe.instance")

MAX_CREDENTIALS_CHARACTERS: Final = 1024 * 1024
"""The largest credentials text a discovery may carry."""
#: The instance's key pair for the discovery credentials it keeps (in its TLS folder, mode 0600).
INSTANCE_KEY_FILE: Final = "credentials-key.pem"

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS discovery_credentials (
        status TEXT PRIMARY KEY, credentials TEXT NOT NULL, stored_on TEXT NOT NULL)""",
)
#: Where a nowhere base folder points a relative key file (none is read: such keys are refused first).
_NO_FOLDER: Final = Path("/nonexistent")


def _refuse_references(document: Mapping[str, Any]) -> None:
    """A document naming a variable or a file of the instance is refused: those are the sender's to read."""
    entries = document.get("credential", [])
    for position, entry in enumerate(entries if isinstance(entries, list) else [], start=1):
        for key in entry if isinstance(entry, dict) else ():
            if key.endswith("_env") or key == "private_key_file":
                raise CredentialError(
                    "the instance reads no variable or file of its own for a discovery: send the "
                    "value itself (discover run resolves it on your machine)",
                    source="credentials",
                    entry=f"credential[{position}]",
                    field=key,
                )


def check_credentials(value: object) -> dict[str, Any]:
    """The credentials document a discovery start carries: a table, or a credentials file's TOML text.

    It must be self-contained (no ``*_env``, no ``private_key_file``) and valid as an agent reads
    it; errors name the entry and field, never a value.
    """
    if isinstance(value, str):
        if not value.strip():
            raise CredentialError("credentials must be the text of a credentials file", field="credentials")
        if len(value) > MAX_CREDENTIALS_CHARACTERS:
            raise CredentialError(
                f"the credentials are over {MAX_CREDENTIALS_CHARACTERS} characters", field="credentials"
            )
        try:
            value = tomllib.loads(value)
        except tomllib.TOMLDecodeError:
            raise CredentialError("the credentials are not valid TOML", field="credentials") from None
    if not isinstance(value, Mapping):
        raise CredentialError(
            "credentials must be the text of a credentials file or a table of its keys", field="credentials"
        )
    document = dict(value)
    _refuse_references(document)
    parse_credential_document(document, source="credentials", environ={}, base_dir=_NO_FOLDER)
    return document


class ScheduleCredentials(SqlStore):
    """The ``discovery_credentials`` table in the queue's database: one sealed document per running discovery."""

    schema = SCHEMA

    def __init__(self, database: Database, key: MidKeyPair) -> None:
        super().__init__(database)
        self._key = key

    def put(self, status_id: str, document: Mapping[str, Any]) -> None:
        """Keep ``document`` (checked by :func:`check_credentials`) sealed to the instance's key."""
        sealed = seal_document(document, self._key.public_key)
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM discovery_credentials WHERE status = ?", [status_id])
            tx.execute(
                "INSERT INTO discovery_credentials (status, credentials, stored_on) VALUES (?, ?, ?)",
                [status_id, sealed, self._now()],
            )

    def has(self, status_id: str) -> bool:
        with self._db.transaction(write=False) as tx:
            rows = tx.execute("SELECT 1 FROM discovery_credentials WHERE status = ?", [status_id])
        return bool(rows)

    def get(self, status_id: str) -> dict[str, Any] | None:
        """The discovery's document, opened in memory; None when it has none or another key sealed it."""
        with self._db.transaction(write=False) as tx:
            rows = tx.execute("SELECT credentials FROM discovery_credentials WHERE status = ?", [status_id])
        if not rows:
            return None
        try:
            return open_document(str(rows[0][0]), self._key, source="discovery credentials")
        except CredentialError:
            # The instance's key changed (its file was removed): what was sealed to the old one is lost.
            log.warning("discovery %s: its credentials were sealed to another instance key", status_id)
            return None

    def forget(self, status_id: str) -> None:
        """The discovery ended: its credentials are no longer kept."""
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM discovery_credentials WHERE status = ?", [status_id])


__all__ = [
    "INSTANCE_KEY_FILE",
    "MAX_CREDENTIALS_CHARACTERS",
    "ScheduleCredentials",
    "check_credentials",
]
