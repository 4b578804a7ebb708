"""CloudWatch embedded metric format (EMF): the worker's metrics as JSON lines on stdout.

On ECS the awslogs driver sends stdout to CloudWatch Logs, which turns each EMF line into
metric data points: no sidecar, no agent, no scraper. Each worker writes one set of lines per
interval (BOTSCORE_EMF_INTERVAL_SECONDS) and a last one at shutdown; CloudWatch adds the
workers' and tasks' points up (Sum) or takes their maximum (Maximum) per minute.

The numbers are read from the same prometheus_client registry that /metrics is rendered from
(`registry.collect()`, this worker's samples): a counter's EMF value is its increase since the
last set, so the sum of every worker's lines over a window equals the increase of the counter
/metrics shows over that window. Histograms (kept by ops/metrics.py as per-bucket `_tally`
counters; a plain prometheus_client Histogram is read too) become EMF `Values`/`Counts` (one value per bucket,
its midpoint; the last bucket's lower bound for the open-ended one), from which CloudWatch
computes percentiles itself (p50, p99 ...), as it does for the ALB's TargetResponseTime. An alarm's
threshold is a bucket bound (0.2 s for the p99), so each bucket's value lies wholly on one side of it:
the alarm fires exactly when the true percentile passes the threshold, however coarse the buckets.

Written by hand, not with aws-embedded-metrics (3.5.0 on PyPI): its `put_metric` takes one
value per observation (up to 100 per line) and has no Values/Counts, its `flush` is a
coroutine that first probes the environment (an HTTP call to the EC2 metadata service unless
configured), and a set of lines a minute from already-counted samples is a few dicts.

Dimensions are few, since each combination is a custom metric billed monthly: `Service` on
everything (the ECS service's name, so that two deployments in one account stay apart),
`Route` for the latency distribution, `Route` and `Status` for the request counts. The model
version, host and worker are properties of each line (searchable in Logs Insights, no cost),
not dimensions: a new model would otherwise start new metrics and break the alarms.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from prometheus_client.registry import Collector

from botscore.ops.buckets import FSYNC_BUCKETS, LATENCY_BUCKETS, P_BOT_BUCKETS, X1_BUCKETS, X2_BUCKETS

# From /metrics families to EMF metric names. A counter family is named without `_total`.
REQUESTS = "botscore_requests"
LATENCY = "botscore_request_duration_seconds"
SCORES = "botscore_p_bot"
FEATURE_X1, FEATURE_X2 = "botscore_feature_x1", "botscore_feature_x2"
# Drift of each feature and of the score from the serving model's training baseline (model/baseline.py),
# per interval: the population stability index of the interval's histogram.
DRIFT = {"x1": "DriftX1", "x2": "DriftX2", "p_bot": "DriftScore"}
FSYNC = "botscore_audit_fsync_seconds"
AUDIT_COUNTERS = {
    "botscore_audit_records_written": "RecordsWritten",
    "botscore_audit_records_shipped": "RecordsShipped",
    "botscore_audit_records_dropped": "RecordsDropped",
    "botscore_audit_records_refused": "Refused",
    "botscore_audit_torn_lines": "TornLines",
    "botscore_audit_upload_failures": "UploadFailures",
    "botscore_audit_objects_shipped": "ObjectsShipped",
    "botscore_audit_adoptions": "Adoptions",
}
# Counters with labels, summed over them: the model registry's refused pointers (both roles), its
# reads that S3 did not answer, the scored instances the shadow model puts on the other side of
# the threshold, and the canaries a worker's guardrails rolled back.
MODEL_COUNTERS = {
    "botscore_model_refusals": "ModelRefusals",
    "botscore_model_registry_unreachable": "RegistryUnreachable",
    "botscore_shadow_disagreements": "ShadowDisagreements",
    "botscore_canary_rollbacks": "CanaryRollbacks",
}
SPOOL_BYTES = "botscore_audit_spool_bytes"
OLDEST_AGE = "botscore_audit_oldest_unshipped_age_seconds"
_TALLY = "_tally"  # ops/metrics.py keeps a histogram as per-bucket counters `<name>_tally{le}`
_TALLY_SUM = "_tally_sum"


@dataclass
class _Histogram:
    """One histogram's increase since the last set: count per bucket (by its upper bound) and sum."""

    bounds: tuple[float, ...]  # the histogram's finite upper bounds, as /metrics declares them
    buckets: dict[float, float] = field(default_factory=lambda: defaultdict(float))
    total: float = 0.0
    cumulative: dict[float, float] = field(default_factory=dict)  # a plain Histogram's `_bucket{le}` samples

    def settle(self) -> None:
        """Per-bucket counts from cumulative `_bucket` samples, when the registry held a plain Histogram."""
        below = 0.0
        for bound in sorted(self.cumulative):
            self.buckets[bound] += self.cumulative[bound] - below
            below = self.cumulative[bound]
        self.cumulative.clear()

    def counts(self) -> list[float]:
        """The count in each bucket, in the order of `bounds`, the open-ended one last."""
        return [self.buckets.get(bound, 0.0) for bound in (*self.bounds, math.inf)]

    def _lower(self, bound: float) -> float:
        return max((b for b in self.bounds if b < bound), default=0.0)

    def emf(self, scale: float) -> dict[str, Any] | None:
        """EMF's Values/Counts form (values times `scale`, e.g. seconds to ms); None when empty."""
        bounds = sorted(b for b, n in self.buckets.items() if n > 0)
        if not bounds:
            return None
        values, counts = [], []
        for bound in bounds:
            lower = self._lower(bound)
            value = lower if math.isinf(bound) else (lower + bound) / 2
            values.append(round(value * scale, 6))
            counts.append(_number(self.buckets[bound]))
        low = self._lower(bounds[0])
        high = bounds[-1] if not math.isinf(bounds[-1]) else values[-1] / scale
        return {
            "Values": values,
            "Counts": counts,
            "Min": round(low * scale, 6),
            "Max": round(high * scale, 6),
            "Count": _number(sum(counts)),
            "Sum": round(self.total * scale, 6),
        }


def _number(value: float) -> float | int:
    """A count as JSON shows it best: 3, not 3.0 (prometheus_client keeps every value a float)."""
    return int(value) if value == int(value) else value


@dataclass
class Snapshot:
    """What one worker's registry holds at one moment, in the shapes EMF needs."""

    requests: dict[tuple[str, str], float] = field(default_factory=dict)  # (route, status) -> count
    latency: dict[str, _Histogram] = field(default_factory=lambda: defaultdict(lambda: _Histogram(LATENCY_BUCKETS)))
    scores: _Histogram = field(default_factory=lambda: _Histogram(P_BOT_BUCKETS))
    x1: _Histogram = field(default_factory=lambda: _Histogram(X1_BUCKETS))
    x2: _Histogram = field(default_factory=lambda: _Histogram(X2_BUCKETS))
    fsync: _Histogram = field(default_factory=lambda: _Histogram(FSYNC_BUCKETS))
    audit: dict[str, float] = field(default_factory=dict)  # EMF name -> count
    gauges: dict[str, float] = field(default_factory=dict)

    @classmethod
    def collect(cls, registry: Collector) -> Snapshot:
        snapshot = cls()
        snapshot.audit.update(dict.fromkeys(MODEL_COUNTERS.values(), 0.0))  # written while still 0: alarms see data
        for family in registry.collect():
            for sample in family.samples:
                snapshot._add(family.name, sample.name, sample.labels, sample.value)
        for histogram in [*snapshot.latency.values(), snapshot.scores, snapshot.x1, snapshot.x2, snapshot.fsync]:
            histogram.settle()
        return snapshot

    def _add(self, family: str, name: str, labels: dict[str, str], value: float) -> None:
        if family == REQUESTS and name.endswith("_total"):
            self.requests[(labels["route"], labels["status"])] = value
        elif family in AUDIT_COUNTERS and name.endswith("_total"):
            self.audit[AUDIT_COUNTERS[family]] = value
        elif family in MODEL_COUNTERS and name.endswith("_total"):
            self.audit[MODEL_COUNTERS[family]] = self.audit.get(MODEL_COUNTERS[family], 0.0) + value
        elif family in (SPOOL_BYTES, OLDEST_AGE):
            self.gauges[family] = value
        elif family in (LATENCY, SCORES, FSYNC):  # a plain prometheus_client Histogram, should metrics.py keep one
            histogram = self._histogram(family, labels)
            if histogram is not None and name.endswith("_bucket"):
                histogram.cumulative[float(labels["le"])] = value
            elif histogram is not None and name.endswith("_sum"):
                histogram.total = value
        else:
            histogram = self._histogram(family.removesuffix(_TALLY_SUM).removesuffix(_TALLY), labels)
            if histogram is None:
                return
            if family.endswith(_TALLY_SUM):
                histogram.total += value
            elif family.endswith(_TALLY) and name.endswith("_total"):
                histogram.buckets[float(labels["le"])] += value

    def _histogram(self, base: str, labels: dict[str, str]) -> _Histogram | None:
        if base == LATENCY:
            return self.latency[labels["route"]]
        found = {SCORES: self.scores, FSYNC: self.fsync, FEATURE_X1: self.x1, FEATURE_X2: self.x2}
        return found.get(base)

    def since(self, before: Snapshot) -> Snapshot:
        """The increase of every counter and histogram since `before`; gauges as they are now."""
        delta = Snapshot(gauges=dict(self.gauges))
        delta.requests = _minus(self.requests, before.requests)
        delta.audit = _minus(self.audit, before.audit)
        for route, histogram in self.latency.items():
            delta.latency[route] = _histogram_minus(histogram, before.latency[route])
        delta.scores = _histogram_minus(self.scores, before.scores)
        delta.x1 = _histogram_minus(self.x1, before.x1)
        delta.x2 = _histogram_minus(self.x2, before.x2)
        delta.fsync = _histogram_minus(self.fsync, before.fsync)
        return delta


# The probes' routes (botscore.http.operations: LIVENESS_PATH, READINESS_PATH and the inference
# protocol's health routes), named here because ops/ imports nothing of http/.
_PROBES = frozenset(("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"))


def _probe(route: str) -> bool:
    """A load balancer's or orchestrator's question (liveness, readiness: /healthz, /readyz, /v2/health/live,
    /v2/health/ready, /v2/models/NAME/ready), not a client's call: its 503 says "replace me" or "not
    ready", and no client was refused or failed."""
    return route in _PROBES or route.endswith("/ready")


def _minus(now: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
    return {key: value - before.get(key, 0.0) for key, value in now.items()}


def _histogram_minus(now: _Histogram, before: _Histogram) -> _Histogram:
    delta = _Histogram(now.bounds, total=now.total - before.total)
    for bound, count in now.buckets.items():
        delta.buckets[bound] = count - before.buckets.get(bound, 0.0)
    return delta


class EmfWriter:
    """Writes a worker's EMF lines every `interval` seconds (call `tick` often) and at `flush`."""

    def __init__(
        self,
        registry: Collector,
        *,
        namespace: str,
        service: str,
        interval: float,
        spool_max_bytes: int,
        properties: Callable[[], dict[str, Any]] = dict,
        drift: Callable[[str, tuple[float, ...], list[float]], float | None] = lambda name, bounds, counts: None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.namespace = namespace
        self.service = service
        self.interval = interval
        self.spool_max_bytes = spool_max_bytes
        self.properties = properties  # added to every line: model version, host, worker
        self.drift = drift  # (x1 | x2 | p_bot, bucket bounds, count per bucket) -> PSI against the serving model's
        self.stream = stream
        self.clock = clock
        self._last = Snapshot.collect(registry)
        self._last_at = clock()

    def tick(self) -> None:
        """Write a set of lines once `interval` has passed since the last one."""
        if self.clock() - self._last_at >= self.interval:
            self.flush()

    def flush(self) -> None:
        """Write the lines for everything counted since the last set."""
        now = self.clock()
        current = Snapshot.collect(self.registry)
        lines = self.lines(current.since(self._last), now)
        self._last, self._last_at = current, now
        stream = self.stream or sys.stdout  # looked up late: tests and uvicorn may swap sys.stdout
        stream.write("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))
        stream.flush()

    def lines(self, delta: Snapshot, now: float) -> list[dict[str, Any]]:
        """The EMF documents for one interval: totals, requests by route and status, latency by route."""
        common = {"Service": self.service, **self.properties()}
        timestamp = int(now * 1000)
        # Answers to clients only: a probe's 503 (/healthz local_fault, /readyz not ready) is neither a
        # client's error nor a shed request, and must not move the 5xx and shed alarms.
        statuses = [(status, n) for (route, status), n in delta.requests.items() if not _probe(route)]
        status_503 = sum(n for status, n in statuses if status == "503")
        totals: dict[str, tuple[Any, str]] = {
            "Requests": (_number(sum(n for _, n in statuses)), "Count"),
            "Errors5xx": (_number(sum(n for status, n in statuses if status.startswith("5"))), "Count"),
            "Scores": (_number(sum(delta.scores.buckets.values())), "Count"),
            # A 503 is either shed (too many requests in flight) or refused (its record could not be kept).
            "Shed": (_number(max(0.0, status_503 - delta.audit.get("Refused", 0.0))), "Count"),
        }
        totals.update({name: (_number(value), "Count") for name, value in sorted(delta.audit.items())})
        spool = delta.gauges.get(SPOOL_BYTES, 0.0)
        totals["SpoolBytes"] = (spool, "Bytes")
        totals["SpoolFill"] = (round(100 * spool / self.spool_max_bytes, 3), "Percent")
        totals["OldestUnshippedAge"] = (round(delta.gauges.get(OLDEST_AGE, 0.0), 3), "Seconds")
        for name, histogram in (("x1", delta.x1), ("x2", delta.x2), ("p_bot", delta.scores)):
            psi = self.drift(name, histogram.bounds, histogram.counts())
            if psi is not None:
                totals[DRIFT[name]] = (round(psi, 4), "None")
        fsync = delta.fsync.emf(1000)
        if fsync is not None:
            totals["FsyncLatency"] = (fsync, "Milliseconds")
        lines = [self._document(timestamp, [["Service"]], common, totals)]
        for (route, status), count in sorted(delta.requests.items()):
            if count > 0:
                labels = {**common, "Route": route, "Status": status}
                requests = {"Requests": (_number(count), "Count")}
                lines.append(self._document(timestamp, [["Service", "Route", "Status"]], labels, requests))
        for route, histogram in sorted(delta.latency.items()):
            latency = histogram.emf(1000)
            if latency is not None:
                labels = {**common, "Route": route}
                lines.append(
                    self._document(timestamp, [["Service", "Route"]], labels, {"Latency": (latency, "Milliseconds")})
                )
        return lines

    def _document(
        self, timestamp: int, dimensions: list[list[str]], fields: dict[str, Any], metrics: dict[str, tuple[Any, str]]
    ) -> dict[str, Any]:
        directive = {
            "Namespace": self.namespace,
            "Dimensions": dimensions,
            "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
        }
        return {
            "_aws": {"Timestamp": timestamp, "CloudWatchMetrics": [directive]},
            **fields,
            **{name: value for name, (value, _) in metrics.items()},
        }


def worker_properties(model_version: Callable[[], str], host: str | None) -> Callable[[], dict[str, Any]]:
    """The properties of every line: the serving model's version (read at each set), host and worker pid."""
    pid = os.getpid()

    def properties() -> dict[str, Any]:
        return {"ModelVersion": model_version(), "Host": host or os.uname().nodename, "Worker": pid}

    return properties
