"""Reading what a console form posts: ``application/x-www-form-urlencoded``, bounded in size and fields."""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

from starlette.requests import Request

from midprobe.capabilities.errors import ConfigError

MAX_FORM_BYTES: Final = 256 * 1024
"""Largest form body read (a discovery schedule and its credentials fit many times over)."""
MAX_FIELDS: Final = 32


class FormError(ConfigError):
    """A form the console cannot read: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def parse_form(body: bytes) -> dict[str, str]:
    """The fields of a URL-encoded body (pure); ``FormError`` for bad encoding or a repeated field."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS, errors="strict"
        )
    except UnicodeDecodeError:
        raise FormError(400, "the form is not UTF-8") from None
    except ValueError:
        raise FormError(400, f"the form has more than {MAX_FIELDS} fields") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise FormError(400, f"the form gives {name!r} more than once")
        fields[name] = value
    return fields


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """The posted form's fields, reading at most ``limit`` bytes of its body."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise FormError(415, "post the form as application/x-www-form-urlencoded")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FormError(413, f"the form is over {limit // 1024} KiB")
        chunks.append(chunk)
    return parse_form(b"".join(chunks))


__all__ = ["MAX_FORM_BYTES", "FormError", "parse_form", "read_form"]
