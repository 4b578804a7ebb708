"""Each worker follows the registry's pointers and swaps its models in place, with no failed request.

Every BOTSCORE_MODEL_POLL_SECONDS (and at once on SIGHUP) a worker reads the `production` and
`shadow` pointers with a conditional GET on the ETag it last saw: an unchanged pointer costs a
304 and no parsing. A changed one is followed in a thread (the event loop keeps serving): the
artifact is fetched and validated, and the new pair (production, shadow) is swapped in with one
assignment on the event loop, as the SIGHUP reload does, so requests in flight finish on the pair
they started with. So the whole fleet serves a new version within one poll interval plus one
fetch after the pointer moved.

A pointer to a version that is missing or fails validation is refused: the worker keeps the
model it has, logs it once and counts it (`botscore_model_refusals_total`); the ETag of the
refused pointer is remembered, so it is not fetched (nor logged) again until the pointer moves.

A canary (model/canary.py) is followed the same way: its plan is read with a conditional GET at
each poll, its candidate fetched and validated once, and the pair gets the split. The follower is
also where a worker steers the canary (`_steer`, after each poll): it rolls the window of its
guardrails' tally, writes the rollback when they find a breach, moves a step on when its dwell has
passed, and completes a promotion; each write is conditional on the plan's ETag.

An S3 outage changes nothing for clients, at start-up included: a worker that cannot read the
registry when it starts serves BOTSCORE_MODEL_PATH, so tasks still start (scale-out, a deploy)
during the outage the audit spool is sized to ride out. Each unanswered read is counted
(`botscore_model_registry_unreachable_total`, EMF RegistryUnreachable, alarmed); the outage is
logged when it starts and when it ends, and the pointers are asked again at each poll, so the
worker serves what production names within one poll of S3 answering again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from botscore.model.artifact import Artifact, ArtifactError
from botscore.model.canary import Plan, Split
from botscore.model.registry import ROLES, Registry, RegistryError, RegistryUnreachable, Role
from botscore.model.scorer import Scorer
from botscore.ops.metrics import P_BOT_BUCKETS
from botscore.ops.tally import Tally

log = logging.getLogger("botscore.reload")


class Follower:
    """Follows `registry`'s pointers for one worker; `on_refused` counts a refusal in its metrics,
    `on_unreachable` a read of the registry that S3 did not answer, and `on_rollback` a canary this
    worker rolled back. `threshold` is BOTSCORE_SHADOW_THRESHOLD (the canary's disagreement is judged at it)."""

    def __init__(
        self,
        registry: Registry,
        *,
        on_refused: Callable[[str], None] = lambda role: None,
        on_unreachable: Callable[[], None] = lambda: None,
        on_rollback: Callable[[], None] = lambda: None,
        threshold: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.on_refused = on_refused
        self.on_unreachable = on_unreachable  # counts a read S3 did not answer
        self.on_rollback = on_rollback
        self.threshold = threshold
        self.clock = clock
        self._etags: dict[Role, str | None] = dict.fromkeys(ROLES)
        self._models: dict[Role, Artifact | None] = dict.fromkeys(ROLES)
        self._outage: str | None = None
        self._canary = _Canary()

    def first(self, fallback: Callable[[], Artifact]) -> Scorer:
        """The pair to start with (blocking, at start-up). With no production pointer yet (a first
        deploy, before anything was promoted), or no answer from S3, the `fallback` model
        (BOTSCORE_MODEL_PATH) serves until the registry names one; a pointer there must name a valid
        version, else ArtifactError stops start-up, as a broken MODEL_PATH does. A shadow that is not
        valid is refused as it would be later."""
        try:
            pointer = self.registry.pointer("production")
            assert pointer is not None  # no ETag was sent, so no 304
            if pointer.etag is None:
                log.warning(
                    "model registry has no production pointer yet; serving BOTSCORE_MODEL_PATH until one is promoted",
                    extra=self._context(),
                )
            elif pointer.version is None:
                raise RegistryError(f"model pointer {self.registry.url}production names no version")
            else:
                self._models["production"] = self.registry.load(pointer.version)
                self._etags["production"] = pointer.etag
            self._follow("shadow")
            self._follow_canary()
        except RegistryUnreachable as exc:
            self._unreachable(exc, at_start=True)
        production = self._models["production"]
        if production is None:
            production = self._models["production"] = fallback()
        if self._outage is not None:
            log.warning(
                "model registry unreachable at start-up; serving what it could read, else BOTSCORE_MODEL_PATH, "
                "until it answers",
                extra=self._context(reason=self._outage, serving_version=production.version),
            )
        return self._pair()

    def poll(self) -> Scorer | None:
        """Read both pointers (blocking: run it in a thread); the new pair if either moved to a valid version."""
        moved = reachable = False
        try:
            for role in ROLES:  # a role followed before an outage stays followed: `moved` keeps it
                moved = self._follow(role) or moved
            moved = self._follow_canary() or moved
            reachable = True
            moved = self._steer() or moved
        except RegistryUnreachable as exc:
            self._unreachable(exc)
        else:
            if self._outage is not None:
                log.info("model registry reachable again", extra=self._context(outage=self._outage))
            self._outage = None
        if not reachable:  # S3 down: the guardrails still judge, and a breach stops the candidate here
            self._guard()
        moved = moved or self._canary.serving() != self._canary.served  # a breach found, whatever failed after
        return self._pair() if moved else None

    def _unreachable(self, exc: RegistryUnreachable, *, at_start: bool = False) -> None:
        """Count a read S3 did not answer; log the first of an outage (`first` logs one at start-up)."""
        self.on_unreachable()
        if self._outage is None and not at_start:
            log.warning("model registry unreachable; will ask again", extra=self._context(reason=str(exc)))
        self._outage = str(exc)

    def _follow(self, role: Role) -> bool:
        """Read the `role` pointer; True if it now names another valid model (or, for shadow, none)."""
        pointer = self.registry.pointer(role, self._etags[role])
        if pointer is None:  # 304: unchanged
            return False
        serving = self._models[role]
        if pointer.version == (serving.version if serving else None):
            self._etags[role] = pointer.etag
            return False
        if pointer.etag is None and role == "production":  # still no pointer: keep the fallback
            return False
        try:
            if pointer.version is None and role == "production":
                raise RegistryError(f"model pointer {self.registry.url}production names no version")
            model = None if pointer.version is None else self.registry.load(pointer.version)
        except RegistryUnreachable:
            raise
        except ArtifactError as exc:
            self._etags[role] = pointer.etag  # refused once: not fetched again until the pointer moves
            log.error(
                "model pointer refused; still serving the model it had",
                extra=self._context(
                    role=role, version=pointer.version, serving_version=serving and serving.version, reason=str(exc)
                ),
            )
            self.on_refused(role)
            return False
        self._etags[role] = pointer.etag
        self._models[role] = model
        return True

    def _follow_canary(self) -> bool:
        """Read the canary's plan; True if what this worker serves changes with it."""
        canary = self._canary
        try:
            read = self.registry.canary(canary.etag)
        except RegistryUnreachable:
            raise
        except RegistryError as exc:  # not a plan: refused once, as a bad pointer is
            read = None
            if canary.etag != "refused":
                log.error("canary plan refused", extra=self._context(reason=str(exc)))
                self.on_refused("canary")
            canary.etag = "refused"
        if read is None:
            return False
        plan, canary.etag = read
        serving = canary.serving()
        if plan is not None and plan.state in ("running", "promoted"):
            if canary.plan is None or (plan.version, plan.guardrails) != (canary.plan.version, canary.plan.guardrails):
                canary.start(self._load_candidate(plan.version), plan.guardrails.window_seconds)
            if canary.plan is None or (plan.version, plan.step) != (canary.plan.version, canary.plan.step):
                canary.since = self.clock()
        canary.plan = plan
        return serving or canary.serving() or (plan is not None and plan.state == "promoted")

    def _load_candidate(self, version: str) -> Artifact | None:
        try:
            return self.registry.load(version)
        except RegistryUnreachable:
            raise
        except ArtifactError as exc:
            log.error("canary candidate refused; production answers all", extra=self._context(reason=str(exc)))
            self.on_refused("canary")
            return None

    def _steer(self) -> bool:
        """The canary's guardrails and steps, in this worker: True if what it serves changed."""
        canary = self._canary
        plan, candidate = canary.plan, canary.candidate
        if plan is None or candidate is None:
            return False
        production = self._models["production"]
        if plan.state == "promoted":  # complete a promotion whose writer stopped between its two writes
            if production is not None and production.version != plan.version:
                self.registry.point("production", plan.version)
                self._models["production"], self._etags["production"] = candidate, None
            return False
        if plan.state != "running":
            return False
        self._guard()
        if canary.breach is not None:  # this worker stops serving the candidate at once, whoever writes the plan
            if self._write(plan.moved(state="rolled_back", reason=canary.breach)):
                log.error("canary rolled back", extra=self._context(version=plan.version, reason=canary.breach))
                self.on_rollback()
            return False
        canary_calls = canary.window[1]
        if self.clock() - canary.since < plan.dwell_seconds or len(canary_calls) // 2 < plan.guardrails.min_calls:
            return False
        if not plan.last:
            return self._write(plan.moved(step=plan.step + 1))
        if plan.percent < 100 or not self._write(plan.moved(state="promoted")):
            return False  # a last step under 100 % holds until a person promotes or stops it
        self.registry.point("production", plan.version)
        self._models["production"], self._etags["production"] = candidate, None
        log.info("canary promoted", extra=self._context(version=plan.version, steps=list(plan.steps)))
        return True

    def _guard(self) -> None:
        """Roll the tally's window and judge a running canary on it; a breach stops the candidate here (at
        the next `_pair`). Needs no registry: it runs in an S3 outage too."""
        canary = self._canary
        if canary.plan is None or canary.plan.state != "running" or canary.candidate is None:
            return
        canary.window = canary.tally.roll(self.clock())
        if canary.breach is None:
            production_calls, canary_calls, scores = canary.window
            guardrails = canary.plan.guardrails
            canary.breach = guardrails.breach(canary_calls, production_calls, scores, self.threshold, P_BOT_BUCKETS)

    def _write(self, plan: Plan) -> bool:
        """Write the plan over the one this worker read (If-Match); True if it won, else it reads again."""
        canary = self._canary
        etag = self.registry.plan(plan, if_match=canary.etag)
        if etag is None:
            canary.etag = None
            return False
        if canary.plan is None or plan.step != canary.plan.step:
            canary.since = self.clock()
        canary.plan, canary.etag = plan, etag
        return True

    def _pair(self) -> Scorer:
        production, shadow = self._models["production"], self._models["shadow"]
        assert production is not None
        canary = self._canary
        plan, candidate = canary.plan, canary.candidate
        canary.served = canary.serving()
        if plan is not None and candidate is not None and plan.state == "promoted":
            production = candidate  # promoted: the pointer follows (see `_steer`)
        pair = Scorer(production, Scorer(shadow) if shadow is not None else None)
        if not canary.serving() or candidate is None or plan is None:
            return pair
        tally = canary.tally
        pair = Scorer(production, pair.shadow, arm="production", watch=tally.note_production)
        arm = Scorer(candidate, Scorer(production), arm="canary", watch=tally.note_canary, compared=tally.note_compared)
        pair.split = Split(pair, arm, plan.percent, plan.version)
        return pair

    def _context(self, **fields: object) -> dict[str, object]:
        return {"model_registry": self.registry.url, "pid": os.getpid(), **fields}


class _Canary:
    """What a worker knows of the canary: the plan as last read or written and its ETag ("refused": a
    plan that could not be read, until it changes), the candidate, since when (monotonic) this worker
    sees the plan's step, the breach its guardrails found (it serves no candidate then), its tally."""

    def __init__(self) -> None:
        self.plan: Plan | None = None
        self.etag: str | None = None
        self.candidate: Artifact | None = None
        self.since = 0.0
        self.breach: str | None = None
        self.tally = Tally(60.0)
        self.window: tuple[list[float], list[float], list[float]] = ([], [], [])  # as the tally last rolled it
        self.served = False  # whether the pair last built splits to the candidate

    def start(self, candidate: Artifact | None, window_seconds: float) -> None:
        """A new candidate (or new guardrails): a fresh tally, no breach."""
        self.candidate, self.breach, self.tally = candidate, None, Tally(window_seconds)

    def serving(self) -> bool:
        """True when the candidate answers a share of this worker's calls."""
        return self.plan is not None and self.plan.state == "running" and self.candidate is not None and not self.breach
