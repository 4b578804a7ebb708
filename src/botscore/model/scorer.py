"""Scoring: p_bot from a validated artifact, in plain Python (no numpy, no HTTP).

scikit-learn is for training; on the hot path two multiplications and one exp are
cheaper than building an array, and they agree with `predict_proba` to 1e-12.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING

from botscore.model.artifact import Artifact

if TYPE_CHECKING:
    from botscore.model.canary import Split

log = logging.getLogger("botscore.reload")


def sigmoid(z: float) -> float:
    """Numerically stable logistic function: never overflows, exact 0/1 only at the limits."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Scorer:
    """Turns (x1, x2) into p_bot with one model; immutable, so a reload swaps whole scorers.

    `shadow` is the model scored beside it, never answered, or None: the registry's shadow, or on a
    canary's arm production (model/canary.py). The set is one object, so a call that reads
    `ModelSlot.scorer` once scores with one production, one shadow and one canary split. During a
    canary, `split` (on the production scorer) picks each call's arm, `arm` is the arm's column in the
    audit row, `watch` takes each answered call's (status, latency) for the guardrails and `compared`,
    on the canary arm, the (candidate's, production's) scores; all are empty outside a canary.
    """

    __slots__ = (
        "_b",
        "_c1",
        "_c2",
        "_m1",
        "_m2",
        "_s1",
        "_s2",
        "arm",
        "arm_name",
        "artifact",
        "compared",
        "shadow",
        "split",
        "version",
        "version_bytes",
        "version_json",
        "watch",
    )

    def __init__(
        self,
        artifact: Artifact,
        shadow: Scorer | None = None,
        *,
        arm: str | None = None,
        watch: Callable[[tuple[float, float]], None] | None = None,
        compared: Callable[[tuple[float, float]], None] | None = None,
    ) -> None:
        self.artifact = artifact
        self.shadow = shadow
        self.arm_name = arm
        self.arm = b"" if arm is None else b',"arm":"%s"' % arm.encode()  # preformatted for the audit record
        self.watch = watch
        self.compared = compared
        self.split: Split[Scorer] | None = None
        self.version = artifact.version
        self.version_json = json.dumps(artifact.version).encode()  # preformatted for the audit record
        self.version_bytes = artifact.version.encode("ascii", "replace")  # for the X-Model-Version header
        self._c1, self._c2 = artifact.coefficients
        self._b = artifact.intercept
        self._m1, self._m2 = artifact.mean or (0.0, 0.0)
        self._s1, self._s2 = artifact.scale or (1.0, 1.0)

    def p_bot(self, x1: float, x2: float) -> float:
        """Probability that a bot made the transaction; finite and in [0, 1] for all finite inputs."""
        # Same operations in the same order as StandardScaler.transform then
        # LogisticRegression.decision_function, so results match to the last bits.
        u1 = (x1 - self._m1) / self._s1
        u2 = (x2 - self._m2) / self._s2
        z = u1 * self._c1 + u2 * self._c2 + self._b
        if not math.isfinite(z):
            z = self._exact_z(x1, x2)
        if z >= 0:  # sigmoid(z), inlined: this is on every request
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    def _exact_z(self, x1: float, x2: float) -> float:
        """z in exact rational arithmetic, for inputs near the float limits where a term overflowed.

        There float arithmetic (ours and scikit-learn's alike) can return inf - inf = NaN or the
        wrong infinity; the exact value decides the limit. Only reached for |x| near 1e308.
        """
        exact = (
            (Fraction(x1) - Fraction(self._m1)) / Fraction(self._s1) * Fraction(self._c1)
            + (Fraction(x2) - Fraction(self._m2)) / Fraction(self._s2) * Fraction(self._c2)
            + Fraction(self._b)
        )
        try:
            return float(exact)
        except OverflowError:
            return math.inf if exact > 0 else -math.inf


class ModelSlot:
    """Holds the serving Scorer; a reload replaces `scorer`, and each call reads it once when it starts."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    def swap(self, scorer: Scorer, **context: object) -> Scorer:
        """Serve `scorer` from now on and say so; the one place a model is swapped (SIGHUP reload, registry
        follower). One assignment on the event loop: calls in flight finish on the pair they read."""
        old, self.scorer = self.scorer, scorer
        log.info(
            "model reloaded",
            extra={
                **context,
                "old_version": old.version,
                "serving_version": scorer.version,
                "shadow_version": scorer.shadow.version if scorer.shadow else None,
                "canary_version": scorer.split.canary.version if scorer.split else None,
                "canary_percent": scorer.split.cut / 100 if scorer.split else None,
            },
        )
        return old
