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

A canary's plan is read at the same poll, and steered after it, by the worker's `Rollout`
(model/rollout.py); the pair it builds carries the canary's split.

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
from botscore.model.registry import ROLES, Registry, RegistryError, RegistryUnreachable, Role
from botscore.model.rollout import Rollout
from botscore.model.scorer import Scorer

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
        self._etags: dict[Role, str | None] = dict.fromkeys(ROLES)
        self._models: dict[Role, Artifact | None] = dict.fromkeys(ROLES)
        self._outage: str | None = None
        self.rollout = Rollout(
            registry,
            on_refused=on_refused,
            on_rollback=on_rollback,
            threshold=threshold,
            clock=clock,
            log=self._context,
        )

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
            self.rollout.follow()
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
            moved = self.rollout.follow() or moved
            reachable = True
            production = self._models["production"]
            assert production is not None  # `first` ran
            moved = self.rollout.steer(production.version, self._promote) or moved
        except RegistryUnreachable as exc:
            self._unreachable(exc)
        else:
            if self._outage is not None:
                log.info("model registry reachable again", extra=self._context(outage=self._outage))
            self._outage = None
        if not reachable:  # S3 down: the guardrails still judge, and a breach stops the candidate here
            self.rollout.guard()
        moved = moved or self.rollout.changed()  # a breach found, whatever failed after it
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

    def _pair(self) -> Scorer:
        production, shadow = self._models["production"], self._models["shadow"]
        assert production is not None
        return self.rollout.pair(production, Scorer(shadow) if shadow is not None else None)

    def _promote(self, candidate: Artifact, replaced: str) -> None:
        """Move production to the canary's candidate, only over the pointer this worker read (If-Match): a
        pointer moved since (a person's promote) stays. The pointer is read again at the next poll."""
        etag = self._etags["production"]
        if etag is None:
            log.warning(
                "canary promoted, but production has no pointer here to move: run botscore model promote",
                extra=self._context(version=candidate.version, replaced=replaced),
            )
        elif self.registry.point("production", candidate.version, if_match=etag):
            self._models["production"], self._etags["production"] = candidate, None

    def _context(self, **fields: object) -> dict[str, object]:
        return {"model_registry": self.registry.url, "pid": os.getpid(), **fields}
