"""What the Table API answers when it refuses a request: an HTTP status and ServiceNow's error body."""

from __future__ import annotations

from collections.abc import Mapping

from midprobe.capabilities.errors import MidprobeError


class TableApiError(MidprobeError):
    """A refused request: ``status`` (4xx, or 503 when the queue is unreachable), ``message``, ``detail``.

    The body is ServiceNow's: ``{"error": {"message": ..., "detail": ...}, "status": "failure"}``.
    """

    def __init__(
        self,
        status: int,
        message: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.detail = detail
        #: Extra response headers (``Retry-After`` on a 429).
        self.headers = dict(headers or {})
        super().__init__(message)

    def body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "detail": self.detail}, "status": "failure"}


def bad_request(message: str, detail: str | None = None) -> TableApiError:
    return TableApiError(400, message, detail)


def forbidden(operation: str) -> TableApiError:
    """ServiceNow's ACL refusal: ``operation`` is ``Read``, ``Insert`` or ``Update``."""
    return TableApiError(
        403, "Operation Failed", f"ACL Exception {operation} Failed due to security constraints"
    )


def not_found(detail: str = "Record doesn't exist or ACL restricts the record retrieval") -> TableApiError:
    return TableApiError(404, "No Record found", detail)


__all__ = ["TableApiError", "bad_request", "forbidden", "not_found"]
