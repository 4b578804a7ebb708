"""GET /metrics of `botscore serve --workers 2`: one scrape sums both workers."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import Service


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


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


def test_metrics_of_one_worker_count_what_it_answered_after_the_cli_parsed_every_command(tmp_path: Path) -> None:
    """`botscore serve` with its default one worker: the app runs in the process whose CLI built every
    subcommand's parser, so nothing that parser imports may import prometheus_client before `serve`
    chooses its multiprocess folder (a canary's guardrail defaults once did: /metrics then held no counter)."""
    service = Service(tmp_path).start()
    try:
        statuses = [httpx.post(service.url + "/bot-score", json={"x1": 0.1, "x2": 0.2}).status_code for _ in range(5)]
        assert statuses == [200] * 5
        time.sleep(1.0)
        samples = _samples(httpx.get(service.url + "/metrics").text)
        assert samples[("botscore_requests_total", (("route", "/bot-score"), ("status", "200")))] == 5
        assert samples[("botscore_audit_records_written_total", ())] == 5
    finally:
        service.stop()
