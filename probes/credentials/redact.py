"""Redaction of secrets: fields whose names look like secrets, and passwords inside URLs.

Logs, error messages and queue URLs are shown only through these functions.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, unquote_plus

REDACTED = "<redacted>"
_SECRET_FIELD = re.compile(r"pass(word|phrase)?|secret|community|auth_key|priv_key|private_key|token", re.I)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def _redact_query(text: str) -> str:
    """``text`` with the value of every query parameter whose name is a secret's replaced by ``***``.

    Names are compared percent-decoded, as the database driver reads them: ``pass%77ord=`` is a
    password too (libpq decodes the names and values of URI parameters).
    """
    before, question, query = text.partition("?")
    if not question:
        return text
    query, hash_sign, fragment = query.partition("#")
    parts = []
    for part in query.split("&"):
        name, equals, _ = part.partition("=")
        if equals and any(_SECRET_FIELD.search(decode(name)) for decode in (unquote, unquote_plus)):
            part = f"{name}=***"
        parts.append(part)
    return f"{before}?{'&'.join(parts)}{hash_sign}{fragment}"


def redact_url(url: str) -> str:
    """``url`` with any password (in the user part or a secret query parameter) replaced by ``***``.

    When in doubt it hides more: everything between the first ``:`` of the user part
    and the last ``@`` of the URL, and every parameter whose decoded name looks like a secret's
    (``password``, ``sslpassword``, ``pass%77ord``).
    """
    match = _SCHEME.match(url)
    if match is None:
        return _redact_query(url)
    head, rest = url[: match.end()], url[match.end() :]
    if "@" in rest:
        userinfo, _, after = rest.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        rest = f"{userinfo}@{after}"
    return head + _redact_query(rest)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, dict):
        return redact_fields(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(item) for item in value)
    return value


def redact_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``fields`` with secret-named values hidden, at any depth (dicts inside lists too)."""
    cleaned: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(key, str) and _SECRET_FIELD.search(key):
            cleaned[key] = REDACTED
        else:
            cleaned[key] = _redact_value(value)
    return cleaned


__all__ = ["REDACTED", "redact_fields", "redact_url"]
