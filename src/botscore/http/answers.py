"""The one writer of answers: an `Answer` and its call's ids as HTTP/1.1 bytes, or as ASGI headers.

Every answer botscore makes goes through here: the scoring routes' (written by the connection
itself, or sent through uvicorn when the app runs under another protocol), shed requests, and
the connection's own 408 and 431. Header values are the service's own (a request id checked
against `[A-Za-z0-9._:-]`, the model version, fixed names), so none can split a header.
"""

from __future__ import annotations

from http import HTTPStatus

from botscore.call import JSON, Answer

_STATUS = {status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode("ascii")) for status in HTTPStatus}
_USUAL = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
    b"x-request-id: %s\r\nx-model-version: %s\r\n\r\n%s"
)


def encode(answer: Answer, request_id: bytes, model_version: bytes, *, close: bool = False) -> bytes:
    """The whole answer on the wire; `close`: the connection closes after it (says so)."""
    if answer.status == 200 and not close and not answer.headers and answer.content_type == JSON:
        return _USUAL % (len(answer.body), request_id, model_version, answer.body)  # nearly every answer
    lines = [_STATUS[answer.status]]
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
