"""A size's capacity is the median of its runs, and the step shown for it comes from the run that found it."""

from __future__ import annotations

from typing import Any

from bench.capacity import LIMITS_MS, Result, Step


def _step(rate: float, p99_ms: float) -> Step:
    load: dict[str, Any] = {"failed_share": 0.0, "statuses": {"200": int(rate)}, "ok_p99_ms": p99_ms}
    return Step(rate=rate, load=load, vcpu_used=rate / 1000, throttled_share=0.0, peak_mib=1.0, rss_mib=1.0)


def test_the_capacity_is_the_median_of_three_runs_and_its_step_is_that_runs() -> None:
    tight, loose = LIMITS_MS[0], LIMITS_MS[-1]
    result = Result(0.5, 1024, 1)
    for knee in (400.0, 600.0, 500.0):  # the rate at which each run's p99 crossed the tight limit
        p99s = {rate: tight / 2 if rate <= knee else (tight + loose) / 2 for rate in (400, 500, 600)}
        result.runs.append([_step(rate, p99) for rate, p99 in p99s.items()])
    assert result.capacities(tight) == [400, 600, 500]
    assert result.capacity(tight) == 500
    at = result.at(tight)
    assert at is result.runs[2][1]
    assert result.size().fast == 500
    assert result.size().slow == 600


def test_an_even_number_of_runs_takes_the_lower_middle_one() -> None:
    result = Result(0.5, 1024, 1)
    for knee in (400.0, 600.0):
        result.runs.append([_step(rate, 1.0 if rate <= knee else 1000.0) for rate in (400, 600)])
    assert result.capacity(LIMITS_MS[0]) == 400
