"""A discovery's credentials, kept by the instance: the one place they are stored and read back.

``discover run --queue https://...`` reads the schedule's credentials file on the user's machine
and sends its text over TLS with the schedule; the instance keeps it here, keyed by the
discovery's status id, until the discovery ends. It never enters the ECC queue, a log line, an
error message or an answer. Today the text is stored as it came (the database is the instance's
own); sealing it to each MID's key is this module's job alone, so nothing else changes when it
comes.
"""

from __future__ import annotations

import tomllib
from typing import Final

from midprobe.capabilities.errors import CredentialError
from midprobe.runner.cmdb.database import SqlStore

MAX_CREDENTIALS_CHARACTERS: Final = 1024 * 1024
"""The largest credentials text a discovery may carry."""

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS discovery_credentials (
        status TEXT PRIMARY KEY, credentials TEXT NOT NULL, stored_on TEXT NOT NULL)""",
)


def check_credentials_text(text: object) -> str:
    """``text`` if it is a credentials file's text (TOML, at most 1 MiB); the error never quotes it."""
    if not isinstance(text, str) or not text.strip():
        raise CredentialError("credentials must be the text of a credentials file", field="credentials")
    if len(text) > MAX_CREDENTIALS_CHARACTERS:
        raise CredentialError(
            f"the credentials are over {MAX_CREDENTIALS_CHARACTERS} characters", field="credentials"
        )
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise CredentialError("the credentials are not valid TOML", field="credentials") from None
    return text


class ScheduleCredentials(SqlStore):
    """The ``discovery_credentials`` table in the queue's database: one entry per running discovery."""

    schema = SCHEMA

    def put(self, status_id: str, text: str) -> None:
        check_credentials_text(text)
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM discovery_credentials WHERE status = ?", [status_id])
            tx.execute(
                "INSERT INTO discovery_credentials (status, credentials, stored_on) VALUES (?, ?, ?)",
                [status_id, text, self._now()],
            )

    def get(self, status_id: str) -> str | None:
        with self._db.transaction(write=False) as tx:
            rows = tx.execute("SELECT credentials FROM discovery_credentials WHERE status = ?", [status_id])
        return str(rows[0][0]) if rows else None

    def forget(self, status_id: str) -> None:
        """The discovery ended: its credentials are no longer kept."""
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM discovery_credentials WHERE status = ?", [status_id])


__all__ = ["MAX_CREDENTIALS_CHARACTERS", "ScheduleCredentials", "check_credentials_text"]
