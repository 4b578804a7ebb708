"""What the HTTP layer refuses before the data plane reads a body, in one place: the scoring routes
answer these errors, and the API document shows the same ones as its examples."""

from __future__ import annotations

from botscore.errors import RequestError

JSON_MEDIA = "application/json"
BINARY_MEDIA = "application/json, or application/octet-stream with Inference-Header-Content-Length"


def method_not_allowed(method: str, path: str) -> RequestError:
    return RequestError(f"method {method} is not allowed on {path}; use POST", status=405, code="method_not_allowed")


def unauthorized() -> RequestError:
    return RequestError("missing or unknown API key: send Authorization: Bearer <key>", status=401, code="unauthorized")


def too_large(limit: int) -> RequestError:
    return RequestError(f"request body is larger than {limit} bytes", status=413, code="body_too_large")


def unsupported_media(content_type: str, media: str) -> RequestError:
    return RequestError(
        f"Content-Type {content_type!r} is not supported; send {media}", status=415, code="unsupported_media_type"
    )


def timed_out() -> RequestError:
    return RequestError(
        "request body not received whole within BOTSCORE_REQUEST_TIMEOUT_SECONDS", status=408, code="request_timeout"
    )
