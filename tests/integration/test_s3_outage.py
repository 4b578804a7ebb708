"""An S3 outage at a steady rate: the spool bound sized by bench/sizing.py rides it out, then everything ships.

The production figure comes from the same arithmetic: `spool_bound(rate, seconds)` gives
BOTSCORE_AUDIT_SPOOL_MAX_BYTES so that `seconds` of records at `rate` stay under the share of the
bound at which readiness turns false (80 %), never reaching the bound where requests are refused.
Terraform's default is spool_bound(the sized load, 4 h) (docs/capacity.md); here the same function
sizes a bound for a 30 s outage at 100 req/s (S3 stopped 20 s, then restarted: it is back within
the 30 s), so that the test takes well under a minute.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bench.sizing import RECORD_BYTES, spool_bound
from tests.support.s3 import assert_exactly_once, wait_in_s3
from tests.support.servers import Service, Weed

pytestmark = pytest.mark.slow

RATE = 100  # requests a second, steady
OUTAGE_SECONDS = 30  # S3 unavailable: stopped for STOPPED_SECONDS, then as long as it takes to start again
STOPPED_SECONDS = 20
SEGMENT_AGE, RETRY_CAP = 1, 1  # the backlog unshipped when S3 goes away
KEY = "outage-test-key-0123456789"
BODY = {"x1": 0.12345678901234567, "x2": 1234.5678901234567}  # full-precision features: the longest record


class _Paced(threading.Thread):
    """POSTs /bot-score at RATE a second (each due at start + i / RATE) until stopped; keeps every answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.answers, self.failures = url, Counter[int](), list[str]()
        self.ids: set[str] = set()
        self._halt = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        with httpx.Client(base_url=self.url, timeout=5, headers={"authorization": f"Bearer {KEY}"}) as client:
            for i in range(10**9):
                if self._halt.is_set():
                    return
                time.sleep(max(0.0, started + i / RATE - time.monotonic()))
                try:
                    response = client.post("/bot-score", json=BODY)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                self.answers[response.status_code] += 1
                if response.status_code == 200:
                    self.ids.add(response.headers["x-request-id"])

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def test_s3_down_for_30_s_at_100_req_s_refuses_nothing_readiness_stays_200_then_everything_ships(
    tmp_path: Path,
) -> None:
    bound = spool_bound(RATE, OUTAGE_SECONDS, backlog_seconds=SEGMENT_AGE + RETRY_CAP, granularity=1)
    assert bound == 1_280_000  # 100 req/s x (30 + 2) s x 320 bytes / 0.8
    weed = Weed(tmp_path / "own-s3").start()
    bucket = "audit-outage"
    weed.client().create_bucket(Bucket=bucket)
    service = Service(
        tmp_path,
        audit_bucket=bucket,
        audit_spool_max_bytes=bound,
        audit_segment_max_age_seconds=SEGMENT_AGE,
        audit_retry_max_seconds=RETRY_CAP,
        api_keys=KEY,
        **weed.aws_env(),
    ).start()
    load = _Paced(service.url)
    readiness: Counter[int] = Counter()
    reasons: list[str] = []
    spooled = 0
    try:
        load.start()
        time.sleep(3)  # steady state: segments sealed and shipped every second
        stopped_at = time.monotonic()
        weed.stop()  # S3 down: connections refused
        restarted = Weed(tmp_path / "own-s3", ports=weed.ports)  # back later, same address and data
        restart = threading.Thread(target=restarted.start, daemon=True)
        with httpx.Client(base_url=service.url, timeout=5) as probe:

            def watch(done: Callable[[], bool]) -> None:
                """Readiness and the spool's size every 0.25 s until `done`."""
                nonlocal spooled
                while not done():
                    ready = probe.get("/readyz")
                    readiness[ready.status_code] += 1
                    if ready.status_code != 200:
                        reasons.append(ready.text)
                    spooled = max(spooled, _spool_bytes(tmp_path / "audit"))
                    time.sleep(0.25)

            watch(lambda: time.monotonic() >= stopped_at + STOPPED_SECONDS)
            restart.start()
            watch(lambda: not restart.is_alive())
        weed = restarted
        assert time.monotonic() - stopped_at <= OUTAGE_SECONDS  # the outage the bound was sized for
        time.sleep(2)
        load.stop()
        assert load.failures == []
        assert set(load.answers) == {200}, load.answers  # not one 503: nothing refused
        assert set(readiness) == {200}, (readiness, reasons)
        assert sum(load.answers.values()) >= RATE * STOPPED_SECONDS
        assert spooled < 0.8 * bound, (spooled, bound)  # the outage stayed under readiness's share
        found = wait_in_s3(weed, bucket, load.ids)
        assert_exactly_once(found, load.ids)
        # The arithmetic's record size holds for the longest record this route writes (a key id included).
        lines = [line for _, body in weed.objects(bucket) for line in gzip.decompress(body).splitlines()]
        longest = max(len(line) + 1 for line in lines)
        assert longest <= RECORD_BYTES, longest
        rows = [json.loads(line) for _, body in weed.objects(bucket) for line in gzip.decompress(body).splitlines()]
        assert all(row.get("key_id") for row in rows)
    finally:
        try:
            load.stop()
        finally:
            try:
                service.stop()
            finally:
                weed.stop()  # by pid, whatever failed before


def _spool_bytes(audit_dir: Path) -> int:
    return sum(p.stat().st_size for p in (audit_dir / "workers").rglob("*.jsonl"))
