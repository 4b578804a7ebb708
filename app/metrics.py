"""Prometheus metrics, `botscore_*`, correct across worker processes.

prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by `botscore serve`)
sums workers through mmap files, but each observation there costs 1-3 µs under a lock, and
a scored request makes nine of them. So the request path only bumps plain Python counters
(a list append), and `flush()` (every second, and before each scrape) buckets them and moves
the totals into the prometheus_client metrics in one go.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import Counter as _Counts
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
P_BOT_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20))
X1_BUCKETS = tuple(round(-1.0 + 0.25 * i, 2) for i in range(21))  # log10 seconds: 0.1 s .. 10^4 s
X2_BUCKETS = tuple(round(0.2 * i, 1) for i in range(16))  # log10(1 + attempts): 0 .. ~1000 attempts


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


class Tally:
    """Per-bucket counts and the sum of one histogram since the last flush."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # Prometheus buckets are `le`: inclusive
        self.total += value

    def flush_into(self, histogram: Histogram) -> None:
        # prometheus_client has no bulk observe; its per-bucket values are what observe() bumps
        # (pinned version, and tests/test_metrics.py compares with observe()).
        for i, count in enumerate(self.counts):
            if count:
                histogram._buckets[i].inc(count)
                self.counts[i] = 0
        if self.total:
            histogram._sum.inc(self.total)
            self.total = 0.0


class Metrics:
    """The service's metrics; `audit` supplies the audit log's counters at each flush."""

    def __init__(self, audit_counters: Callable[[], dict[str, float]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._audit_counters = audit_counters
        r = self.registry
        self.requests = Counter("botscore_requests", "HTTP requests by route and status.", ["route", "status"], registry=r)
        self.latency = Histogram(
            "botscore_request_duration_seconds", "Time from request to answer, by route.", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.p_bot = Histogram("botscore_p_bot", "Scores returned.", buckets=P_BOT_BUCKETS, registry=r)
        self.x1 = Histogram("botscore_feature_x1", "Feature x1 of scored requests (drift).", buckets=X1_BUCKETS, registry=r)
        self.x2 = Histogram("botscore_feature_x2", "Feature x2 of scored requests (drift).", buckets=X2_BUCKETS, registry=r)
        self._audit_totals = {
            name: Counter(f"botscore_audit_{name}", help_text, registry=r)
            for name, help_text in {
                "records_written": "Audit records appended to the spool.",
                "records_shipped": "Audit records stored in S3 (or the local folder).",
                "records_dropped": "Audit records lost under BOTSCORE_AUDIT_WHEN_FULL=drop.",
                "records_refused": "Requests refused (503) because they could not be recorded.",
                "torn_lines": "Torn lines dropped from segments left by a crashed process.",
                "upload_failures": "Failed segment uploads (each is retried).",
                "objects_shipped": "Segment objects stored.",
            }.items()
        }
        self._audit_flushed: dict[str, float] = dict.fromkeys(self._audit_totals, 0.0)
        self.spool_bytes = Gauge(
            "botscore_audit_spool_bytes", "Bytes in the audit spool, all workers.", multiprocess_mode="livemax", registry=r
        )
        self.oldest_age = Gauge(
            "botscore_audit_oldest_unshipped_age_seconds", "Age of the oldest record not yet shipped (0: none).",
            multiprocess_mode="livemax", registry=r,
        )
        self._pending_requests: list[tuple[str, int, float]] = []
        self._pending_scores: list[tuple[float, float, float]] = []
        # The bound appends themselves, for the hot path: one C call per observation.
        self.note_request = self._pending_requests.append
        self.note_score = self._pending_scores.append
        self._latency: dict[str, Tally] = {}
        self._p_bot = Tally(P_BOT_BUCKETS)
        self._x1 = Tally(X1_BUCKETS)
        self._x2 = Tally(X2_BUCKETS)

    # -- request path: one list append each ------------------------------------------------

    def request(self, route: str, status: int, seconds: float) -> None:
        self.note_request((route, status, seconds))

    def scored(self, x1: float, x2: float, p_bot: float) -> None:
        self.note_score((x1, x2, p_bot))

    # -- flush and exposition ---------------------------------------------------------------------

    def flush(self) -> None:
        """Move what was counted since the last flush into prometheus_client (event-loop thread)."""
        pending = self._pending_requests[:]  # copy and clear, not swap: note_* stay bound to these lists
        self._pending_requests.clear()
        counts: _Counts[tuple[str, int]] = _Counts()
        for route, status, seconds in pending:
            counts[route, status] += 1
            tally = self._latency.get(route)
            if tally is None:
                tally = self._latency[route] = Tally(LATENCY_BUCKETS)
            tally.observe(seconds)
        for (route, status), count in counts.items():
            self.requests.labels(route, str(status)).inc(count)
        scores = self._pending_scores[:]
        self._pending_scores.clear()
        for x1, x2, p_bot in scores:
            self._x1.observe(x1)
            self._x2.observe(x2)
            self._p_bot.observe(p_bot)
        for route, tally in self._latency.items():
            tally.flush_into(self.latency.labels(route))
        self._p_bot.flush_into(self.p_bot)
        self._x1.flush_into(self.x1)
        self._x2.flush_into(self.x2)
        if self._audit_counters is not None:
            current = self._audit_counters()
            for name, counter in self._audit_totals.items():
                delta = current[name] - self._audit_flushed[name]
                if delta > 0:
                    counter.inc(delta)
                    self._audit_flushed[name] = current[name]
            self.spool_bytes.set(current["spool_bytes"])
            self.oldest_age.set(current["oldest_unshipped_age_seconds"])

    def exposition(self) -> bytes:
        """The Prometheus text format: every worker's metrics in multiprocess mode, else this process's."""
        self.flush()
        if multiprocess_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def mark_process_dead(pid: int) -> None:
    """Drop a finished worker's live gauges (multiprocess mode only)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


def audit_counters(audit: Any) -> Callable[[], dict[str, float]]:
    """The AuditLog's counters in the shape `Metrics.flush` reads."""
    import time

    def read() -> dict[str, float]:
        stats = audit.shipper.stats
        oldest = audit.spool.oldest_unshipped()
        return {
            "records_written": audit.spool.records_written,
            "records_shipped": stats.records_shipped,
            "records_dropped": audit.counters.records_dropped,
            "records_refused": audit.counters.records_refused,
            "torn_lines": stats.torn_lines,
            "upload_failures": stats.upload_failures,
            "objects_shipped": stats.objects_shipped,
            "spool_bytes": audit.usage_bytes,
            "oldest_unshipped_age_seconds": 0.0 if oldest is None else max(0.0, time.time() - oldest),
        }

    return read
