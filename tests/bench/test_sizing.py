"""From capacities to Terraform: the size with the most fast requests per vCPU, scale-out at half of it."""

from __future__ import annotations

import pytest

from bench.sizing import Size, choose, cpu_at, suggest


def test_the_most_requests_per_vcpu_under_10_ms_wins() -> None:
    small = Size(0.25, 512, 1, fast=300, slow=800)
    middle = Size(0.5, 1024, 1, fast=500, slow=1800)
    assert choose([small, middle]) is small


def test_sizes_within_ten_percent_are_equal_and_the_largest_wins() -> None:
    small = Size(0.25, 512, 1, fast=300, slow=800)
    large = Size(1.0, 2048, 2, fast=1100, slow=4000)  # 1,100 per vCPU against 1,200: within 10 %
    assert choose([small, large]) is large


def test_cpu_is_interpolated_between_the_steps_and_scaled_below_the_first() -> None:
    curve = ((200.0, 0.1), (400.0, 0.2), (800.0, 0.25))
    assert cpu_at(curve, 300.0) == pytest.approx(0.15)
    assert cpu_at(curve, 100.0) == pytest.approx(0.05)
    assert cpu_at(curve, 2000.0) == pytest.approx(0.25)
    assert cpu_at((), 100.0) == 0.0


def test_the_suggestion_scales_out_at_half_the_fast_capacity_per_minute() -> None:
    size = Size(0.5, 1024, 1, fast=600, slow=1500, cpu_curve=((300.0, 0.2), (600.0, 0.4)))
    derived = suggest([size], {"max_capacity": 10})
    assert derived["task_cpu"] == 512
    assert derived["task_memory"] == 1024
    assert derived["workers"] == 1
    assert derived["requests_per_target"] == 18000  # 300 req/s x 60 s
    assert derived["cpu_target_percent"] == 40  # 0.2 of 0.5 vCPU
    assert derived["min_capacity"] == 2
    assert derived["max_capacity"] == 10
    assert derived["max_capacity_carries_rps"] == 3000


def test_a_peak_rate_sets_max_capacity() -> None:
    size = Size(0.5, 1024, 1, fast=600, slow=1500, cpu_curve=((600.0, 0.4),))
    assert suggest([size], {"max_capacity": 10}, peak_rps=10_000)["max_capacity"] == 34


def test_the_spool_bound_keeps_an_outage_of_the_stated_length_under_the_readiness_share() -> None:
    from bench.sizing import GIB, rides_out, spool_bound

    # 3,000 req/s x 320 bytes x (4 h + a 90 s backlog) = 13.9 GB; / 0.8 = 17.4 GB; in whole GiB: 17 GiB.
    bound = spool_bound(3000, 4 * 3600)
    assert bound == 17 * GIB
    assert rides_out(bound, 3000) >= 4 * 3600
    assert spool_bound(3000, 4 * 3600, granularity=1) == 17_388_000_000
    assert rides_out(17_388_000_000, 3000) == pytest.approx(4 * 3600)
    assert spool_bound(100, 20, backlog_seconds=0, granularity=1) == 800_000


def test_the_spool_bound_and_the_waf_limit_follow_the_load_the_scaling_settings_carry() -> None:
    size = Size(0.5, 1024, 1, fast=600, slow=1500, cpu_curve=((300.0, 0.2), (600.0, 0.4)))
    derived = suggest([size], {"max_capacity": 10})
    assert derived["fleet_rps"] == 3000  # 10 tasks x 18,000 a minute / 60
    assert derived["waf_rate_limit"] == 900_000  # 3,000 req/s over 300 s, from one address
    assert derived["spool_rides_out_seconds"] >= derived["outage_seconds"] == 4 * 3600
