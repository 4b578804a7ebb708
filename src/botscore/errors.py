"""Errors a client can see, and the one JSON shape they all share.

    BotscoreError (status, code, message, field)
     +-- RequestError        4xx: the request is wrong; the message says how to fix it
     +-- AuditUnavailable    503: the audit log cannot record the request, so it is not scored
     +-- Overloaded          503: the worker holds BOTSCORE_MAX_IN_FLIGHT requests; shed unread

Every 4xx/5xx body is `{"error": {"code": ..., "message": ..., "field": ... | null}}`.
"""

from __future__ import annotations

import json
import sys
from typing import NoReturn


class BotscoreError(Exception):
    """Base of every error that becomes an HTTP response."""

    status = 500
    code = "internal_error"

    def __init__(
        self, message: str, *, field: str | None = None, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def body(self) -> dict[str, dict[str, str | None]]:
        """The error shape as a dict."""
        return error_body(self.code, self.message, self.field)

    def body_bytes(self) -> bytes:
        """The error shape as compact JSON bytes."""
        return error_bytes(self.code, self.message, self.field)


class RequestError(BotscoreError):
    """The client sent something we cannot score; `field` names the culprit when there is one."""

    status = 422
    code = "invalid_request"


class AuditUnavailable(BotscoreError):
    """The audit spool is full or unwritable; with `when_full=reject` the request is refused."""

    status = 503
    code = "audit_unavailable"
    retry_after_seconds = 5  # sent as Retry-After: the spool usually has room again within seconds


class Overloaded(BotscoreError):
    """The worker is past its in-flight bound; the request is answered at once, neither read nor scored."""

    status = 503
    code = "overloaded"
    retry_after_seconds = 1  # load passes in a second or the autoscaler adds tasks; clients should back off


def error_body(code: str, message: str, field: str | None = None) -> dict[str, dict[str, str | None]]:
    """The JSON error shape shared by every non-2xx response."""
    return {"error": {"code": code, "message": message, "field": field}}


def error_bytes(code: str, message: str, field: str | None = None) -> bytes:
    """`error_body` as compact JSON bytes."""
    return json.dumps(error_body(code, message, field), separators=(",", ":")).encode()


def fail_startup(message: str) -> NoReturn:
    """Stop start-up with one clear line on stderr (a bad setting or model)."""
    sys.stderr.write(f"botscore: {message}\n")
    raise SystemExit(2)
