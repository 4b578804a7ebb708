"""GET /metrics: Prometheus text, botscore_* names, summed over workers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from botscore.http.auth import key_id
from botscore.ops.buckets import P_BOT_BUCKETS
from botscore.ops.metrics import Metrics


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_histograms_counted_in_bulk_expose_what_observe_would() -> None:
    values = [0.0, 0.05, 0.051, 0.5, 0.95, 0.99, 1.0, 0.3333]
    direct = CollectorRegistry()
    observed = Histogram("botscore_p_bot", "Scores returned.", buckets=P_BOT_BUCKETS, registry=direct)
    metrics = Metrics()
    for value in values:
        observed.observe(value)
        metrics.note_score((1.0, 1.0, value))
    metrics.flush()
    metrics.note_score((1.0, 1.0, 0.42))  # counted after the flush: the exposition flushes again
    observed.observe(0.42)
    expected = _samples(generate_latest(direct).decode())
    exposed = _samples(metrics.exposition().decode())
    p_bot = {key: value for key, value in exposed.items() if key[0].startswith("botscore_p_bot")}
    assert p_bot == {key: value for key, value in expected.items() if not key[0].endswith("_created")}


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
    assert (
        abs(
            samples[("botscore_p_bot_sum", ())]
            - sum(scores)
            - sum(
                client.post("/bot-score/batch", json={"instances": [{"x1": 1, "x2": 1}, {"x1": 2, "x2": 2}]}).json()[
                    "p_bot"
                ]
            )
        )
        < 1e-9
    )
    assert samples[("botscore_feature_x1_count", ())] == 12
    assert samples[("botscore_feature_x2_bucket", (("le", "0.2"),))] == 10
    assert samples[("botscore_audit_records_written_total", ())] == 13  # rows: 10 scores, 1 error, 2 batch items
    for name in ("shipped", "dropped", "refused"):
        assert (f"botscore_audit_records_{name}_total", ()) in samples
    for name in (
        "botscore_audit_torn_lines_total",
        "botscore_audit_upload_failures_total",
        "botscore_audit_spool_bytes",
        "botscore_audit_oldest_unshipped_age_seconds",
    ):
        assert (name, ()) in samples


def test_requests_are_counted_per_key_id_and_never_per_key(make_service) -> None:
    with TestClient(make_service(api_keys="key-one-1234,key-two-5678").app) as client:
        for key, times in (("key-one-1234", 3), ("key-two-5678", 1), ("wrong-key-000", 2)):
            for _ in range(times):
                client.post("/bot-score", json={"x1": 0.1, "x2": 0.2}, headers={"authorization": f"Bearer {key}"})
        client.post("/bot-score", json={"x1": "no"}, headers={"authorization": "Bearer key-two-5678"})
        text = client.get("/metrics").text
    per_key = {k[1]: v for k, v in _samples(text).items() if k[0] == "botscore_api_key_requests_total"}
    assert per_key == {
        (("key_id", key_id("key-one-1234")), ("status", "200")): 3,
        (("key_id", key_id("key-two-5678")), ("status", "200")): 1,
        (("key_id", key_id("key-two-5678")), ("status", "422")): 1,
    }  # the unknown key is in botscore_requests_total{status="401"} only
    assert "key-one" not in text and "wrong-key" not in text


def test_shadow_differences_and_disagreements_at_the_threshold_are_counted() -> None:
    metrics = Metrics(shadow_threshold=0.7)
    metrics.serving = lambda: ("lr-a", "lr-b", None)
    for production, shadow in [(0.69, 0.71), (0.8, 0.75), (0.2, 0.9), (0.71, 0.69), (0.1, 0.1)]:
        metrics.note_shadowed((1.0, 1.0, production, shadow))
    exposed = _samples(metrics.exposition().decode())
    assert exposed["botscore_shadow_disagreements_total", ()] == 3
    assert exposed["botscore_shadow_p_bot_difference_count", ()] == 5
    assert exposed["botscore_shadow_p_bot_difference_bucket", (("le", "0.0"),)] == 3  # -0.02, -0.05, 0
    # Each is a score too: counted with the features and the scores, once.
    assert exposed["botscore_p_bot_count", ()] == exposed["botscore_feature_x1_count", ()] == 5
    assert exposed["botscore_p_bot_bucket", (("le", "0.7"),)] == 3  # 0.69, 0.2, 0.1
    assert exposed["botscore_model_serving", (("role", "production"), ("version", "lr-a"))] == 1
    assert exposed["botscore_model_serving", (("role", "shadow"), ("version", "lr-b"))] == 1
    metrics.serving = lambda: ("lr-b", None, None)  # promoted, shadow cleared
    exposed = _samples(metrics.exposition().decode())
    assert exposed["botscore_model_serving", (("role", "production"), ("version", "lr-a"))] == 0
    assert exposed["botscore_model_serving", (("role", "production"), ("version", "lr-b"))] == 1
    assert exposed["botscore_model_serving", (("role", "shadow"), ("version", "lr-b"))] == 0


def test_latencies_of_several_routes_counted_in_bulk_land_in_their_own_route_and_bucket() -> None:
    metrics = Metrics()
    for route, seconds in [("/bot-score", 0.001), ("/bot-score/batch", 0.02), ("/bot-score", 0.0005), ("/x", 3.0)]:
        metrics.note_request((route, 200, seconds, None))
    exposed = _samples(metrics.exposition().decode())
    bucket = "botscore_request_duration_seconds_bucket"
    assert exposed[bucket, (("le", "0.0005"), ("route", "/bot-score"))] == 1  # `le` is inclusive
    assert exposed[bucket, (("le", "0.001"), ("route", "/bot-score"))] == 2
    assert exposed[bucket, (("le", "0.01"), ("route", "/bot-score/batch"))] == 0
    assert exposed[bucket, (("le", "0.025"), ("route", "/bot-score/batch"))] == 1
    assert exposed[bucket, (("le", "2.5"), ("route", "/x"))] == 0
    assert exposed[bucket, (("le", "+Inf"), ("route", "/x"))] == 1
    assert exposed["botscore_request_duration_seconds_count", (("route", "/bot-score"),)] == 2
