"""The one writer of answers: an `Answer` and its call's ids as HTTP/1.1 bytes, or as ASGI headers.

Every answer botscore makes goes through here: the scoring routes' (written by the connection
itself, or sent through uvicorn when the app runs under another protocol), shed requests, and
the connection's own 408 and 431; and every error the data plane returns as a value (`Failed`)
is rendered here, in its route's shape (`rendered`). Header values are the service's own (a request id checked
against `[A-Za-z0-9._:-]`, the model version, fixed names), so none can split a header.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Literal

from botscore.call import JSON, Answer, Failed
from botscore.errors import AuditUnavailable, BotscoreError, Overloaded

Shape = Literal["botscore", "inference"]  # an error's body: botscore's own, or the Open Inference Protocol's

_STATUS = {status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode("ascii")) for status in HTTPStatus}
_USUAL = (
    b"HTTP/1.1 200 OK\r\n%scontent-type: application/json\r\ncontent-length: %d\r\n"
    b"x-request-id: %s\r\nx-model-version: %s\r\n\r\n%s"
)


def server_fields(fields: list[tuple[bytes, bytes]]) -> bytes:
    """The server's own header fields (Date, as uvicorn keeps it up to date), as lines for `encode`."""
    return b"".join(b"%s: %s\r\n" % field for field in fields)


def encode(
    answer: Answer, request_id: bytes, model_version: bytes, *, close: bool = False, server: bytes = b""
) -> bytes:
    """The whole answer on the wire; `close`: the connection closes after it (says so); `server`: the
    server's own header lines (`server_fields`)."""
    if answer.status == 200 and not close and not answer.headers and answer.content_type == JSON:
        return _USUAL % (server, len(answer.body), request_id, model_version, answer.body)  # nearly every answer
    lines = [_STATUS[answer.status], server]
    lines.extend(b"%s: %s\r\n" % field for field in fields(answer, request_id, model_version))
    if close:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    lines.append(answer.body)
    return b"".join(lines)


def fields(answer: Answer, request_id: bytes, model_version: bytes) -> list[tuple[bytes, bytes]]:
    """The answer's header fields (for uvicorn's ASGI `send`, or `encode`)."""
    found = [
        (b"content-type", answer.content_type),
        (b"content-length", b"%d" % len(answer.body)),
        (b"x-request-id", request_id),
    ]
    if model_version:  # the connection's own refusals are made before any model was asked
        found.append((b"x-model-version", model_version))
    found.extend(answer.headers)
    return found


def rendered(failed: Failed, shape: Shape) -> Answer:
    """A failed call's answer: its status, its body in the route's shape (botscore's
    `{"error": {"code", "message", "field"}}`, or the Open Inference Protocol's `{"error": "<message>"}`),
    and the headers RFC 9110 asks of its status."""
    error = failed.error
    if shape == "botscore":
        body = error.body_bytes()
    else:
        body = json.dumps({"error": error.message}, separators=(",", ":")).encode()
    return Answer(error.status, body, headers=error_headers(error), recorded=failed.recorded)


def error_headers(error: BotscoreError) -> tuple[tuple[bytes, bytes], ...]:
    """The headers an error's answer carries besides the ids (RFC 9110: 401, 405, 503 with Retry-After)."""
    if isinstance(error, (AuditUnavailable, Overloaded)):
        return ((b"retry-after", b"%d" % error.retry_after_seconds),)
    return _ERROR_HEADERS.get(error.status, ())


_ERROR_HEADERS: dict[int, tuple[tuple[bytes, bytes], ...]] = {
    401: ((b"www-authenticate", b'Bearer realm="botscore"'),),
    405: ((b"allow", b"POST"),),
}
