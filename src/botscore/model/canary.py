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
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Generic, Literal, TypeVar

from botscore.model import artifact, baseline
from botscore.ops.buckets import P_BOT_BUCKETS
from botscore.ops.tally import Calls, Window

FORMAT = "botscore.model-canary/v1"
State = Literal["running", "rolled_back", "promoted", "stopped"]
STATES: tuple[State, ...] = ("running", "rolled_back", "promoted", "stopped")
_SCALE = 10_000  # a share is cut in hundredths of a percent
_Arm = TypeVar("_Arm")


class PlanError(ValueError):
    """A canary plan that cannot be run; the message says why."""


# A share guardrail breaches only when the excess is also significant: a two-proportion z of at least
# this (about 3 in 100,000 one-sided), so client errors and shed answers, which fall on both arms alike,
# do not roll back a good candidate by chance in any of the judgements a step makes.
Z_BREACH = 4.0
MAX_WINDOW_SECONDS = 3600.0
# Seconds: a candidate is not slow for 8 ms where production takes 4 (a loaded host's noise); the model
# family is fixed, so what this catches is a candidate far slower on some inputs.
LATENCY_FLOOR = 0.025


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

    def check(self) -> None:
        """PlanError naming the first value a plan cannot run with."""
        limits = {
            "window_seconds": (0.0, MAX_WINDOW_SECONDS),
            "max_error_excess": (0.0, 1.0),
            "max_refusal_excess": (0.0, 1.0),
            "max_latency_ratio": (1.0, math.inf),
            "max_score_psi": (0.0, math.inf),
            "max_disagreement": (0.0, 1.0),
        }
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not (type(value) in (int, float) and math.isfinite(value) and low <= value <= high):
                raise PlanError(f"guardrail {name} must be a number from {low:g} to {high:g}, got {value!r}")
        if not (type(self.min_calls) is int and self.min_calls >= 1):
            raise PlanError(f"guardrail min_calls must be a whole number of 1 or more, got {self.min_calls!r}")

    def breach(self, window: Window, production: Calls) -> str | None:
        """Why the canary must be rolled back, judged on one window; None if it may go on, or the window
        holds too few canary calls to say. `production` is the arm the canary is measured against: the
        window's own, or, when it holds too few calls (the 100 % step), the last window that held enough.
        Scores are compared in the p_bot histogram's buckets (as drift is), with baseline.MIN_SAMPLES."""
        canary, compared = window.canary, window.compared
        if canary.count < self.min_calls:
            return None
        at = f"in the last {self.window_seconds:g} s ({canary.count} canary calls)"
        for name, mine, theirs, limit in (
            ("5xx", canary.server_errors, production.server_errors, self.max_error_excess),
            ("refusal", canary.refusals, production.refusals, self.max_refusal_excess),
        ):
            excess = canary.share(mine) - production.share(theirs)
            if excess > limit and _z(mine, canary.count, theirs, production.count) >= Z_BREACH:
                return (
                    f"{name} share {canary.share(mine):.1%} against production's {production.share(theirs):.1%} "
                    f"(over +{limit:.1%}) {at}"
                )
        if canary.count >= baseline.MIN_SAMPLES and production.count >= baseline.MIN_SAMPLES:
            mine_p95, theirs_p95 = canary.p95(), max(production.p95(), LATENCY_FLOOR)
            if mine_p95 > self.max_latency_ratio * theirs_p95:  # each a bucket's upper bound
                return (
                    f"p95 latency {mine_p95 * 1000:g} ms against production's {theirs_p95 * 1000:g} ms "
                    f"(over {self.max_latency_ratio:g}x) {at}"
                )
        if compared.count >= max(self.min_calls, baseline.MIN_SAMPLES):
            shares = [n / compared.count for n in compared.production]
            psi = baseline.Distribution(tuple(P_BOT_BUCKETS), tuple(shares)).psi(compared.candidate) or 0.0
            if psi > self.max_score_psi:
                return (
                    f"score PSI {psi:.2f} against production's scores of the same calls "
                    f"(over {self.max_score_psi:g}) {at}"
                )
        if compared.count >= self.min_calls and compared.apart / compared.count > self.max_disagreement:
            return (
                f"disagreement {compared.apart / compared.count:.1%} with production on the same calls "
                f"(over {self.max_disagreement:.1%}) {at}"
            )
        return None


def _z(bad_a: int, n_a: int, bad_b: int, n_b: int) -> float:
    """The two-proportion z of a's share of bad over b's (pooled); inf when b has none to compare and a has."""
    if not n_b:
        return math.inf if bad_a else 0.0
    pooled = (bad_a + bad_b) / (n_a + n_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return (bad_a / n_a - bad_b / n_b) / spread if spread else 0.0


@dataclass(frozen=True)
class Plan:
    """A canary as stored: the candidate, its steps (percent of requests), dwell, where it is and why it
    ended; `run` tells one start of it from another (a restart of the same version is a new run), and
    `replaces` is the production version it was started against (a promotion moves the pointer only
    from that version: a pointer a person moved since is left alone)."""

    version: str
    steps: tuple[float, ...]
    dwell_seconds: float
    step: int = 0
    state: State = "running"
    reason: str | None = None
    guardrails: Guardrails = field(default_factory=Guardrails)
    run: str = ""
    replaces: str | None = None

    def __post_init__(self) -> None:
        if not artifact.VERSION_PATTERN.fullmatch(self.version):
            raise PlanError(f"version must be a model version, got {self.version!r}")
        if not self.steps or any(not 0 < s <= 100 for s in self.steps) or list(self.steps) != sorted(set(self.steps)):
            raise PlanError(f"steps must be increasing percentages over 0 and up to 100, got {list(self.steps)}")
        if not (math.isfinite(self.dwell_seconds) and self.dwell_seconds >= 0):
            raise PlanError(f"dwell must be 0 or more seconds, got {self.dwell_seconds}")
        if not 0 <= self.step < len(self.steps) or self.state not in STATES:
            raise PlanError(f"step {self.step} of {len(self.steps)} in state {self.state!r} is not a plan's")
        if not isinstance(self.run, str) or not (self.replaces is None or isinstance(self.replaces, str)):
            raise PlanError(f"run must be a string and replaces a version or null, got {self.run!r}, {self.replaces!r}")
        self.guardrails.check()

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


class Split(Generic[_Arm]):
    """Which arm answers a request: the candidate for ids that hash under the step's share, else production."""

    __slots__ = ("canary", "cut", "production", "salt")

    def __init__(self, production: _Arm, canary: _Arm, percent: float, version: str) -> None:
        self.production = production
        self.canary = canary
        self.cut = round(percent * _SCALE / 100)
        self.salt = zlib.crc32(version.encode())

    def pick(self, request_id: bytes) -> _Arm:
        # CRC-32, not hash(): the same on every worker and after a restart (str hashes are salted per process),
        # and 8 times cheaper than blake2b; its shares over sequential ids and UUIDs alike are within 0.3 %.
        return self.canary if zlib.crc32(request_id, self.salt) % _SCALE < self.cut else self.production
