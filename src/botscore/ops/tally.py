"""One worker's calls of each arm during a canary, counted per poll, in a sliding window, for its guardrails.

The request path only extends flat lists (no Python frame, as the metrics do): `note_production` and
`note_canary` take (status, latency in seconds), `note_compared` the candidate's and production's score
of one instance. `roll`, off the request path at each poll, reduces what was noted since the last roll
to counts (statuses by class, latencies and scores in the service's histogram buckets, disagreements),
keeps them as one chunk and drops the chunks older than the window: memory grows with the polls in a
window, not with the calls, and judging a window adds up a few dozen counts per chunk.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from botscore.ops.buckets import LATENCY_BUCKETS, P_BOT_BUCKETS, bucket_counts, take


@dataclass
class Calls:
    """One arm's answered calls: how many, how many 5xx and 4xx, and their latencies per LATENCY_BUCKETS bucket."""

    count: int
    server_errors: int
    refusals: int
    latencies: list[int]

    def share(self, what: int) -> float:
        return what / self.count if self.count else 0.0

    def p95(self) -> float:
        """The upper bound of the bucket holding the 95th percentile (inf: the open bucket); 0 without calls."""
        return _quantile(self.latencies, LATENCY_BUCKETS, 0.95)


@dataclass
class Compared:
    """The canary's scored instances: how many, how many the two models put on opposite sides of the
    threshold, and each model's scores per P_BOT_BUCKETS bucket."""

    count: int
    apart: int
    candidate: list[int]
    production: list[int]


@dataclass
class Window:
    """What a window holds: each arm's calls and the compared scores."""

    production: Calls
    canary: Calls
    compared: Compared


class Tally:
    """Counts of each arm's calls in the last `window_seconds`; disagreement at `threshold`."""

    def __init__(self, window_seconds: float, threshold: float) -> None:
        self.window_seconds = window_seconds
        self.threshold = threshold
        self._pending: tuple[list[float], list[float], list[float]] = ([], [], [])
        self.note_production: Callable[[tuple[float, float]], None] = self._pending[0].extend
        self.note_canary: Callable[[tuple[float, float]], None] = self._pending[1].extend
        self.note_compared: Callable[[tuple[float, float]], None] = self._pending[2].extend
        self._chunks: deque[tuple[float, Window]] = deque()

    def roll(self, now: float) -> Window:
        """Count what was noted since the last roll as a chunk at `now` (monotonic seconds), drop chunks out
        of the window, and return the window's sums."""
        production, canary, compared = (take(pending) for pending in self._pending)
        self._chunks.append((now, Window(_calls(production), _calls(canary), self._compared(compared))))
        while self._chunks[0][0] <= now - self.window_seconds:
            self._chunks.popleft()
        windows = [window for _, window in self._chunks]
        return Window(
            _sum_calls([w.production for w in windows]),
            _sum_calls([w.canary for w in windows]),
            Compared(
                sum(w.compared.count for w in windows),
                sum(w.compared.apart for w in windows),
                _sum_lists([w.compared.candidate for w in windows]),
                _sum_lists([w.compared.production for w in windows]),
            ),
        )

    def _compared(self, pairs: list[float]) -> Compared:
        candidate, production, threshold = pairs[0::2], pairs[1::2], self.threshold
        apart = sum((c >= threshold) is not (p >= threshold) for c, p in zip(candidate, production, strict=True))
        return Compared(
            len(candidate), apart, bucket_counts(P_BOT_BUCKETS, candidate), bucket_counts(P_BOT_BUCKETS, production)
        )


def _calls(flat: list[float]) -> Calls:
    statuses, latencies = flat[0::2], flat[1::2]
    return Calls(
        len(statuses),
        sum(500 <= s < 600 for s in statuses),
        sum(400 <= s < 500 for s in statuses),
        bucket_counts(LATENCY_BUCKETS, latencies),
    )


def _sum_lists(lists: list[list[int]]) -> list[int]:
    return [sum(column) for column in zip(*lists, strict=True)]


def _sum_calls(calls: list[Calls]) -> Calls:
    return Calls(
        sum(c.count for c in calls),
        sum(c.server_errors for c in calls),
        sum(c.refusals for c in calls),
        _sum_lists([c.latencies for c in calls]),
    )


def _quantile(counts: list[int], bounds: Sequence[float], q: float) -> float:
    total = sum(counts)
    if not total:
        return 0.0
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= q * total:
            return bounds[index] if index < len(bounds) else math.inf
    return math.inf
