"""The shadow cost's figures: the interval for a median, and the loss read from CPU per request."""

from __future__ import annotations

import math
import random

from bench.paired import median_interval
from bench.shadow import Cost


def test_the_median_interval_is_the_order_statistics_the_binomial_allows() -> None:
    values = [float(v) for v in range(1, 17)]  # n = 16: P(Binomial(16, 1/2) <= 3) = 0.0106, <= 4: 0.038
    assert median_interval(values) == (4.0, 13.0)
    assert median_interval(values[::-1]) == (4.0, 13.0)  # order of arrival does not matter
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) == (-math.inf, math.inf)  # 5 values: no 95 % interval


def test_the_median_interval_holds_the_true_median_about_95_times_in_100() -> None:
    rng = random.Random(21)
    trials = 2000
    held = 0
    for _ in range(trials):
        low, high = median_interval([rng.gauss(0.04, 0.02) for _ in range(16)])
        held += low <= 0.04 <= high
    assert 0.94 <= held / trials <= 0.99  # at least 95 % by construction; 97.9 % exactly for n = 16


def test_the_loss_is_the_shadow_s_extra_cpu_read_as_throughput_on_a_saturated_core() -> None:
    cost = Cost(
        throughput={
            "ceiling": [9000.0, 8000.0],
            "without": [7000.0, 6000.0],
            "with": [6650.0, 5700.0],
            "canary": [6700.0, 5500.0],
        },
        cpu_us={"ceiling": [40.0, 45.0], "without": [50.0, 60.0], "with": [52.0, 63.0], "canary": [52.0, 66.15]},
    )
    assert cost.losses() == [1 - 50 / 52, 1 - 60 / 63]
    assert cost.ratios("without") == [0.8, 0.75]
    table = cost.table()
    assert "Throughput lost to shadow scoring: 4.3 % (median of 2 windows" in table
    assert "target at most 5 %: met by the median only." in table  # two windows give no interval
    assert cost.losses("canary") == [1 - 50 / 52, 1 - 60 / 66.15]
    assert "## Canary" in table
    assert "CPU per request 1.025x the shadow's" in table  # the median of 1.000 and 1.050
    assert "target at most 1.05x: met by the median only." in table
