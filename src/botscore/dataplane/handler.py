"""The scoring routes' one request sequence, without HTTP: validate, score, keep the record, decide the answer.

The HTTP layer reads a request into a `Call` and hands it here: `score`, `score_batch` or `infer` when
the request got as far as its body, `fail` when the HTTP layer refused it first (method, key,
size, media type). Each sets `call.status` and `call.response` and appends the call's audit
record before returning, so every answer, errors included, is recorded before it is sent.
Tests drive it with a Call and no ASGI at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from botscore.audit import record
from botscore.audit.log import AuditLog
from botscore.call import Call
from botscore.dataplane import inference, validation
from botscore.errors import BotscoreError, RequestError
from botscore.ops.metrics import Metrics

log = logging.getLogger("botscore.http")
_Parsed = TypeVar("_Parsed")


class Handler:
    """Answers scoring calls and keeps their records; the audit log applies its when-full policy."""

    def __init__(self, audit: AuditLog, metrics: Metrics, *, raw_limit: int = record.RAW_LIMIT) -> None:
        self.audit = audit
        self.raw_limit = raw_limit  # BOTSCORE_AUDIT_RAW_MAX_BYTES
        self._note_score = metrics.note_score

    def score(self, call: Call) -> None:
        """POST /bot-score: {"x1": number, "x2": number} -> {"p_bot": number}."""
        body = call.body or b""
        try:
            # validation.parse_with_tokens, unrolled: one call less on the path nearly every request takes
            x1, x2, x1_token, x2_token = validation.usual(body) or validation.parse_unusual(body)
            p_bot = call.scorer.p_bot(x1, x2)
        except RequestError as exc:
            self.fail(call, exc)
            return
        except Exception:
            self._internal_error(call)
            return
        call.status = 200
        call.response = b'{"p_bot":%r}' % p_bot
        self._note_score((x1, x2, p_bot))
        self.audit.keep(call, record.scored(call, 0, x1_token, x2_token, p_bot))

    def score_batch(self, call: Call) -> None:
        """POST /bot-score/batch: {"instances": [{x1, x2}, ...]} (1 to 1,000) -> {"p_bot": [...]}, in order."""
        scored = self._score_all(call, lambda: validation.instances(validation.decode(call.body or b"")), list)
        if scored is None:
            return
        pairs, scores = scored
        call.status = 200
        call.response = json.dumps({"p_bot": scores}, separators=(",", ":")).encode()
        self._keep_scores(call, pairs, scores)

    def infer(self, call: Call) -> None:
        """POST /v2/models/bot-score/infer, the Open Inference Protocol: x1 and x2 (or features) tensors
        of N instances -> the p_bot tensor, each score /bot-score's for the same features."""
        scored = self._score_all(
            call, lambda: inference.parse(call.body or b"", call.header_length), lambda request: request.pairs
        )
        if scored is None:
            return
        request, scores = scored
        pairs = request.pairs
        call.status = 200
        call.response, header_length = inference.response(request, call.scorer.version, scores)
        if header_length is not None:
            call.content_type = b"application/octet-stream"
            call.extra_headers = [(b"inference-header-content-length", b"%d" % header_length)]
        self._keep_scores(call, pairs, scores)

    def _score_all(
        self, call: Call, parse: Callable[[], _Parsed], pairs: Callable[[_Parsed], list[tuple[float, float]]]
    ) -> tuple[_Parsed, list[float]] | None:
        """What `parse` reads and the scores of its instances (`pairs`); None when the call was
        answered with an error instead."""
        try:
            parsed = parse()
            return parsed, [call.scorer.p_bot(x1, x2) for x1, x2 in pairs(parsed)]
        except RequestError as exc:
            self.fail(call, exc)
        except Exception:
            self._internal_error(call)
        return None

    def _keep_scores(self, call: Call, pairs: list[tuple[float, float]], scores: list[float]) -> None:
        """One row per score, appended in one write."""
        rows = []
        for item, ((x1, x2), p_bot) in enumerate(zip(pairs, scores, strict=True)):
            self._note_score((x1, x2, p_bot))
            rows.append(record.scored(call, item, repr(x1).encode(), repr(x2).encode(), p_bot))
        self.audit.keep(call, b"".join(rows))

    def fail(self, call: Call, error: BotscoreError, response: bytes | None = None) -> None:
        """Answer with `error` (`response`: its body, when the caller has it made already); the record
        keeps the body as text, and the features it could read."""
        call.status = error.status
        call.response = call.render_error(error) if response is None else response
        sent = _as_sent(validation.decoded(call.body))
        self.audit.keep(call, record.failed(call, error, sent, raw_limit=self.raw_limit))

    def _internal_error(self, call: Call) -> None:
        """A bug of ours: answer in the error shape, record it, log it with the request id."""
        log.exception("unhandled error", extra={"request_id": call.id.decode()})
        self.fail(call, BotscoreError("internal error; the request id is in the logs"))

    @property
    def settles(self) -> bool:
        """True when an answer must wait for `settle` before it is sent (BOTSCORE_AUDIT_SYNC=always)."""
        return self.audit.sync == "always"

    async def settle(self, call: Call) -> None:
        """Wait until the call's record is on disk; if it cannot be, the answer becomes a 503."""
        if call.status != 503:
            await self.audit.settle(call)

    def readiness(self) -> str | None:
        """None when calls can be answered and recorded with room to spare, else the reason."""
        return self.audit.readiness()


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
