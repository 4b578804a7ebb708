"""EMF lines: the published format, the increase since the last set, and the same numbers /metrics has."""

from __future__ import annotations

import io

from prometheus_client.parser import text_string_to_metric_families

from botscore.ops.emf import EmfWriter
from botscore.ops.metrics import Metrics
from tests.support import emf

AUDIT = {
    "records_written": 7.0,
    "records_shipped": 5.0,
    "records_dropped": 0.0,
    "records_refused": 1.0,
    "torn_lines": 0.0,
    "upload_failures": 2.0,
    "objects_shipped": 1.0,
    "adoptions": 0.0,
    "spool_bytes": 512.0,
    "oldest_unshipped_age_seconds": 12.5,
}


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _writer(metrics: Metrics, stream: io.StringIO, clock: _Clock) -> EmfWriter:
    return EmfWriter(
        metrics.registry,
        namespace="botscore",
        service="botscore-test",
        interval=60,
        spool_max_bytes=1024,
        properties=lambda: {"ModelVersion": "v1"},
        stream=stream,
        clock=clock,
    )


def _noted(metrics: Metrics) -> None:
    for seconds in (0.0004, 0.003, 0.003, 0.04, 3.0):  # 3 s: past the last bucket
        metrics.note_request(("/bot-score", 200, seconds, None))
        metrics.note_score((0.1, 0.2, 0.5))
    metrics.note_request(("/bot-score", 422, 0.001, None))
    metrics.note_request(("/bot-score", 503, 0.001, None))  # the refused one
    metrics.note_request(("/bot-score", 503, 0.001, None))  # shed
    metrics.note_request(("/healthz", 200, 0.0001, None))
    metrics.note_request(("/healthz", 503, 0.0001, None))  # local_fault: replace this task, no client failed
    metrics.note_request(("/readyz", 503, 0.0001, None))  # not ready: no client refused
    metrics.note_fsync(0.004)
    metrics.flush()


def test_one_set_follows_the_spec_and_counts_what_metrics_counts() -> None:
    metrics, stream, clock = Metrics(lambda: AUDIT), io.StringIO(), _Clock()
    writer = _writer(metrics, stream, clock)
    _noted(metrics)
    clock.now += 60
    writer.tick()
    found = emf.documents(stream.getvalue())
    for document in found:
        emf.check(document)
    assert emf.requests_by_route_and_status(found) == {
        ("/bot-score", "200"): 5,
        ("/bot-score", "422"): 1,
        ("/bot-score", "503"): 2,
        ("/healthz", "200"): 1,
        ("/healthz", "503"): 1,
        ("/readyz", "503"): 1,
    }
    exposed = {
        (s.name, s.labels.get("route"), s.labels.get("status")): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
    }
    assert exposed[("botscore_requests_total", "/bot-score", "200")] == 5
    assert emf.totals(found, "Requests") == 8  # answers to clients: not the liveness and readiness probes
    assert emf.totals(found, "Errors5xx") == 2  # the probes' 503s are no client's error...
    assert emf.totals(found, "Shed") == 1  # ...nor shed: two 503s to clients, one of them refused by the audit log
    assert emf.totals(found, "Scores") == 5
    assert emf.totals(found, "UploadFailures") == 2
    [totals] = [d for d in found if "SpoolFill" in d]
    assert (totals["SpoolBytes"], totals["SpoolFill"], totals["OldestUnshippedAge"]) == (512, 50.0, 12.5)
    assert totals["_aws"]["Timestamp"] == int(clock.now * 1000)
    assert (totals["Service"], totals["ModelVersion"]) == ("botscore-test", "v1")
    [latency] = [d for d in found if d.get("Route") == "/bot-score" and "Latency" in d]
    assert latency["Latency"]["Count"] == exposed[("botscore_request_duration_seconds_count", "/bot-score", None)]
    # Bucket midpoints in ms (0-0.5, 0.5-1, 2-5, 25-50 ms) and the open bucket's floor (2.5 s and more).
    assert latency["Latency"]["Values"] == [0.25, 0.75, 3.5, 37.5, 2500.0]
    assert latency["Latency"]["Counts"] == [1, 3, 2, 1, 1]
    assert (latency["Latency"]["Min"], latency["Latency"]["Max"]) == (0.0, 2500.0)
    assert latency["Latency"]["Sum"] == round(sum((0.0004, 0.003, 0.003, 0.04, 3.0, 0.001, 0.001, 0.001)) * 1000, 6)


def test_the_next_set_holds_only_what_was_counted_since_and_none_before_the_interval() -> None:
    metrics, stream, clock = Metrics(lambda: AUDIT), io.StringIO(), _Clock()
    writer = _writer(metrics, stream, clock)
    _noted(metrics)
    writer.flush()
    metrics.note_request(("/bot-score", 200, 0.002, None))
    metrics.flush()
    clock.now += 59
    before = stream.getvalue()
    writer.tick()
    assert stream.getvalue() == before  # not due yet
    clock.now += 1
    writer.tick()
    found = emf.documents(stream.getvalue()[len(before) :])
    assert emf.requests_by_route_and_status(found) == {("/bot-score", "200"): 1}
    assert emf.totals(found, "UploadFailures") == 0  # the audit counters did not move


def test_a_plain_prometheus_histogram_gives_the_same_values_and_counts_as_the_bulk_counted_one() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from botscore.ops.buckets import LATENCY_BUCKETS

    seconds = (0.0004, 0.001, 0.001, 0.001, 0.003, 0.003, 0.04, 3.0)
    registry = CollectorRegistry()
    plain = Histogram("botscore_request_duration_seconds", "", ["route"], buckets=LATENCY_BUCKETS, registry=registry)
    metrics, stream, clock = Metrics(), io.StringIO(), _Clock()
    bulk = _writer(metrics, stream, clock)
    plain_stream = io.StringIO()
    plain_writer = EmfWriter(
        registry, namespace="botscore", service="botscore-test", interval=60, spool_max_bytes=1024, stream=plain_stream
    )
    for value in seconds:
        plain.labels("/bot-score").observe(value)
        metrics.note_request(("/bot-score", 200, value, None))
    metrics.flush()
    bulk.flush()
    plain_writer.flush()
    [from_bulk] = [d["Latency"] for d in emf.documents(stream.getvalue()) if "Latency" in d]
    [from_plain] = [d["Latency"] for d in emf.documents(plain_stream.getvalue()) if "Latency" in d]
    assert from_plain == from_bulk
    assert from_plain["Counts"] == [1, 3, 2, 1, 1]


def test_the_probe_routes_emf_leaves_out_are_the_apps_health_routes() -> None:
    """ops/ imports nothing of http/, so emf.py names the probes' routes itself: they must be the app's."""
    from botscore.http.operations import LIVENESS_PATH, OIP_GET_PATHS, READINESS_PATH
    from botscore.ops import emf as emf_module

    probes = {LIVENESS_PATH, READINESS_PATH, *(p for p in OIP_GET_PATHS if "/health/" in p or p.endswith("/ready"))}
    assert all(emf_module._probe(route) for route in probes), probes
    assert not any(emf_module._probe(route) for route in ("/bot-score", "/bot-score/batch", "/metrics", "/v2"))
