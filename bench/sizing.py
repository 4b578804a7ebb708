"""From measured capacities to the Terraform scaling settings: pure functions, no I/O.

The choices, stated once (docs/capacity.md repeats them with the numbers):

- Task size: the most requests per vCPU at p99 under the tight limit (Fargate bills per vCPU and GiB);
  sizes within 10 % of the best count as equal and the largest of them wins, since a larger
  task rides out a burst or a slow neighbour with more spare CPU.
- Scale-out point (`requests_per_target`, per target per MINUTE): HEADROOM of the capacity under the tight
  limit. Target tracking acts on one-minute averages and a new task takes a minute or two to
  serve, so traffic can double before help arrives and still be under that limit; with two tasks,
  one can be lost and the other still holds the load under it.
- `cpu_target_percent`: the CPU the task uses at that scale-out rate, so the CPU policy agrees
  with the request policy for single scores and catches costlier traffic (batches) alone.
- `min_capacity` 2, one task per availability zone, as the default VPC spans two; a lost zone
  leaves one task at no more than its capacity under the tight limit.
- `max_capacity`: a cost bound, not a measurement: kept unless a peak rate is given.
- `max_in_flight` (BOTSCORE_MAX_IN_FLIGHT): what a worker answers in SHED_AFTER_SECONDS at its
  p99 < 200 ms rate; a longer queue is shed with a 503 rather than making every answer wait.
- `audit_spool_max_bytes` (BOTSCORE_AUDIT_SPOOL_MAX_BYTES, the bound of the spool every task
  shares on EFS): OUTAGE_SECONDS of records at the sized load (max_capacity tasks at the
  scale-out rate) stay under the share of it at which readiness turns false, so an S3 outage
  that long refuses nothing; rounded up to a GiB.
- `waf_rate_limit` (requests per source address per WAF_WINDOW_SECONDS): the sized load over the
  window, so that one address (callers behind one NAT) may use the whole fleet, never more.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

HEADROOM = 0.5
EQUAL_WITHIN = 0.10
MIN_CAPACITY = 2
SHED_AFTER_SECONDS = 0.1
OUTAGE_SECONDS = 4 * 3600  # the S3 outage the deployment rides out without refusing (us-east-1, 2017: ~4 h)
# Unshipped when S3 goes away: the active segment (BOTSCORE_AUDIT_SEGMENT_MAX_AGE_SECONDS, 60 s) and
# what waits for the upload that fails (BOTSCORE_AUDIT_RETRY_MAX_SECONDS, 30 s).
BACKLOG_SECONDS = 60 + 30
# Bytes a scored record takes in the spool: full-precision features, a 32-character id, a key id
# and the longest scoring route; tests/integration/test_s3_outage.py checks real ones stay under it.
RECORD_BYTES = 320
WAF_WINDOW_SECONDS = 300
GIB = 2**30


def spool_bound(
    rate_rps: float,
    seconds: float,
    *,
    backlog_seconds: float = BACKLOG_SECONDS,
    record_bytes: int = RECORD_BYTES,
    granularity: int = GIB,
) -> int:
    """The spool bound under which an outage of `seconds` at `rate_rps`, on top of the backlog it starts
    with, keeps readiness (and so never refuses)."""
    from botscore.audit.readiness import READY_FRACTION

    needed = rate_rps * (seconds + backlog_seconds) * record_bytes / READY_FRACTION
    return math.ceil(needed / granularity) * granularity


def rides_out(
    bound: int, rate_rps: float, *, backlog_seconds: float = BACKLOG_SECONDS, record_bytes: int = RECORD_BYTES
) -> float:
    """Seconds of an S3 outage at `rate_rps` before the spool reaches the share of `bound` that turns readiness off."""
    from botscore.audit.readiness import READY_FRACTION

    return bound * READY_FRACTION / (rate_rps * record_bytes) - backlog_seconds


def in_flight_bound(slow_rps: float, workers: int) -> int:
    """BOTSCORE_MAX_IN_FLIGHT for a worker of a task that answers `slow_rps` within a 200 ms p99."""
    return max(1, round(slow_rps / workers * SHED_AFTER_SECONDS))


@dataclass(frozen=True)
class Size:
    """What one (task size, workers) can take, and its CPU curve (rate, vCPU used) from its steps."""

    vcpu: float
    memory_mib: int
    workers: int
    fast: float  # highest rate with p99 under the tight limit (CAPACITY_LIMITS_MS), req/s
    slow: float  # highest rate with p99 < 200 ms
    cpu_curve: tuple[tuple[float, float], ...] = ()

    @property
    def fast_per_vcpu(self) -> float:
        return self.fast / self.vcpu


def choose(sizes: list[Size]) -> Size:
    """The size with the most requests per vCPU under the tight limit; the largest of those within EQUAL_WITHIN."""
    best = max(size.fast_per_vcpu for size in sizes)
    close = [size for size in sizes if size.fast_per_vcpu >= best * (1 - EQUAL_WITHIN) and size.fast > 0]
    return max(close, key=lambda size: (size.vcpu, size.fast_per_vcpu, -size.workers))


def cpu_at(curve: tuple[tuple[float, float], ...], rate: float) -> float:
    """vCPU used at `rate`, linear between the measured steps (through the origin below the lowest)."""
    points = sorted(curve)
    if not points:
        return 0.0
    if rate <= points[0][0]:
        return points[0][1] * rate / points[0][0]
    for (r0, c0), (r1, c1) in itertools.pairwise(points):
        if r0 <= rate <= r1:
            return c0 + (c1 - c0) * (rate - r0) / (r1 - r0) if r1 > r0 else c0
    return points[-1][1]


def suggest(sizes: list[Size], current: dict[str, Any], peak_rps: float | None = None) -> dict[str, Any]:
    """The Terraform variables the measurements argue for, and the figures behind them."""
    size = choose(sizes)
    target_rps = HEADROOM * size.fast
    cpu_percent = 100 * cpu_at(size.cpu_curve, target_rps) / size.vcpu
    max_capacity = int(current.get("max_capacity", 10))
    if peak_rps:
        max_capacity = max(MIN_CAPACITY, math.ceil(peak_rps / target_rps))
    fleet_rps = max_capacity * int(target_rps * 60 // 100 * 100) / 60  # what the scaling settings carry
    bound = spool_bound(fleet_rps, OUTAGE_SECONDS)
    return {
        "task_cpu": int(size.vcpu * 1024),
        "task_memory": size.memory_mib,
        "workers": size.workers,
        "requests_per_target": int(target_rps * 60 // 100 * 100),
        "cpu_target_percent": int(min(90, max(10, 5 * round(cpu_percent / 5)))),
        "min_capacity": MIN_CAPACITY,
        "max_capacity": max_capacity,
        "max_in_flight": in_flight_bound(size.slow, size.workers),
        "audit_spool_max_bytes": bound,
        "waf_rate_limit": math.ceil(fleet_rps * WAF_WINDOW_SECONDS),
        "headroom": HEADROOM,
        "target_rps_per_task": round(target_rps, 1),
        "cpu_percent_at_target": round(cpu_percent, 1),
        "fast_capacity_rps": size.fast,
        "slow_capacity_rps": size.slow,
        "max_capacity_carries_rps": round(max_capacity * target_rps),
        "peak_rps": peak_rps,
        "fleet_rps": round(fleet_rps, 1),
        "outage_seconds": OUTAGE_SECONDS,
        "record_bytes": RECORD_BYTES,
        "backlog_seconds": BACKLOG_SECONDS,
        "spool_rides_out_seconds": round(rides_out(bound, fleet_rps)),
    }
