"""GET /metrics: Prometheus text, botscore_* names, summed over workers."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from app.metrics import P_BOT_BUCKETS, Tally
from tests.servers import Service


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_tally_flush_equals_observe() -> None:
    values = [0.0, 0.05, 0.051, 0.5, 0.95, 0.99, 1.0, 0.3333]
    direct, batched = CollectorRegistry(), CollectorRegistry()
    observed = Histogram("h", "h", buckets=P_BOT_BUCKETS, registry=direct)
    flushed = Histogram("h", "h", buckets=P_BOT_BUCKETS, registry=batched)
    tally = Tally(P_BOT_BUCKETS)
    for value in values:
        observed.observe(value)
        tally.observe(value)
    tally.flush_into(flushed)
    strip = [line for line in generate_latest(direct).decode().splitlines() if "_created" not in line]
    assert strip == [line for line in generate_latest(batched).decode().splitlines() if "_created" not in line]


def test_metrics_count_requests_scores_features_and_audit(client: TestClient) -> None:
    scores = [client.post("/bot-score", json={"x1": 0.1 * i, "x2": 0.2}).json()["p_bot"] for i in range(10)]
    client.post("/bot-score", json={"x1": "no"})
    client.post("/bot-score/batch", json={"instances": [{"x1": 1, "x2": 1}, {"x1": 2, "x2": 2}]})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    assert samples[("botscore_requests_total", (("route", "/bot-score"), ("status", "200")))] == 10
    assert samples[("botscore_requests_total", (("route", "/bot-score"), ("status", "422")))] == 1
    assert samples[("botscore_requests_total", (("route", "/bot-score/batch"), ("status", "200")))] == 1
    assert samples[("botscore_request_duration_seconds_count", (("route", "/bot-score"),))] == 11
    assert samples[("botscore_p_bot_count", ())] == 12
    assert abs(samples[("botscore_p_bot_sum", ())] - sum(scores) - sum(
        client.post("/bot-score/batch", json={"instances": [{"x1": 1, "x2": 1}, {"x1": 2, "x2": 2}]}).json()["p_bot"]
    )) < 1e-9
    assert samples[("botscore_feature_x1_count", ())] == 12
    assert samples[("botscore_feature_x2_bucket", (("le", "0.2"),))] == 10
    assert samples[("botscore_audit_records_written_total", ())] == 12
    for name in ("shipped", "dropped", "refused"):
        assert ("botscore_audit_records_%s_total" % name, ()) in samples
    for name in ("botscore_audit_torn_lines_total", "botscore_audit_upload_failures_total",
                 "botscore_audit_spool_bytes", "botscore_audit_oldest_unshipped_age_seconds"):
        assert (name, ()) in samples


def test_metrics_sum_over_two_workers(tmp_path: Path) -> None:
    service = Service(tmp_path, workers=2)
    service.argv += ["--workers", "2"]
    service.start()
    try:
        def post_fifty(_: int) -> list[int]:  # a new connection each time, so both workers get some
            return [httpx.post(service.url + "/bot-score", json={"x1": 0.1, "x2": 0.2}).status_code for _ in range(50)]

        with ThreadPoolExecutor(4) as pool:
            statuses = [status for batch in pool.map(post_fifty, range(4)) for status in batch]
        assert statuses == [200] * 200
        time.sleep(1.0)  # each worker flushes its counts every 0.25 s
        samples = _samples(httpx.get(service.url + "/metrics").text)
        assert samples[("botscore_requests_total", (("route", "/bot-score"), ("status", "200")))] == 200
        assert samples[("botscore_audit_records_written_total", ())] == 200
    finally:
        service.stop(signal.SIGTERM)
    workers = {path.name.rsplit("-", 2)[1] for path in (service.audit_dir / "shipped").rglob("*.jsonl.gz")}
    assert len(workers) == 2  # both workers answered, and /metrics summed them
