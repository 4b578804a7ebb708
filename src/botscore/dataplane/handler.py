"""The scoring routes' one request sequence, without HTTP: validate, score, keep the record, decide the answer.

The HTTP layer reads a request into a `Call` and hands it here: `score` or `score_batch` when
the request got as far as its body, `fail` when the HTTP layer refused it first (method, key,
size, media type). Each sets `call.status` and `call.response` and appends the call's audit
record before returning, so every answer, errors included, is recorded before it is sent.
Tests drive it with a Call and no ASGI at all.
"""

from __future__ import annotations

import json
import logging

from botscore.audit import record
from botscore.audit.log import AuditLog
from botscore.call import Call
from botscore.dataplane import validation
from botscore.errors import BotscoreError, RequestError
from botscore.ops.metrics import Metrics

log = logging.getLogger("botscore.http")


class Handler:
    """Answers scoring calls and keeps their records; the audit log applies its when-full policy."""

    def __init__(self, audit: AuditLog, metrics: Metrics) -> None:
        self.audit = audit
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
        self.audit.keep(call, record.scored(call, x1_token, x2_token))

    def score_batch(self, call: Call) -> None:
        """POST /bot-score/batch: {"instances": [{x1, x2}, ...]} (1 to 1,000) -> {"p_bot": [...]}, in order."""
        try:
            pairs = validation.instances(validation.decode(call.body or b""))
            scores = [call.scorer.p_bot(x1, x2) for x1, x2 in pairs]
        except RequestError as exc:
            self.fail(call, exc)
            return
        except Exception:
            self._internal_error(call)
            return
        for (x1, x2), p_bot in zip(pairs, scores, strict=True):
            self._note_score((x1, x2, p_bot))
        answer = {"p_bot": scores}
        call.status = 200
        call.response = json.dumps(answer, separators=(",", ":")).encode()
        request = {"instances": [{"x1": x1, "x2": x2} for x1, x2 in pairs]}
        self.audit.keep(call, record.general(call, request, answer))

    def fail(self, call: Call, error: BotscoreError) -> None:
        """Answer with `error`; the record keeps the body as JSON when it parses, else as raw text."""
        call.status = error.status
        call.response = error.body_bytes()
        document = validation.decoded(call.body)
        raw = call.body if document is None else None
        self.audit.keep(call, record.general(call, document, error.body(), raw))

    def _internal_error(self, call: Call) -> None:
        """A bug of ours: answer in the error shape, record it, log it with the request id."""
        log.exception("unhandled error", extra={"request_id": call.id.decode()})
        self.fail(call, BotscoreError("internal error; the request id is in the logs"))

    def readiness(self) -> str | None:
        """None when calls can be answered and recorded with room to spare, else the reason."""
        return self.audit.readiness()
