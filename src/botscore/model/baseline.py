"""A model's training baseline, and how far live traffic has drifted from it (population stability index).

The artifact's optional `baseline` holds, for each feature and for the score, the share of the
training rows in each bucket of the service's own histograms (ops/metrics.py: X1_BUCKETS,
X2_BUCKETS, P_BOT_BUCKETS; the last bucket open-ended). The service already counts live values in
those buckets for /metrics, so drift costs nothing per request: each EMF interval compares the
interval's counts with the baseline's shares.

The statistic is PSI = sum over buckets of (live - train) * ln(live / train), shares floored at
PSI_FLOOR so that an empty bucket is finite. The usual reading, also in docs/model-card.md:
under 0.1 stable, 0.1 to 0.2 worth a look, over 0.2 a shift to act on (PSI_ACT). A shift of one
standard deviation of a feature scores about 1 or more; sampling noise with n values in b buckets
is about (b - 1) / n, so below MIN_SAMPLES values an interval reports no figure.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from botscore.ops.buckets import bucket_counts

NAMES = ("x1", "x2", "p_bot")
PSI_FLOOR = 1e-4
PSI_ACT = 0.2
MIN_SAMPLES = 200


@dataclass(frozen=True)
class Distribution:
    """Shares of values per bucket: bucket i holds values <= bounds[i] (and > bounds[i-1]); the last is above all."""

    bounds: tuple[float, ...]
    shares: tuple[float, ...]

    def psi(self, counts: Sequence[float]) -> float | None:
        """PSI of live `counts` (one per bucket, as `shares`) against these shares; None under MIN_SAMPLES."""
        total = sum(counts)
        if total < MIN_SAMPLES or len(counts) != len(self.shares):
            return None
        psi = 0.0
        for count, expected in zip(counts, self.shares, strict=True):
            live, train = max(count / total, PSI_FLOOR), max(expected, PSI_FLOOR)
            psi += (live - train) * math.log(live / train)
        return psi


def distribution(bounds: Sequence[float], values: Iterable[float]) -> Distribution:
    """The shares of `values` in the buckets `bounds` make (what training writes into the artifact)."""
    found = bucket_counts(bounds, values)
    total = sum(found)
    if not total:
        raise ValueError("a baseline needs values")
    return Distribution(tuple(float(b) for b in bounds), tuple(round(n / total, 6) for n in found))


def as_document(baseline: dict[str, Distribution]) -> dict[str, Any]:
    return {name: {"bounds": list(d.bounds), "shares": list(d.shares)} for name, d in baseline.items()}


def parse(document: Any) -> dict[str, Distribution]:
    """Validate an artifact's `baseline`; raise ValueError saying what is wrong."""
    if not isinstance(document, dict) or set(document) != set(NAMES):
        raise ValueError(f"baseline must be an object with {', '.join(NAMES)}, got {document!r:.80}")
    parsed = {}
    for name in NAMES:
        entry = document[name]
        bounds = entry.get("bounds") if isinstance(entry, dict) else None
        shares = entry.get("shares") if isinstance(entry, dict) else None
        if not _numbers(bounds) or not _numbers(shares) or len(shares) != len(bounds) + 1:
            raise ValueError(f"baseline.{name} must hold bounds (n numbers) and shares (n + 1 numbers)")
        if any(later <= earlier for earlier, later in itertools.pairwise(bounds)):
            raise ValueError(f"baseline.{name}.bounds must increase")
        if min(shares) < 0 or abs(sum(shares) - 1) > 1e-3:
            raise ValueError(f"baseline.{name}.shares must be non-negative and add up to 1")
        parsed[name] = Distribution(tuple(map(float, bounds)), tuple(map(float, shares)))
    return parsed


def _numbers(value: Any) -> TypeGuard[list[float]]:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )


def psi_of(
    baseline: dict[str, Distribution] | None, name: str, bounds: Sequence[float], counts: Sequence[float]
) -> float | None:
    """PSI of one interval's histogram (`bounds` and a count per bucket, the open one last) against the
    baseline's `name`; None without a baseline, with other buckets, or under MIN_SAMPLES values."""
    expected = baseline.get(name) if baseline else None
    if expected is None or tuple(map(float, bounds)) != expected.bounds:
        return None
    return expected.psi(counts)
