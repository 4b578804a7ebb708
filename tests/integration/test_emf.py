"""`botscore serve` with BOTSCORE_EMF on: its stdout holds EMF lines that count what was sent, as /metrics does."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import emf
from tests.support.servers import Service

SENT = [  # (path, body, how many): scores, a batch, a malformed and a mistyped score
    ("/bot-score", {"x1": 0.1, "x2": 0.2}, 40),
    ("/bot-score/batch", {"instances": [{"x1": 0.1, "x2": 0.2}] * 3}, 5),
    ("/bot-score", {"x1": "no", "x2": 0.2}, 6),
    ("/bot-score", {"x2": 0.2}, 4),
]


def _metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url + "/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_two_workers_emf_lines_parse_as_emf_and_count_what_was_sent_and_what_metrics_says(tmp_path: Path) -> None:
    service = Service(tmp_path, workers=2, emf="true", emf_interval_seconds=1, emf_service="botscore-test").start()
    sent: Counter[tuple[str, str]] = Counter()
    try:
        with httpx.Client(base_url=service.url) as client:
            for path, body, times in SENT:
                for _ in range(times):
                    sent[(path, str(client.post(path, json=body).status_code))] += 1
        assert sent == {("/bot-score", "200"): 40, ("/bot-score/batch", "200"): 5, ("/bot-score", "422"): 10}
        exposed: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for _ in range(20):  # each worker moves its counts into the shared files every 0.25 s
            exposed = _metrics(service.url)
            counted = sum(v for (name, labels), v in exposed.items() if name == "botscore_requests_total"
                          and dict(labels)["route"].startswith("/bot-score"))  # fmt: skip
            if counted == sum(sent.values()):
                break
            time.sleep(0.25)
    finally:
        service.stop()  # SIGTERM: each worker writes its last set
    found = emf.documents(service.log.read_text())
    assert found, "no EMF line on stdout"
    for document in found:
        emf.check(document)
    assert {d["Worker"] for d in found} == {d["Worker"] for d in found if "SpoolFill" in d}  # each worker wrote
    assert len({d["Worker"] for d in found}) == 2
    by_status = emf.requests_by_route_and_status(found)
    scoring = {key: n for key, n in by_status.items() if key[0].startswith("/bot-score")}
    assert scoring == sent
    from_metrics = {
        (dict(labels)["route"], dict(labels)["status"]): value
        for (name, labels), value in exposed.items()
        if name == "botscore_requests_total" and dict(labels)["route"].startswith("/bot-score")
    }
    assert from_metrics == scoring
    assert emf.totals(found, "Scores") == 40 + 5 * 3 == exposed[("botscore_p_bot_count", ())]
    assert emf.totals(found, "RecordsWritten") == exposed[("botscore_audit_records_written_total", ())]
    latency = emf.totals(found, "Latency", Route="/bot-score")
    assert latency == 50 == exposed[("botscore_request_duration_seconds_count", (("route", "/bot-score"),))]
    assert {d["_aws"]["CloudWatchMetrics"][0]["Namespace"] for d in found} == {"botscore"}
    assert {d["Service"] for d in found} == {"botscore-test"}
