"""Redaction of secrets: fields whose names look like secrets, and passwords inside URLs.

Logs, error messages and queue URLs are shown only through these functions.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"
_SECRET_FIELD = re.compile(r"pass(word|phrase)?|secret|community|auth_key|priv_key|private_key|token", re.I)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_PASSWORD_PARAMETER = re.compile(r"(?i)([?&]password=)[^&#]*")


def redact_url(url: str) -> str:
    """``url`` with any password (in the user part or a ``password=`` query parameter) replaced by ``***``.

    When in doubt it hides more: everything between the first ``:`` of the user part
    and the last ``@`` of the URL.
    """
    match = _SCHEME.match(url)
    if match is None:
        return _PASSWORD_PARAMETER.sub(r"\1***", url)
    head, rest = url[: match.end()], url[match.end() :]
    if "@" in rest:
        userinfo, _, after = rest.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        rest = f"{userinfo}@{after}"
    return head + _PASSWORD_PARAMETER.sub(r"\1***", rest)


def redact_fields(fields: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in fields.items():
        if _SECRET_FIELD.search(key):
            cleaned[key] = REDACTED
        elif isinstance(value, str):
            cleaned[key] = redact_url(value)
        else:
            cleaned[key] = value
    return cleaned


__all__ = ["REDACTED", "redact_fields", "redact_url"]
