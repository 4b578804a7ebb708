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
