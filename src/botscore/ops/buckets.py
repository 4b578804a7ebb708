"""The buckets the service counts values in, and the lists the request path notes them into; no
prometheus_client here: a module that only needs these (a canary's plan, read by `botscore model`
before `botscore serve` picks prometheus_client's mode) must not import it (it picks its mode on import).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import TypeVar

_T = TypeVar("_T")

# 0.2 is the p99 alarm's threshold (terraform: p99_latency_threshold_seconds must be a bound): CloudWatch
# computes the EMF p99 from one value per bucket, so a threshold on a bound puts every value of the buckets
# below it under the threshold and every value above it over it, and the alarm fires exactly past 200 ms.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.5)
P_BOT_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20))
X1_BUCKETS = tuple(round(-1.0 + 0.25 * i, 2) for i in range(21))  # log10 seconds: 0.1 s .. 10^4 s
X2_BUCKETS = tuple(round(0.2 * i, 1) for i in range(16))  # log10(1 + attempts): 0 .. ~1000 attempts
# shadow p_bot minus production p_bot: fine near 0, where two close models mostly differ
DIFFERENCE_BUCKETS = (-0.5, -0.2, -0.1, -0.05, -0.02, -0.01, -0.001, 0.0, 0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
FSYNC_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def bucket_counts(bounds: Sequence[float], values: Iterable[float]) -> list[int]:
    """How many of `values` fall in each bucket of `bounds` (`le`: a value equal to a bound is in its
    bucket), the open bucket last: the counts a histogram of these bounds adds."""
    ordered = sorted(values)
    edges = [*(bisect_right(ordered, bound) for bound in bounds), len(ordered)]
    return [upto - below for below, upto in zip([0, *edges[:-1]], edges, strict=True)]


def take(pending: list[_T]) -> list[_T]:
    """What a pending list holds now, removed from it. Not a swap (note_* stay bound to the list),
    and only what was copied is deleted: another thread may append meanwhile."""
    taken = pending[:]
    del pending[: len(taken)]
    return taken
