"""A worker's side of a canary (model/canary.py): it follows the plan, judges its guardrails, and moves it on.

At each poll of the registry (`Follower.poll`, in a thread) the plan is read with a conditional GET
on its ETag; a new candidate is fetched and validated once (a missing or invalid one is refused,
counted and logged once, and production answers everything). After the read the worker steers: it
rolls its tally's window and judges the guardrails (`guard`, also in an S3 outage), writes the
rollback when they find a breach, moves a step on once its dwell has passed, and completes a
promotion; each write is conditional on the plan's ETag (`Registry.plan`). A breach stops the
candidate in the worker that found it at once, whoever wins the write. `pair` builds the scorers a
worker serves: production's, and while the canary runs here, the candidate's arm and the split.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from botscore.model.artifact import Artifact, ArtifactError
from botscore.model.canary import Plan, Split
from botscore.model.registry import Registry, RegistryError, RegistryUnreachable
from botscore.model.scorer import Scorer
from botscore.ops.metrics import P_BOT_BUCKETS
from botscore.ops.tally import Tally

log = logging.getLogger("botscore.reload")


class Rollout:
    """What a worker knows of the canary, and what it does about it: the plan as last read or written and
    its ETag (`refused`: the plan could not be read, counted once until it can), the candidate, since
    when (monotonic) this worker sees the plan's step, the breach its guardrails found (it serves no
    candidate then), its tally and the window last rolled from it, and whether the pair last built
    splits to the candidate."""

    def __init__(
        self,
        registry: Registry,
        *,
        on_refused: Callable[[str], None],
        on_rollback: Callable[[], None],
        threshold: float,
        clock: Callable[[], float] = time.monotonic,
        log: Callable[..., dict[str, object]] = lambda **fields: fields,
    ) -> None:
        self.registry = registry
        self.on_refused = on_refused
        self.on_rollback = on_rollback
        self.threshold = threshold  # BOTSCORE_SHADOW_THRESHOLD: disagreement is judged at it
        self.clock = clock
        self.log_context = log
        self.plan: Plan | None = None
        self.etag: str | None = None
        self.refused = False
        self.candidate: Artifact | None = None
        self.since = 0.0
        self.breach: str | None = None
        self.tally = Tally(60.0)
        self.window: tuple[list[float], list[float], list[float]] = ([], [], [])
        self.served = False

    def start(self, candidate: Artifact | None, window_seconds: float) -> None:
        """A new candidate (or new guardrails): a fresh tally, no breach."""
        self.candidate, self.breach, self.tally = candidate, None, Tally(window_seconds)

    def serving(self) -> bool:
        """True when the candidate should answer a share of this worker's calls."""
        return self.plan is not None and self.plan.state == "running" and self.candidate is not None and not self.breach

    def changed(self) -> bool:
        """True when the pair last built splits otherwise than it should now."""
        return self.serving() != self.served

    def follow(self) -> bool:
        """Read the canary's plan; True if what this worker serves changes with it."""
        try:
            read = self.registry.canary(None if self.refused else self.etag)
        except RegistryUnreachable:
            raise
        except RegistryError as exc:  # not a plan: refused once, as a bad pointer is (read again each poll)
            if not self.refused:
                log.error("canary plan refused", extra=self.log_context(reason=str(exc)))
                self.on_refused("canary")
            self.refused = True
            return False
        self.refused = False
        if read is None:
            return False
        plan, self.etag = read
        serving = self.serving()
        if plan is not None and plan.state in ("running", "promoted"):
            if self.plan is None or (plan.version, plan.guardrails) != (self.plan.version, self.plan.guardrails):
                self.start(self._load_candidate(plan.version), plan.guardrails.window_seconds)
            if self.plan is None or (plan.version, plan.step) != (self.plan.version, self.plan.step):
                self.since = self.clock()
        self.plan = plan
        return serving or self.serving() or (plan is not None and plan.state == "promoted")

    def _load_candidate(self, version: str) -> Artifact | None:
        try:
            return self.registry.load(version)
        except RegistryUnreachable:
            raise
        except ArtifactError as exc:
            log.error("canary candidate refused; production answers all", extra=self.log_context(reason=str(exc)))
            self.on_refused("canary")
            return None

    def steer(self, production: Artifact | None, promoted: Callable[[Artifact], None]) -> bool:
        """The canary's guardrails and steps, in this worker: True if what it serves changed."""
        plan, candidate = self.plan, self.candidate
        if plan is None or candidate is None:
            return False
        if plan.state == "promoted":  # complete a promotion whose writer stopped between its two writes
            if production is not None and production.version != plan.version:
                self.registry.point("production", plan.version)
                promoted(candidate)
            return False
        if plan.state != "running":
            return False
        self.guard()
        if self.breach is not None:  # this worker stops serving the candidate at once, whoever writes the plan
            if self._write(plan.moved(state="rolled_back", reason=self.breach)):
                log.error("canary rolled back", extra=self.log_context(version=plan.version, reason=self.breach))
                self.on_rollback()
            return False
        canary_calls = self.window[1]
        if self.clock() - self.since < plan.dwell_seconds or len(canary_calls) // 2 < plan.guardrails.min_calls:
            return False
        if not plan.last:
            return self._write(plan.moved(step=plan.step + 1))
        if plan.percent < 100 or not self._write(plan.moved(state="promoted")):
            return False  # a last step under 100 % holds until a person promotes or stops it
        self.registry.point("production", plan.version)
        promoted(candidate)
        log.info("canary promoted", extra=self.log_context(version=plan.version, steps=list(plan.steps)))
        return True

    def guard(self) -> None:
        """Roll the tally's window and judge a running canary on it; a breach stops the candidate here (at
        the next `_pair`). Needs no registry: it runs in an S3 outage too."""
        if self.plan is None or self.plan.state != "running" or self.candidate is None:
            return
        self.window = self.tally.roll(self.clock())
        if self.breach is None:
            production_calls, canary_calls, scores = self.window
            guardrails = self.plan.guardrails
            self.breach = guardrails.breach(canary_calls, production_calls, scores, self.threshold, P_BOT_BUCKETS)

    def _write(self, plan: Plan) -> bool:
        """Write the plan over the one this worker read (If-Match); True if it won, else it reads again."""
        etag = self.registry.plan(plan, if_match=self.etag)
        if etag is None:
            self.etag = None
            return False
        if self.plan is None or plan.step != self.plan.step:
            self.since = self.clock()
        self.plan, self.etag = plan, etag
        return True

    def pair(self, production: Artifact, shadow: Scorer | None) -> Scorer:
        """The scorers to serve: production (the candidate once promoted here) with `shadow`, and while the
        canary runs in this worker, its split to the candidate's arm (production scored beside it)."""
        plan, candidate = self.plan, self.candidate
        self.served = self.serving()
        if plan is not None and candidate is not None and plan.state == "promoted":
            production = candidate  # promoted: the pointer follows (see `steer`)
        if not self.served or candidate is None or plan is None:
            return Scorer(production, shadow)
        tally = self.tally
        pair = Scorer(production, shadow, arm="production", watch=tally.note_production)
        arm = Scorer(candidate, Scorer(production), arm="canary", watch=tally.note_canary, compared=tally.note_compared)
        pair.split = Split(pair, arm, plan.percent, plan.version)
        return pair
