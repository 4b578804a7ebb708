"""The scoring routes' one request sequence, without HTTP: validate, score, keep the record, decide the answer.

The HTTP layer reads a request into a `Call` and hands it here: `score`, `score_batch` or `infer` when
the request got as far as its body, `fail` when the HTTP layer refused it first (method, key,
size, media type). Each returns its decision after appending the call's audit record, so every
answer, errors included, is recorded before it is sent: an `Answer`, or the error as a value
(`Failed`), which the HTTP layer renders in its route's shape; when the audit log refuses to keep
the record, the decision is its 503. Tests drive it with a Call and no ASGI at all.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

from botscore.audit import record
from botscore.audit.log import AuditLog
from botscore.call import Answer, Call, Decision, Failed
from botscore.dataplane import inference, validation
from botscore.errors import BotscoreError, Overloaded, RequestError
from botscore.model.scorer import Scorer
from botscore.ops.metrics import Metrics

log = logging.getLogger("botscore.http")
_Parsed = TypeVar("_Parsed")
OCTET_STREAM = b"application/octet-stream"
# Where a body holds the start of another HTTP message (a Content-Length that overshot into the next
# request) or an Authorization field: `raw` ends before it, so no key reaches the audit log this way.
_MESSAGE_INSIDE = re.compile(
    rb"(?<![!#$%&'*+.^_`|~0-9A-Za-z-])[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP/\d|(?i:authorization)[ \t]*:"
)


def raw_limit(body: bytes | None, limit: int) -> int:
    """Bytes of a refused body its record keeps: `limit`, or fewer, to end before another message."""
    if body is None or not limit:
        return limit
    inside = _MESSAGE_INSIDE.search(body, 0, limit + 64)  # a field name cut at the limit is found too
    return limit if inside is None else min(limit, inside.start())


class Handler:
    """Answers scoring calls and keeps their records; the audit log applies its when-full policy."""

    def __init__(self, audit: AuditLog, metrics: Metrics, *, raw_limit: int = record.RAW_LIMIT) -> None:
        self.audit = audit
        self.raw_limit = raw_limit  # BOTSCORE_AUDIT_RAW_MAX_BYTES
        self._note_score = metrics.note_score
        self._note_shadowed = metrics.note_shadowed
        self._keep = audit.keep

    def score(self, call: Call) -> Decision:
        """POST /bot-score: {"x1": number, "x2": number} -> {"p_bot": number}."""
        body = call.body or b""
        try:
            # validation.parse_with_tokens, unrolled: one call less on the path nearly every request takes
            x1, x2, x1_token, x2_token = validation.usual(body) or validation.parse_unusual(body)
            p_bot = call.scorer.p_bot(x1, x2)
        except RequestError as exc:
            return self.fail(call, exc)
        except Exception:
            return self._internal_error(call)
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
        return Failed(refusal, recorded=False)

    def score_batch(self, call: Call) -> Decision:
        """POST /bot-score/batch: {"instances": [{x1, x2}, ...]} (1 to 1,000) -> {"p_bot": [...]}, in order."""
        scored = self._score_all(call, lambda: validation.instances(validation.decode(call.body or b"")), list)
        if isinstance(scored, Failed):
            return scored
        pairs, scores = scored
        answer = Answer(200, json.dumps({"p_bot": scores}, separators=(",", ":")).encode())
        return self._keep_scores(call, pairs, scores, answer)

    def infer(self, call: Call) -> Decision:
        """POST /v2/models/bot-score/infer, the Open Inference Protocol: x1 and x2 (or features) tensors
        of N instances -> the p_bot tensor, each score /bot-score's for the same features."""
        scored = self._score_all(
            call,
            lambda: inference.parse(call.body or b"", call.header_length),
            lambda request: request.pairs,
        )
        if isinstance(scored, Failed):
            return scored
        request, scores = scored
        body, header_length = inference.response(request, call.scorer.version, scores)
        answer = (
            Answer(200, body)
            if header_length is None
            else Answer(200, body, OCTET_STREAM, ((b"inference-header-content-length", b"%d" % header_length),))
        )
        return self._keep_scores(call, request.pairs, scores, answer)

    def _score_all(
        self,
        call: Call,
        parse: Callable[[], _Parsed],
        pairs: Callable[[_Parsed], list[tuple[float, float]]],
    ) -> tuple[_Parsed, list[float]] | Failed:
        """What `parse` reads and the scores of its instances (`pairs`), or the error."""
        try:
            parsed = parse()
            return parsed, [call.scorer.p_bot(x1, x2) for x1, x2 in pairs(parsed)]
        except RequestError as exc:
            return self.fail(call, exc)
        except Exception:
            return self._internal_error(call)

    def _keep_scores(
        self, call: Call, pairs: list[tuple[float, float]], scores: list[float], answer: Answer
    ) -> Decision:
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
        return answer if refusal is None else Failed(refusal, recorded=False)

    def _shadow(self, shadow: Scorer, call: Call, x1: float, x2: float, p_bot: float) -> float | None:
        """The score of the model beside the one that answered (the shadow; on a canary's arm, production)
        for the record, both counted in the metrics (a canary's pair in its guardrails' tally); it never
        changes the answer. Scored inline: the model family is fixed (two products and an exp), so it adds
        a constant ~1 µs."""
        try:
            shadow_p_bot = shadow.p_bot(x1, x2)
        except Exception:  # a bug in the challenger must not fail the call: its row just has no shadow score
            log.exception("shadow scoring failed", extra={"request_id": call.id.decode()})
            self._note_score((x1, x2, p_bot))
            return None
        compared = call.scorer.compared
        if compared is None:
            self._note_shadowed((x1, x2, p_bot, shadow_p_bot))
        else:  # a canary's arm: drift is production's score, as on every other call, not the candidate's
            self._note_score((x1, x2, shadow_p_bot))
            compared((p_bot, shadow_p_bot))
        return shadow_p_bot

    def fail(self, call: Call, error: BotscoreError) -> Failed:
        """The call failed with `error`: recorded (the body as text, and the features it could read)."""
        sent = _as_sent(validation.decoded(call.body))
        refusal = self._keep(call, record.failed(call, error, sent, raw_limit=raw_limit(call.body, self.raw_limit)))
        return Failed(error) if refusal is None else Failed(refusal, recorded=False)

    def shed(self, call: Call, overloaded: Overloaded) -> Failed:
        """A call past the in-flight bound, recorded; its answer does not wait for an fsync (it scored nothing)."""
        refusal = self._keep(call, record.failed(call, overloaded, record.Sent()))
        return Failed(overloaded if refusal is None else refusal, recorded=False)

    def _internal_error(self, call: Call) -> Failed:
        """A bug of ours: recorded, and logged with the request id."""
        log.exception("unhandled error", extra={"request_id": call.id.decode()})
        return self.fail(call, BotscoreError("internal error; the request id is in the logs"))

    @property
    def settles(self) -> bool:
        """True when an answer must wait for `settle` before it is sent (BOTSCORE_AUDIT_SYNC=always)."""
        return self.audit.sync == "always"

    async def settle(self, call: Call) -> Failed | None:
        """Once the call's record is on disk: None; if it cannot be, the audit log's 503."""
        refusal = await self.audit.settle(call)
        return None if refusal is None else Failed(refusal, recorded=False)

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
