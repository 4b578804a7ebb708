"""A canary: a candidate model answers a share of the requests, in steps, and its guardrails roll it back.

The plan is one object in the registry (`canary`, beside the `production` and `shadow` pointers),
written by `botscore model canary` and moved on by the workers themselves:

    {"format": "botscore.model-canary/v1", "version": "lr-...", "steps": [5, 25, 100],
     "dwell_seconds": 300, "step": 0, "state": "running", "reason": null, "guardrails": {...}}

Which requests: a request whose id hashes below the step's share (CRC-32 of X-Request-ID, salted
with the candidate's version; `Split.pick`) is answered by the candidate, on every worker alike, so
a payment retried with the same id gets the same model; the share of a larger step holds the
smaller's requests. On those requests production is scored too (in the row's shadow columns), so
the two models are compared on the same traffic.

Each worker judges the last `window_seconds` of its own traffic (`Tally`, `Guardrails.breach`);
the first worker that sees a breach writes state "rolled_back" with a conditional write on the
plan's ETag (If-Match: one writer wins, the rest re-read), and every worker stops serving the
candidate within one poll. A step lasts at least its dwell, counted on the monotonic clock of each
worker from when it first saw the step, and moves on only when the worker that moves it has
judged at least `min_calls` canary calls in its window; the last step, at 100 %, ends with
production moved to the candidate after its dwell. A last step under 100 % holds until a person
promotes (or stops) it.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from botscore.model import artifact, baseline

FORMAT = "botscore.model-canary/v1"
State = Literal["running", "rolled_back", "promoted", "stopped"]
STATES: tuple[State, ...] = ("running", "rolled_back", "promoted", "stopped")
_SCALE = 10_000  # a share is cut in hundredths of a percent
Bounds = Sequence[float]


class PlanError(ValueError):
    """A canary plan that cannot be run; the message says why."""


@dataclass(frozen=True)
class Guardrails:
    """What rolls a canary back, each judged on the last `window_seconds` of one worker's calls."""

    window_seconds: float = 60.0
    min_calls: int = 100  # canary calls in the window before anything is judged (or a step moves on)
    max_error_excess: float = 0.01  # the candidate's 5xx share may exceed production's by this much
    max_refusal_excess: float = 0.02  # and its 4xx share (refusals) by this much
    max_latency_ratio: float = 2.0  # its p95 latency over production's (floored at LATENCY_FLOOR)
    max_score_psi: float = 0.2  # PSI of its scores against production's on the same requests
    max_disagreement: float = 0.05  # share of those requests the two put on opposite sides of the threshold

    def breach(
        self, canary: list[float], production: list[float], scores: list[float], threshold: float, bounds: Bounds
    ) -> str | None:
        """Why the canary must be rolled back, judged on one window: each arm's calls (status, latency in
        seconds, status, ...) and the canary calls' scores (the candidate's, production's, ...); None if it
        may go on, or the window holds too few canary calls to say. Scores are compared in the buckets
        `bounds` (the service's p_bot histogram's, as drift is), with baseline.MIN_SAMPLES at least."""
        if len(canary) // 2 < self.min_calls:
            return None
        window = f"in the last {self.window_seconds:g} s ({len(canary) // 2} canary calls)"
        for name, low, limit in (("5xx", 500, self.max_error_excess), ("refusal", 400, self.max_refusal_excess)):
            mine, theirs = _share(canary, low), _share(production, low)
            if mine - theirs > limit:
                return f"{name} share {mine:.1%} against production's {theirs:.1%} (over +{limit:.1%}) {window}"
        if len(canary) // 2 >= baseline.MIN_SAMPLES:  # a tail needs calls: the p95 of 50 is the 3rd slowest
            mine, theirs = _p95(canary), max(_p95(production), LATENCY_FLOOR)
            if mine > self.max_latency_ratio * theirs:
                return f"p95 latency {mine * 1000:.1f} ms against production's {theirs * 1000:.1f} ms {window}"
        candidate, current = scores[0::2], scores[1::2]
        if len(candidate) >= self.min_calls:
            psi = baseline.distribution(bounds, current).psi(baseline.counts(bounds, candidate)) or 0.0
            if psi > self.max_score_psi:
                return (
                    f"score PSI {psi:.2f} against production's scores of the same calls "
                    f"(over {self.max_score_psi:g}) {window}"
                )
            apart = sum((c >= threshold) is not (p >= threshold) for c, p in zip(candidate, current, strict=True))
            if apart / len(candidate) > self.max_disagreement:
                return (
                    f"disagreement {apart / len(candidate):.1%} with production at threshold {threshold:g} "
                    f"(over {self.max_disagreement:.1%}) {window}"
                )
        return None


# Seconds: a candidate is not slow for 8 ms where production takes 4 (a loaded host's noise); the model
# family is fixed, so what this catches is a candidate far slower on some inputs.
LATENCY_FLOOR = 0.025


@dataclass(frozen=True)
class Plan:
    """A canary as stored: the candidate, its steps (percent of requests), dwell, where it is and why it ended."""

    version: str
    steps: tuple[float, ...]
    dwell_seconds: float
    step: int = 0
    state: State = "running"
    reason: str | None = None
    guardrails: Guardrails = field(default_factory=Guardrails)

    def __post_init__(self) -> None:
        if not artifact.VERSION_PATTERN.fullmatch(self.version):
            raise PlanError(f"version must be a model version, got {self.version!r}")
        if not self.steps or any(not 0 < s <= 100 for s in self.steps) or list(self.steps) != sorted(set(self.steps)):
            raise PlanError(f"steps must be increasing percentages over 0 and up to 100, got {list(self.steps)}")
        if not (math.isfinite(self.dwell_seconds) and self.dwell_seconds >= 0):
            raise PlanError(f"dwell must be 0 or more seconds, got {self.dwell_seconds}")
        if not 0 <= self.step < len(self.steps) or self.state not in STATES:
            raise PlanError(f"step {self.step} of {len(self.steps)} in state {self.state!r} is not a plan's")
        g = self.guardrails
        if not (g.window_seconds > 0 and g.min_calls >= 1 and g.max_latency_ratio >= 1):
            raise PlanError("guardrails need a window over 0 s, min_calls of 1 or more, a latency ratio of 1 or more")

    @property
    def percent(self) -> float:
        return self.steps[self.step]

    @property
    def last(self) -> bool:
        return self.step == len(self.steps) - 1

    def encode(self) -> bytes:
        document = {"format": FORMAT, **asdict(self), "steps": list(self.steps)}
        return json.dumps(document, sort_keys=True).encode() + b"\n"

    @classmethod
    def decode(cls, raw: bytes, source: str) -> Plan | None:
        """The plan in `raw` (None: the document says no canary); PlanError saying what is wrong."""
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise PlanError(f"canary plan {source}: not valid JSON") from None
        if not isinstance(document, dict) or document.pop("format", None) != FORMAT:
            raise PlanError(f"canary plan {source}: not a {FORMAT} document")
        if document.get("version") is None:
            return None
        try:
            guards = document.pop("guardrails", None) or {}
            known = {f.name for f in fields(Guardrails)}
            if not isinstance(guards, dict) or set(guards) - known:
                raise PlanError(f"guardrails must be an object of {', '.join(sorted(known))}")
            document["steps"] = tuple(document.get("steps") or ())
            return cls(**document, guardrails=Guardrails(**guards))
        except (TypeError, PlanError) as exc:
            raise PlanError(f"canary plan {source}: {exc}") from None

    def moved(self, **changes: Any) -> Plan:
        return replace(self, **changes)


def _share(calls: list[float], low: int) -> float:
    """The share of `calls` (status, latency, status, latency, ...) answered `low` to `low` + 99."""
    statuses = calls[0::2]
    return sum(low <= s < low + 100 for s in statuses) / len(statuses) if statuses else 0.0


def _p95(calls: list[float]) -> float:
    latencies = sorted(calls[1::2])
    return latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))] if latencies else 0.0


class Split:
    """Which arm answers a request: the candidate for ids that hash under the step's share, else production."""

    __slots__ = ("canary", "cut", "production", "salt")

    def __init__(self, production: Any, canary: Any, percent: float, version: str) -> None:
        self.production = production
        self.canary = canary
        self.cut = round(percent * _SCALE / 100)
        self.salt = zlib.crc32(version.encode())

    def pick(self, request_id: bytes) -> Any:
        # CRC-32, not hash(): the same on every worker and after a restart (str hashes are salted per process),
        # and 8 times cheaper than blake2b; its shares over sequential ids and UUIDs alike are within 0.3 %.
        return self.canary if zlib.crc32(request_id, self.salt) % _SCALE < self.cut else self.production
