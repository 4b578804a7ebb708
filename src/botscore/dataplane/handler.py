"""The scoring routes' one request sequence, without HTTP: validate, score, keep the record, decide the answer.

The HTTP layer reads a request into a `Call` and hands it here: `score`, `score_batch` or `infer` when
the request got as far as its body, `fail` when the HTTP layer refused it first (method, key,
size, media type). Each returns the `Answer` after appending the call's audit record, so every
answer, errors included, is recorded before it is sent; when the audit log refuses to keep the
record, the answer is its 503. Tests drive it with a Call and no ASGI at all.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

from botscore.audit import record
from botscore.audit.log import AuditLog
from botscore.call import Answer, Call
from botscore.dataplane import inference, validation
from botscore.errors import AuditUnavailable, BotscoreError, Overloaded, RequestError
from botscore.model.scorer import Scorer
from botscore.ops.metrics import Metrics

log = logging.getLogger("botscore.http")
_Parsed = TypeVar("_Parsed")
Render = Callable[[BotscoreError], bytes]  # a route's error shape: botscore's own, or the inference protocol's
OCTET_STREAM = b"application/octet-stream"
# Where a body holds the start of another HTTP message (a Content-Length that overshot into the next
# request) or an Authorization field: `raw` ends before it, so no key reaches the audit log this way.
_MESSAGE_INSIDE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP/\d|(?i:authorization)[ \t]*:")


def raw_limit(body: bytes | None, limit: int) -> int:
    """Bytes of a refused body its record keeps: `limit`, or fewer, to end before another message."""
    if body is None or not limit:
        return limit
    inside = _MESSAGE_INSIDE.search(body, 0, limit + 64)  # a field name cut at the limit is found too
    return limit if inside is None else min(limit, inside.start())


def error_headers(error: BotscoreError) -> tuple[tuple[bytes, bytes], ...]:
    """The headers an error's answer carries besides the ids (RFC 9110: 401, 405, 503 with Retry-After)."""
    if isinstance(error, (AuditUnavailable, Overloaded)):
        return ((b"retry-after", b"%d" % error.retry_after_seconds),)
    return _ERROR_HEADERS.get(error.status, ())


_ERROR_HEADERS: dict[int, tuple[tuple[bytes, bytes], ...]] = {
    401: ((b"www-authenticate", b'Bearer realm="botscore"'),),
    405: ((b"allow", b"POST"),),
}


class Handler:
    """Answers scoring calls and keeps their records; the audit log applies its when-full policy."""

    def __init__(self, audit: AuditLog, metrics: Metrics, *, raw_limit: int = record.RAW_LIMIT) -> None:
        self.audit = audit
        self.raw_limit = raw_limit  # BOTSCORE_AUDIT_RAW_MAX_BYTES
        self._note_score = metrics.note_score
        self._note_shadowed = metrics.note_shadowed
        self._keep = audit.keep

    def score(self, call: Call) -> Answer:
        """POST /bot-score: {"x1": number, "x2": number} -> {"p_bot": number}."""
        body = call.body or b""
        try:
            # validation.parse_with_tokens, unrolled: one call less on the path nearly every request takes
            x1, x2, x1_token, x2_token = validation.usual(body) or validation.parse_unusual(body)
            p_bot = call.scorer.p_bot(x1, x2)
        except RequestError as exc:
            return self.fail(call, exc)
        except Exception:
            return self._internal_error(call, BotscoreError.body_bytes)
        p_bot_token = b"%r" % p_bot  # once for the row and the answer: a float's repr costs as much as a score
        shadow = call.scorer.shadow
        shadow_p_bot = None
        if shadow is None:
            self._note_score((x1, x2, p_bot))
        else:
            shadow_p_bot = self._shadow(shadow, call, x1, x2, p_bot)
        refusal = self._keep(call, record.scored(call, 0, x1_token, x2_token, p_bot_token, shadow_p_bot))
        if refusal is None:
            return Answer(200, b'{"p_bot":%s}' % p_bot_token)
        return self._refused(refusal, BotscoreError.body_bytes)

    def score_batch(self, call: Call) -> Answer:
        """POST /bot-score/batch: {"instances": [{x1, x2}, ...]} (1 to 1,000) -> {"p_bot": [...]}, in order."""
        scored = self._score_all(
            call, lambda: validation.instances(validation.decode(call.body or b"")), list, BotscoreError.body_bytes
        )
        if isinstance(scored, Answer):
            return scored
        pairs, scores = scored
        answer = Answer(200, json.dumps({"p_bot": scores}, separators=(",", ":")).encode())
        return self._keep_scores(call, pairs, scores, answer, BotscoreError.body_bytes)

    def infer(self, call: Call) -> Answer:
        """POST /v2/models/bot-score/infer, the Open Inference Protocol: x1 and x2 (or features) tensors
        of N instances -> the p_bot tensor, each score /bot-score's for the same features."""
        scored = self._score_all(
            call,
            lambda: inference.parse(call.body or b"", call.header_length),
            lambda request: request.pairs,
            inference.error_bytes,
        )
        if isinstance(scored, Answer):
            return scored
        request, scores = scored
        body, header_length = inference.response(request, call.scorer.version, scores)
        answer = (
            Answer(200, body)
            if header_length is None
            else Answer(200, body, OCTET_STREAM, ((b"inference-header-content-length", b"%d" % header_length),))
        )
        return self._keep_scores(call, request.pairs, scores, answer, inference.error_bytes)

    def _score_all(
        self,
        call: Call,
        parse: Callable[[], _Parsed],
        pairs: Callable[[_Parsed], list[tuple[float, float]]],
        render: Render,
    ) -> tuple[_Parsed, list[float]] | Answer:
        """What `parse` reads and the scores of its instances (`pairs`), or the error's answer."""
        try:
            parsed = parse()
            return parsed, [call.scorer.p_bot(x1, x2) for x1, x2 in pairs(parsed)]
        except RequestError as exc:
            return self.fail(call, exc, render)
        except Exception:
            return self._internal_error(call, render)

    def _keep_scores(
        self, call: Call, pairs: list[tuple[float, float]], scores: list[float], answer: Answer, render: Render
    ) -> Answer:
        """One row per score, appended in one write; `answer` if they were kept."""
        rows = []
        shadow = call.scorer.shadow
        for item, ((x1, x2), p_bot) in enumerate(zip(pairs, scores, strict=True)):
            shadow_p_bot = None
            if shadow is None:
                self._note_score((x1, x2, p_bot))
            else:
                shadow_p_bot = self._shadow(shadow, call, x1, x2, p_bot)
            rows.append(
                record.scored(call, item, repr(x1).encode(), repr(x2).encode(), repr(p_bot).encode(), shadow_p_bot)
            )
        refusal = self._keep(call, b"".join(rows), len(rows))
        return answer if refusal is None else self._refused(refusal, render)

    def _shadow(self, shadow: Scorer, call: Call, x1: float, x2: float, p_bot: float) -> float | None:
        """The shadow model's score for the record, both counted in the metrics; it never changes the
        answer. Scored inline: the model family is fixed (two products and an exp), so it adds a constant ~1 µs."""
        try:
            shadow_p_bot = shadow.p_bot(x1, x2)
        except Exception:  # a bug in the challenger must not fail the call: its row just has no shadow score
            log.exception("shadow scoring failed", extra={"request_id": call.id.decode()})
            self._note_score((x1, x2, p_bot))
            return None
        self._note_shadowed((x1, x2, p_bot, shadow_p_bot))
        return shadow_p_bot

    def fail(self, call: Call, error: BotscoreError, render: Render = BotscoreError.body_bytes) -> Answer:
        """The answer to `error` in the route's shape (`render`); the record keeps the body as text,
        and the features it could read."""
        sent = _as_sent(validation.decoded(call.body))
        refusal = self._keep(call, record.failed(call, error, sent, raw_limit=raw_limit(call.body, self.raw_limit)))
        if refusal is not None:
            return self._refused(refusal, render)
        return Answer(error.status, render(error), headers=error_headers(error))

    def shed(self, call: Call, overloaded: Overloaded, body: bytes, render: Render) -> Answer:
        """The answer to a call past the in-flight bound (`body`: the route's, made once), recorded;
        it does not wait for an fsync (it scored nothing)."""
        refusal = self._keep(call, record.failed(call, overloaded, record.Sent()))
        if refusal is not None:
            return self._refused(refusal, render)
        return Answer(overloaded.status, body, headers=error_headers(overloaded), recorded=False)

    def _refused(self, refusal: AuditUnavailable, render: Render) -> Answer:
        """The audit log's refusal as the answer: not settled, for its row is kept best effort only."""
        return Answer(refusal.status, render(refusal), headers=error_headers(refusal), recorded=False)

    def _internal_error(self, call: Call, render: Render) -> Answer:
        """A bug of ours: answer in the error shape, record it, log it with the request id."""
        log.exception("unhandled error", extra={"request_id": call.id.decode()})
        return self.fail(call, BotscoreError("internal error; the request id is in the logs"), render)

    @property
    def settles(self) -> bool:
        """True when an answer must wait for `settle` before it is sent (BOTSCORE_AUDIT_SYNC=always)."""
        return self.audit.sync == "always"

    async def settle(self, call: Call, answer: Answer, render: Render = BotscoreError.body_bytes) -> Answer:
        """`answer` once the call's record is on disk; if it cannot be, the audit log's 503 instead."""
        if not answer.recorded:
            return answer
        refusal = await self.audit.settle(call)
        return answer if refusal is None else self._refused(refusal, render)

    def readiness(self) -> str | None:
        """None when calls can be answered and recorded with room to spare, else the reason."""
        return self.audit.readiness()

    def local_fault(self) -> str | None:
        """Why this task should be replaced (a spool fault of its own), else None: a flag, no storage call."""
        return self.audit.local_fault


def _as_sent(document: Any) -> record.Sent:
    """x1 and x2 of a body that was not scored: numbers as numbers, anything else as JSON text."""
    if not isinstance(document, dict):
        return record.Sent()
    values: dict[str, Any] = {}
    for name in validation.FIELDS:
        if name in document:
            value = document[name]
            if type(value) is float:
                values[name] = value
            else:
                values[f"{name}_text"] = validation.as_text(value)
    return record.Sent(**values)
