"""Prometheus metrics, `botscore_*`, correct across worker processes.

prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by `botscore serve`)
sums workers through mmap files, but each observation there costs 1-3 µs under a lock, and a
scored request makes nine of them. So the request path only appends to plain lists, and
`flush()` (every 0.25 s, and before each scrape) buckets them and adds each bucket's count to
a counter in one `inc()`. prometheus_client has no bulk `observe()`, so the histograms are kept
as per-bucket counters (`<name>_tally{le}`, and a gauge `<name>_tally_sum`) and turned back into
histograms when exposed: the only hand-written part, in public API terms (`Counter.inc`,
`Gauge.inc`, `MultiProcessCollector`, `Metric.add_sample`).
"""

from __future__ import annotations

import operator
import os
from bisect import bisect_right
from collections import Counter as _Counts
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from itertools import compress
from pathlib import Path
from typing import TypeVar, cast

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, multiprocess
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from botscore.ops.buckets import (
    DIFFERENCE_BUCKETS,
    FSYNC_BUCKETS,
    LATENCY_BUCKETS,
    P_BOT_BUCKETS,
    X1_BUCKETS,
    X2_BUCKETS,
    take,
)

AUDIT_COUNTERS = {
    "records_written": "Audit records appended to the spool.",
    "records_shipped": "Audit records stored in S3 (or the local folder).",
    "records_dropped": "Audit records lost under BOTSCORE_AUDIT_WHEN_FULL=drop.",
    "records_refused": "Requests refused (503) because they could not be recorded.",
    "torn_lines": "Torn lines dropped from segments left by a crashed process.",
    "upload_failures": "Failed segment uploads (each is retried).",
    "objects_shipped": "Segment objects stored.",
    "adoptions": "Segments adopted from workers that died (of this host, or of another sharing the spool).",
}
_T = TypeVar("_T")
_TALLY = "_tally"
_TALLY_SUM = "_tally_sum"


ROLES = ("production", "shadow", "canary")  # botscore_model_serving's roles


def multiprocess_dir() -> str | None:
    """The folder of prometheus_client's multiprocess files, when `botscore serve` set one."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


class _Histogram:
    """A histogram counted in bulk: per-bucket counts since the last flush, then one inc() per bucket."""

    def __init__(
        self,
        name: str,
        documentation: str,
        bounds: tuple[float, ...],
        labels: tuple[str, ...],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = bounds
        self.labels = labels
        self._edges = [*(repr(float(b)) for b in bounds), "+Inf"]
        self._buckets = Counter(name + _TALLY, documentation, [*labels, "le"], registry=registry)
        # A gauge: sums of features can be negative. "sum" adds every worker's, as counters do.
        self._sum = Gauge(name + _TALLY_SUM, documentation, list(labels), multiprocess_mode="sum", registry=registry)
        self._pending: dict[tuple[str, ...], list[float]] = defaultdict(list)

    def observe_all(self, values: Iterable[float], *labels: str) -> None:
        """Observations of one label set, counted at the next flush."""
        self._pending[labels].extend(values)

    def flush(self) -> None:
        for labels, values in self._pending.items():
            if not values:
                continue
            # Sorted, then one bisect per bucket, not one per value: this runs for every request, and
            # list.sort compares floats without Python's generic comparison (~5x cheaper a value).
            values.sort()
            below = 0
            for edge, upto in zip(
                self._edges, [*(bisect_right(values, b) for b in self.bounds), len(values)], strict=True
            ):
                if upto > below:  # `le` is inclusive: values <= the bound
                    self._buckets.labels(*labels, edge).inc(upto - below)
                below = upto
            (self._sum.labels(*labels) if labels else self._sum).inc(sum(values))
            values.clear()

    def family(self, tallies: dict[tuple[str, ...], dict[str, float]], sums: dict[tuple[str, ...], float]) -> Metric:
        """The exposed histogram, from the summed per-bucket counters. Built sample by sample, because
        HistogramMetricFamily leaves out _count and _sum when a bucket bound is negative (as x1's are)."""
        family = Metric(self.name, self.documentation, "histogram")
        for labels in sorted(set(tallies) | set(sums)):
            named = dict(zip(self.labels, labels, strict=True))
            per_bucket = tallies.get(labels, {})
            cumulative = 0.0
            for edge in self._edges:
                cumulative += per_bucket.get(edge, 0.0)
                family.add_sample(self.name + "_bucket", {**named, "le": edge}, cumulative)
            family.add_sample(self.name + "_count", named, cumulative)
            family.add_sample(self.name + "_sum", named, sums.get(labels, 0.0))
        return family


class _Exposed(Collector):
    """Collected families with the tally counters turned back into histograms."""

    def __init__(self, families: Iterable[Metric], histograms: dict[str, _Histogram]) -> None:
        self._families = families
        self._histograms = histograms

    def collect(self) -> Iterator[Metric]:
        tallies: dict[str, dict[tuple[str, ...], dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        sums: dict[str, dict[tuple[str, ...], float]] = defaultdict(dict)
        for family in self._families:
            if family.name.endswith(_TALLY_SUM) and family.name[: -len(_TALLY_SUM)] in self._histograms:
                histogram = self._histograms[family.name[: -len(_TALLY_SUM)]]
                for sample in family.samples:
                    sums[histogram.name][tuple(sample.labels[n] for n in histogram.labels)] = sample.value
            elif family.name.endswith(_TALLY) and family.name[: -len(_TALLY)] in self._histograms:
                histogram = self._histograms[family.name[: -len(_TALLY)]]
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        key = tuple(sample.labels[n] for n in histogram.labels)
                        tallies[histogram.name][key][sample.labels["le"]] = sample.value
            else:
                yield family
        for name, histogram in self._histograms.items():
            yield histogram.family(tallies[name], sums[name])


class Metrics:
    """The service's metrics; `audit_counters` supplies the audit log's counters at each flush."""

    def __init__(
        self, audit_counters: Callable[[], dict[str, float]] | None = None, *, shadow_threshold: float = 0.5
    ) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.audit_counters = audit_counters
        # (production version, shadow version or None, canary version or None) now serving, read at each flush
        self.serving: Callable[[], tuple[str, str | None, str | None]] | None = None
        self.shadow_threshold = shadow_threshold
        self.requests = Counter(
            "botscore_requests", "HTTP requests by route and status.", ["route", "status"], registry=r
        )
        self.requests_by_key = Counter(
            "botscore_api_key_requests",
            "Scoring requests by API key id (first 12 hex digits of the key's SHA-256) and status.",
            ["key_id", "status"],
            registry=r,
        )
        self._latency = _Histogram(
            "botscore_request_duration_seconds",
            "Time from request to answer, by route.",
            LATENCY_BUCKETS,
            ("route",),
            r,
        )
        self._p_bot = _Histogram("botscore_p_bot", "Scores returned.", P_BOT_BUCKETS, (), r)
        self._x1 = _Histogram("botscore_feature_x1", "Feature x1 of scored requests (drift).", X1_BUCKETS, (), r)
        self._x2 = _Histogram("botscore_feature_x2", "Feature x2 of scored requests (drift).", X2_BUCKETS, (), r)
        self._fsync = _Histogram(
            "botscore_audit_fsync_seconds", "Duration of each fsync of the audit spool.", FSYNC_BUCKETS, (), r
        )
        self._difference = _Histogram(
            "botscore_shadow_p_bot_difference",
            "Shadow model's score minus the production model's, per scored instance.",
            DIFFERENCE_BUCKETS,
            (),
            r,
        )
        self._histograms = {
            h.name: h for h in (self._latency, self._p_bot, self._x1, self._x2, self._fsync, self._difference)
        }
        self.disagreements = Counter(
            "botscore_shadow_disagreements",
            "Scored instances the shadow model puts on the other side of BOTSCORE_SHADOW_THRESHOLD "
            "(rate: divide by botscore_shadow_p_bot_difference_count).",
            registry=r,
        )
        self.model_serving = Gauge(
            "botscore_model_serving",
            "1 for the model version each worker (pid) serves in each role (production, shadow, canary).",
            ["role", "version"],
            multiprocess_mode="liveall",
            registry=r,
        )
        self.model_refusals = Counter(
            "botscore_model_refusals",
            "Registry pointers a worker refused (missing version or invalid artifact); it kept its model.",
            ["role"],
            registry=r,
        )
        self.registry_unreachable = Counter(
            "botscore_model_registry_unreachable",
            "Reads of the model registry S3 did not answer or refused, at start-up and at each poll; the worker "
            "kept serving (BOTSCORE_MODEL_PATH if it started during the outage).",
            registry=r,
        )
        self.canary_rollbacks = Counter(
            "botscore_canary_rollbacks",
            "Canaries this worker rolled back: its guardrails found a breach and its write of the plan won.",
            registry=r,
        )
        self._served: dict[str, str | None] = dict.fromkeys(ROLES)
        self._audit_totals = {
            name: Counter(f"botscore_audit_{name}", help_text, registry=r) for name, help_text in AUDIT_COUNTERS.items()
        }
        self._audit_flushed: dict[str, float] = dict.fromkeys(self._audit_totals, 0.0)
        self.spool_bytes = Gauge(
            "botscore_audit_spool_bytes",
            "Bytes in the audit spool, all workers.",
            multiprocess_mode="livemax",
            registry=r,
        )
        self.oldest_age = Gauge(
            "botscore_audit_oldest_unshipped_age_seconds",
            "Age of the oldest record not yet shipped (0: none).",
            multiprocess_mode="livemax",
            registry=r,
        )
        # What the request path counted since the last flush: flat lists of atoms, a fixed number of
        # values per entry. A tuple per entry would be a container, and the cycle collector visits every
        # container that waits for a flush: with ~5,000 waiting (a quarter second of full load) that cost
        # ~1,800 instructions a request.
        self._pending_requests: list[str | int | float | None] = []  # route, status, seconds, key id
        self._pending_scores: list[float] = []  # x1, x2, p_bot
        self._pending_fsyncs: list[float] = []
        self._pending_shadowed: list[float] = []  # x1, x2, p_bot, shadow's p_bot
        # The request path notes through these: each is its list's own `extend`, called with one tuple,
        # so noting runs no Python frame (~300 instructions a call, two or three calls a request).
        self.note_request: Callable[[tuple[str, int, float, str | None]], None] = self._pending_requests.extend
        """An answer: (route, status, latency in seconds, the id of the API key it carried or None)."""
        self.note_score: Callable[[tuple[float, float, float]], None] = self._pending_scores.extend
        """A score and the features it was computed from: (x1, x2, p_bot)."""
        self.note_shadowed: Callable[[tuple[float, float, float, float]], None] = self._pending_shadowed.extend
        """A score the shadow model scored too, instead of `note_score`: (x1, x2, p_bot, shadow's p_bot)."""

    def note_fsync(self, seconds: float) -> None:
        """One fsync of the audit spool (called from the fsync thread: a list append is atomic)."""
        self._pending_fsyncs.append(seconds)

    def note_refused(self, role: str) -> None:
        """A worker refused what a registry pointer names (from the follower's thread)."""
        self.model_refusals.labels(role).inc()

    def note_rollback(self) -> None:
        """A canary rolled back by this worker (from the follower's thread)."""
        self.canary_rollbacks.inc()

    def note_unreachable(self) -> None:
        """A read of the model registry that S3 did not answer (from the follower's thread, or at start-up)."""
        self.registry_unreachable.inc()

    def _flush_models(self) -> None:
        """The serving versions as gauges: 1 now, 0 for the one replaced."""
        if self.serving is None:
            return
        for role, version in zip(ROLES, self.serving(), strict=True):
            if version != self._served[role]:
                if self._served[role] is not None:
                    self.model_serving.labels(role, self._served[role]).set(0)
                if version is not None:
                    self.model_serving.labels(role, version).set(1)
                self._served[role] = version

    def _flush_scores(self) -> None:
        """Features and scores into their histograms, and how far the shadow's scores are from them.
        Column by column (a slice with a step is a column of a flat list, in C): this is per scored request."""
        features = (self._x1, self._x2, self._p_bot)
        scores = take(self._pending_scores)
        for k, histogram in enumerate(features):
            histogram.observe_all(scores[k::3])
        shadowed = take(self._pending_shadowed)
        if not shadowed:
            return
        for k, histogram in enumerate(features):
            histogram.observe_all(shadowed[k::4])
        productions, shadows = shadowed[2::4], shadowed[3::4]
        self._difference.observe_all(list(map(operator.sub, shadows, productions)))  # in C, no frame per score
        threshold = self.shadow_threshold
        # A comprehension, not maps of threshold.__le__: that method-wrapper is called the slow way (~85 ns a
        # pair against ~50 ns here).
        disagreements = len(
            [1 for p, s in zip(productions, shadows, strict=True) if (p >= threshold) is not (s >= threshold)]
        )
        if disagreements:
            self.disagreements.inc(disagreements)

    def flush(self) -> None:
        """Move what was counted since the last flush into prometheus_client (event-loop thread)."""
        requests = take(self._pending_requests)
        if requests:
            routes = cast("list[str]", requests[0::4])
            statuses = cast("list[int]", requests[1::4])
            seconds = cast("list[float]", requests[2::4])
            key_ids = cast("list[str | None]", requests[3::4])
            for (route, status), count in _Counts(zip(routes, statuses, strict=True)).items():
                self.requests.labels(route, str(status)).inc(count)
            for (kid, status), count in _Counts(zip(key_ids, statuses, strict=True)).items():
                if kid:
                    self.requests_by_key.labels(kid, str(status)).inc(count)
            for route in set(routes):  # a few routes: one pass each, in C
                self._latency.observe_all(compress(seconds, map(route.__eq__, routes)), route)
        self._flush_scores()
        self._fsync.observe_all(take(self._pending_fsyncs))
        self._flush_models()
        for histogram in self._histograms.values():
            histogram.flush()
        if self.audit_counters is not None:
            current = self.audit_counters()
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
            collected = CollectorRegistry()
            multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]  # unannotated upstream
            return generate_latest(_Exposed(collected.collect(), self._histograms))
        return generate_latest(_Exposed(self.registry.collect(), self._histograms))


def forget_dead_workers() -> None:
    """Drop the live gauges of workers that died without a shutdown (uvicorn respawns them), so a dead
    worker's last spool size never stays the maximum (multiprocess mode only)."""
    folder = multiprocess_dir()
    if not folder:
        return
    for path in Path(folder).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        if not psutil.pid_exists(pid):
            mark_process_dead(pid)


def mark_process_dead(pid: int) -> None:
    """Drop a finished worker's live gauges (multiprocess mode only)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # unannotated upstream
