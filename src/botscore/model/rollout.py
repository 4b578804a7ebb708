"""A worker's side of a canary (model/canary.py): it follows the plan, judges its guardrails, and moves it on.

At each poll of the registry (`Follower.poll`, in a thread) the plan is read with a conditional GET
on its ETag; a new run's candidate is fetched and validated once (a missing or invalid one is
refused, counted and logged once, and production answers everything). After the read the worker
steers: it rolls its tally's window and judges the guardrails (`guard`, also in an S3 outage),
writes the rollback when they find a breach, moves a step on once its dwell has passed, and
completes a promotion; each write is conditional on the ETag it read (`Registry.plan`,
`Registry.point`). A breach stops the candidate in the worker that found it at once, whoever wins
the write. `pair` builds the scorers a worker serves: production's, and while the canary runs
here, the candidate's arm and the split.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from botscore.model.artifact import Artifact, ArtifactError
from botscore.model.canary import Plan, Split
from botscore.model.registry import Registry, RegistryError, RegistryUnreachable
from botscore.model.scorer import Scorer
from botscore.ops.tally import Calls, Tally, Window

log = logging.getLogger("botscore.reload")
Promote = Callable[[Artifact, str], None]  # the candidate, the production version it replaces


class Rollout:
    """What a worker knows of the canary, and what it does about it: the plan as last read or written and
    its ETag (`refused`: the plan could not be read, counted once until it can), the run's candidate,
    since when (monotonic) this worker sees the plan's step, the breach its guardrails found (it serves
    no candidate then), its tally, the last production arm with enough calls to compare against, and
    whether the pair last built splits to the candidate."""

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
        self.tally = Tally(60.0, threshold)
        self.window: Window | None = None
        self.baseline: Calls | None = None
        self.served = False

    def serving(self) -> bool:
        """True when the candidate should answer a share of this worker's calls."""
        return self.plan is not None and self.plan.state == "running" and self.candidate is not None and not self.breach

    def changed(self) -> bool:
        """True when the pair last built splits otherwise than it should now."""
        return self.serving() != self.served

    def follow(self) -> bool:
        """Read the plan; True if what this worker serves may change with it. The ETag is kept only once
        the plan was taken in whole, so a read S3 failed half-way is made again at the next poll."""
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
        plan, etag = read
        serving = self.serving()
        old = self.plan
        if plan is not None and plan.state in ("running", "promoted"):
            if old is None or (plan.version, plan.run, plan.guardrails) != (old.version, old.run, old.guardrails):
                self._start(plan)  # a new run: a fresh tally, no breach, the first step's dwell from now
            elif plan.step != old.step:
                self.since = self.clock()
        self.plan, self.etag = plan, etag
        return serving or self.serving() or (plan is not None and plan.state == "promoted")

    def _start(self, plan: Plan) -> None:
        self.candidate = self._load_candidate(plan.version)
        self.breach, self.baseline, self.window = None, None, None
        self.tally = Tally(plan.guardrails.window_seconds, self.threshold)
        self.since = self.clock()

    def _load_candidate(self, version: str) -> Artifact | None:
        try:
            return self.registry.load(version)
        except RegistryUnreachable:
            raise
        except ArtifactError as exc:
            log.error("canary candidate refused; production answers all", extra=self.log_context(reason=str(exc)))
            self.on_refused("canary")
            return None

    def guard(self) -> None:
        """Roll the tally's window and judge a running canary on it; a breach stops the candidate here (at
        the next `pair`). Needs no registry: it runs in an S3 outage too."""
        plan = self.plan
        if plan is None or plan.state != "running" or self.candidate is None:
            return
        window = self.window = self.tally.roll(self.clock())
        if window.production.count >= plan.guardrails.min_calls:
            self.baseline = window.production
        if self.breach is None:  # at the 100 % step, production as it was when it last answered enough
            self.breach = plan.guardrails.breach(window, self.baseline or window.production)

    def steer(self, production: str, promote: Promote) -> bool:
        """After a read of the registry: the guardrails, the steps and the promotion, in this worker
        (`production`: the version it serves there; `promote` moves the pointer); True if what it
        serves changed. A refusal of S3 other than no answer is logged and the poll goes on."""
        try:
            return self._steer(production, promote)
        except RegistryUnreachable:
            raise
        except RegistryError as exc:
            log.error("canary not moved on", extra=self.log_context(reason=str(exc)))
            return False

    def _steer(self, production: str, promote: Promote) -> bool:
        plan, candidate = self.plan, self.candidate
        if plan is None or candidate is None:
            return False
        if plan.state == "promoted":  # complete a promotion whose writer stopped between its two writes
            if production == plan.replaces:
                promote(candidate, production)
            return False
        if plan.state != "running":
            return False
        self.guard()
        if self.breach is not None:  # this worker stops serving the candidate at once, whoever writes the plan
            if self._write(plan.moved(state="rolled_back", reason=self.breach)):
                log.error("canary rolled back", extra=self.log_context(version=plan.version, reason=self.breach))
                self.on_rollback()
            return False
        assert self.window is not None
        if self.clock() - self.since < plan.dwell_seconds or self.window.canary.count < plan.guardrails.min_calls:
            return False
        if not plan.last:
            return self._write(plan.moved(step=plan.step + 1))
        replaces = plan.replaces or production
        if plan.percent < 100 or not self._write(plan.moved(state="promoted", replaces=replaces)):
            return False  # a last step under 100 % holds until a person promotes or stops it
        if production == replaces:  # else a person moved the pointer meanwhile: theirs stands
            promote(candidate, production)
        log.info("canary promoted", extra=self.log_context(version=plan.version, steps=list(plan.steps)))
        return True

    def _write(self, plan: Plan) -> bool:
        """Write the plan over the one this worker read (If-Match); True if it won. On a 412 the plan is read
        again: if it is the one this worker wrote (a retried PUT whose first try was applied), it won."""
        etag = self.registry.plan(plan, if_match=self.etag)
        if etag is None:
            read = self.registry.canary()
            if read is None or read[0] != plan:
                self.etag = None  # lost: the next poll reads the plan whoever wrote it
                return False
            etag = read[1]
        if self.plan is None or plan.step != self.plan.step:
            self.since = self.clock()
        self.plan, self.etag = plan, etag
        return True

    def pair(self, production: Artifact, shadow: Scorer | None) -> Scorer:
        """The scorers to serve: production (the candidate while its promotion is half-written) with `shadow`,
        and while the canary runs in this worker, its split to the candidate's arm (production beside it)."""
        plan, candidate = self.plan, self.candidate
        self.served = self.serving()
        promoting = plan is not None and plan.state == "promoted" and production.version == plan.replaces
        if promoting and candidate is not None:
            production = candidate  # the pointer still names what the candidate replaced: `steer` moves it
        if not self.served or candidate is None or plan is None:
            return Scorer(production, shadow)
        tally = self.tally
        pair = Scorer(production, shadow, arm="production", watch=tally.note_production)
        arm = Scorer(candidate, Scorer(production), arm="canary", watch=tally.note_canary, compared=tally.note_compared)
        pair.split = Split(pair, arm, plan.percent, plan.version)
        return pair
