"""The rate search: a doubling ladder to a bracket, then bisection to the resolution; errs low on noise."""

from __future__ import annotations

import pytest

from bench.search import Trial, bracket, capacity, next_rate


def _search(knee: float, limit_ms: float = 10.0, start: float = 1000.0) -> tuple[float, list[float]]:
    """Run the search against a server whose p99 crosses the limit at `knee` req/s."""
    trials: list[Trial] = []
    while (rate := next_rate(trials, limit_ms, start=start)) is not None:
        trials.append(Trial(rate, 5.0 if rate <= knee else 50.0, clean=True))
        assert len(trials) < 30
    return capacity(trials, limit_ms), [t.rate for t in trials]


def test_the_ladder_starts_at_start_and_doubles_after_each_pass() -> None:
    assert next_rate([], 10, start=250) == 250
    assert next_rate([Trial(250, 3.0, True)], 10, start=250) == 500
    assert next_rate([Trial(250, 3.0, True), Trial(500, 4.0, True)], 10, start=250) == 1000


def test_the_ladder_halves_below_a_fail_with_no_pass_under_it() -> None:
    assert next_rate([Trial(1000, 30.0, True)], 10, start=1000) == 500
    assert next_rate([Trial(1000, 3.0, False)], 10, start=1000) == 500  # errors fail whatever the p99


def test_a_bracket_is_bisected_at_its_geometric_mean_to_three_figures() -> None:
    trials = [Trial(1000, 3.0, True), Trial(2000, 30.0, True)]
    assert next_rate(trials, 10, start=1000) == 1410


def test_the_search_stops_when_the_bracket_is_within_the_resolution() -> None:
    trials = [Trial(1000, 3.0, True), Trial(1090, 30.0, True)]
    assert next_rate(trials, 10, start=1000, resolution=0.1) is None
    assert capacity(trials, 10) == 1000


def test_the_search_finds_the_knee_within_the_resolution() -> None:
    for knee in (90.0, 229.0, 771.0, 1000.0, 5555.0):
        found, rates = _search(knee)
        assert knee / 1.1 <= found <= knee, (knee, found, rates)


def test_a_pass_above_the_lowest_fail_is_noise_and_ignored() -> None:
    trials = [Trial(500, 3.0, True), Trial(1000, 30.0, True), Trial(1400, 3.0, True)]
    assert bracket(trials, 10) == (500, 1000)


def test_the_trials_of_one_limit_serve_the_next() -> None:
    trials = [Trial(250, 3.0, True), Trial(500, 40.0, True), Trial(1000, 150.0, True), Trial(2000, 900.0, True)]
    assert bracket(trials, 10) == (250, 500)
    assert bracket(trials, 200) == (1000, 2000)


def test_nothing_passes_even_at_the_floor() -> None:
    assert next_rate([Trial(10, 20.0, True)], 10, start=1000, floor=10) is None
    assert capacity([Trial(10, 20.0, True)], 10) == 0.0


@pytest.mark.parametrize("ceiling", [4000.0])
def test_the_ladder_stops_at_the_ceiling(ceiling: float) -> None:
    trials = [Trial(4000, 1.0, True)]
    assert next_rate(trials, 10, start=1000, ceiling=ceiling) is None
    assert capacity(trials, 10) == 4000
