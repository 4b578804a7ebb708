"""The audit log against a real S3 server (SeaweedFS): every answered request lands exactly once.

Each scenario counts record ids found in S3 against the responses the clients received.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.load import Load
from tests.support.s3 import KEY, assert_exactly_once, s3_ids, wait_in_s3
from tests.support.servers import Service, Weed

pytestmark = pytest.mark.slow


def s3_service(tmp_path: Path, weed: Weed, bucket: str, **settings: Any) -> Service:
    settings.setdefault("audit_segment_max_age_seconds", 1)
    settings.setdefault("audit_retry_max_seconds", 1)
    return Service(tmp_path, audit_bucket=bucket, **{**weed.aws_env(), **settings})


def test_steady_load_every_answered_request_is_in_s3_exactly_once(tmp_path: Path, weed: Weed, bucket: str) -> None:
    service = s3_service(tmp_path, weed, bucket).start()
    try:
        result = Load(service.url, threads=4, max_requests=3000).start()
        result.wait_for(3000)
        answered = result.stop()
        assert answered.failures == []
        assert set(answered.answered.values()) == {200}
        found = wait_in_s3(weed, bucket, answered.ids())
        assert_exactly_once(found, answered.ids())
        assert set(found) == answered.ids()
    finally:
        service.stop()


def test_sigkill_under_load_then_restart_loses_nothing(tmp_path: Path, weed: Weed, bucket: str) -> None:
    service = s3_service(tmp_path, weed, bucket, audit_segment_max_age_seconds=2).start()
    load = Load(service.url, threads=4).start()
    load.wait_for(1500)
    service.stop(signal.SIGKILL)
    result = load.stop()
    answered = result.ids(200)
    assert len(answered) >= 1500
    restarted = s3_service(tmp_path, weed, bucket).start()
    try:
        found = wait_in_s3(weed, bucket, answered)
        assert_exactly_once(found, answered)
    finally:
        restarted.stop()
    assert '"message": "adopted segments of a worker that died"' in restarted.log.read_text()


def test_sigkill_in_the_middle_of_commit_windows_loses_no_answered_record(
    tmp_path: Path, weed: Weed, bucket: str
) -> None:
    # A 300 ms window: at any moment most of the 8 clients wait in one, so the kill lands inside one
    # with answers pending; those get no answer, and every answer given is in S3.
    settings = {"audit_sync": "always", "audit_commit_window_ms": 300, "audit_segment_max_age_seconds": 1}
    service = s3_service(tmp_path, weed, bucket, **settings).start()
    load = Load(service.url, threads=8).start()
    load.wait_for(80)
    service.stop(signal.SIGKILL)
    result = load.stop()
    answered = result.ids(200)
    assert len(answered) >= 80
    assert result.failures, "no request was waiting in a window when the task was killed"
    restarted = s3_service(tmp_path, weed, bucket, **settings).start()
    try:
        found = wait_in_s3(weed, bucket, answered)
        assert_exactly_once(found, answered)
    finally:
        restarted.stop()


def test_frozen_then_stopped_s3_fails_no_client_request_and_everything_arrives_later(tmp_path: Path) -> None:
    weed = Weed(tmp_path / "own-s3").start()
    try:
        bucket = "audit-frozen"
        weed.create_bucket(bucket)
        service = s3_service(tmp_path, weed, bucket).start()
        load = Load(service.url, threads=4).start()
        load.wait_for(500)
        assert weed.process is not None
        weed.process.send_signal(signal.SIGSTOP)  # frozen: connections hang
        frozen_at = len(load.result.answered)
        load.wait_for(frozen_at + 1500)
        weed.stop()  # down: connections refused
        down_at = len(load.result.answered)
        load.wait_for(down_at + 1500)
        result = load.stop()
        assert result.failures == []
        assert set(result.answered.values()) == {200}
        assert httpx.get(service.url + "/readyz").status_code == 200  # S3 trouble is not our readiness
        weed = Weed(tmp_path / "own-s3", ports=weed.ports).start()  # back, same address and data
        try:
            found = wait_in_s3(weed, bucket, result.ids())
            assert_exactly_once(found, result.ids())
        finally:
            service.stop()
        assert '"message": "upload failed; will retry"' in service.log.read_text()
    finally:
        weed.stop()


def test_sigterm_under_load_ships_everything_within_the_deadline(tmp_path: Path, weed: Weed, bucket: str) -> None:
    service = s3_service(tmp_path, weed, bucket, audit_segment_max_age_seconds=60, audit_shutdown_seconds=20).start()
    load = Load(service.url, threads=4).start()
    load.wait_for(2000)
    assert s3_ids(weed, bucket) == Counter()  # nothing sealed yet: 60 s segments
    started = time.monotonic()
    assert service.process is not None
    service.process.send_signal(signal.SIGTERM)
    service.process.wait(40)
    took = time.monotonic() - started
    result = load.stop()
    answered = result.ids(200)
    assert took < 20 + 5 + 2  # in-flight grace + shipping deadline, under ECS's 30 s
    assert_exactly_once(s3_ids(weed, bucket), answered)  # no restart: all shipped before exit
    service.stop()


def test_torn_last_line_of_a_leftover_is_dropped_and_counted_not_the_segment(
    tmp_path: Path, weed: Weed, bucket: str
) -> None:
    audit = tmp_path / "audit"
    dead = audit / "workers" / "999999.deadbeef"
    (dead / "active").mkdir(parents=True)
    (dead / "sealed").mkdir()
    (dead / "lock").write_bytes(b"")
    good = [json.dumps({"id": f"left-{i}", "status": 200}) for i in range(3)]
    name = "dt=2026-11-27+hour=01+oldhost-999999.deadbeef-000001.jsonl"
    (dead / "sealed" / name).write_text("\n".join(good) + "\n")
    (dead / "active" / name.replace("000001", "000002")).write_text(
        json.dumps({"id": "left-3", "status": 200}) + '\n{"id": "left-4", "sta'
    )
    service = s3_service(tmp_path, weed, bucket).start()
    try:
        found = wait_in_s3(weed, bucket, {"left-0", "left-1", "left-2", "left-3"}, timeout=30)
    finally:
        service.stop()
    assert found == Counter({"left-0": 1, "left-1": 1, "left-2": 1, "left-3": 1})
    log = [json.loads(line) for line in service.log.read_text().splitlines() if line.startswith("{")]
    torn = [entry for entry in log if entry["message"] == "dropped torn lines from a leftover segment"]
    assert [entry["lines"] for entry in torn] == [1]
    assert not dead.exists()  # claimed once, by rename


def test_s3_refusing_is_loud_keeps_data_and_ships_after_a_fix(tmp_path: Path, weed: Weed, bucket: str) -> None:
    refused = s3_service(tmp_path, weed, bucket, AWS_SECRET_ACCESS_KEY="wrong", audit_shutdown_seconds=1).start()
    load = Load(refused.url, threads=2, max_requests=300).start()
    load.wait_for(300)
    result = load.stop()
    assert set(result.answered.values()) == {200}
    time.sleep(2)
    refused.stop()
    failures = [
        json.loads(line) for line in refused.log.read_text().splitlines() if '"upload failed; will retry"' in line
    ]
    assert failures and "SignatureDoesNotMatch" in failures[0]["reason"]
    assert s3_ids(weed, bucket) == Counter()
    fixed = s3_service(tmp_path, weed, bucket).start()
    try:
        assert_exactly_once(wait_in_s3(weed, bucket, result.ids()), result.ids())
    finally:
        fixed.stop()


def test_two_workers_each_write_their_own_segments(tmp_path: Path, weed: Weed, bucket: str) -> None:
    service = s3_service(tmp_path, weed, bucket, workers=2)
    service.argv += ["--workers", "2"]
    service.start()
    try:
        load = Load(service.url, threads=6, max_requests=3000, keepalive=False).start()
        load.wait_for(3000)
        result = load.stop()
        assert set(result.answered.values()) == {200}
        found = wait_in_s3(weed, bucket, result.ids())
        assert_exactly_once(found, result.ids())
        workers = {KEY.match(key).group("worker") for key, _ in weed.objects(bucket)}
        assert len(workers) == 2
    finally:
        service.stop()
