"""Which fixed rate to try next, to find the highest one whose p99 stays under a limit.

A ladder first: from `start`, double after each pass and halve after each fail below every
pass, until a pass and a fail bracket the answer; then bisect that bracket (geometric means,
rounded to three significant figures) until its ends are within `resolution` of each other.
Pure functions of the trials so far, so the trials of one limit serve the others (a rate that
passed the 10 ms limit passed the 200 ms one too).

A pass is a clean trial (every request answered 200, none unsent, timed out or refused) with
a p99 under the limit. The load is assumed monotonic: a pass above the lowest fail is noise and
ignored, so the answer errs low.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Trial:
    """One fixed-rate step: the rate and what it showed."""

    rate: float
    p99_ms: float
    clean: bool

    def passes(self, limit_ms: float) -> bool:
        return self.clean and self.p99_ms < limit_ms


def bracket(trials: list[Trial], limit_ms: float) -> tuple[float | None, float | None]:
    """(highest pass below the lowest fail, lowest fail); None where there is none."""
    failed = [t.rate for t in trials if not t.passes(limit_ms)]
    high = min(failed, default=None)
    passed = [t.rate for t in trials if t.passes(limit_ms) and (high is None or t.rate < high)]
    return max(passed, default=None), high


def _round3(value: float) -> float:
    digits = 2 - math.floor(math.log10(abs(value)))
    return round(value, digits)


def next_rate(
    trials: list[Trial],
    limit_ms: float,
    *,
    start: float,
    floor: float = 10.0,
    ceiling: float = 100_000.0,
    resolution: float = 0.1,
) -> float | None:
    """The next rate to try for `limit_ms`, or None when the answer is known (see `capacity`)."""
    low, high = bracket(trials, limit_ms)
    if high is None:
        if low is None:
            return start
        return None if low >= ceiling else min(low * 2, ceiling)
    if low is None:
        return None if high <= floor else max(high / 2, floor)
    if high <= low * (1 + resolution):
        return None
    middle = _round3(math.sqrt(low * high))
    if not low < middle < high:
        middle = math.sqrt(low * high)
    return middle


def capacity(trials: list[Trial], limit_ms: float) -> float:
    """The highest rate that passed below the lowest fail; 0.0 if even the floor failed."""
    low, _ = bracket(trials, limit_ms)
    return low or 0.0
