"""BOTSCORE_AUDIT_SYNC: `always` answers only after an fsync covering the record, and requests share fsyncs;
`interval` syncs on a timer; a failing fsync turns answers and readiness to 503 until it works again."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from botscore.audit.log import AuditLog
from botscore.audit.spool import SpoolDirectory
from botscore.audit.sync import SyncMode
from botscore.audit.uploaders import LocalUploader
from botscore.dataplane.handler import Handler
from botscore.http.app import BotscoreApp, create_app
from botscore.model import artifact
from botscore.model.scorer import ModelSlot, Scorer
from botscore.ops.metrics import Metrics
from botscore.settings import SHIPPED_MODEL
from tests.support.records import spooled_records

SCORE = {"x1": 0.1, "x2": 0.2}


def _app(tmp_path: Path, sync: SyncMode, fsync: Callable[[int], None]) -> tuple[BotscoreApp, AuditLog]:
    metrics = Metrics()
    audit = AuditLog(
        SpoolDirectory(tmp_path / "audit", host="h"),
        LocalUploader(tmp_path / "shipped"),
        prefix="p/",
        segment_max_bytes=1 << 20,
        segment_max_age=3600,
        spool_max_bytes=1 << 30,
        when_full="reject",
        shutdown_seconds=0,
        sync=sync,
        sync_interval=0.05,
        fsync=fsync,
        on_fsync=metrics.note_fsync,
    )
    metrics.audit_counters = audit.counters
    audit.start()
    model = ModelSlot(Scorer(artifact.load(SHIPPED_MODEL)))
    return create_app(Handler(audit, metrics), model, metrics, max_body_bytes=1024), audit


class SlowFsync:
    """os.fsync after a delay, noting which records were in the spool when it started (what it covers)."""

    def __init__(self, audit_dir: Path, delay: float = 0.05) -> None:
        self.audit_dir = audit_dir
        self.delay = delay
        self.done: list[tuple[float, set[str]]] = []
        self.fail_with: int | None = None
        self.lock = threading.Lock()

    def __call__(self, fd: int) -> None:
        covered = {str(r["id"]) for r in spooled_records(self.audit_dir)}
        time.sleep(self.delay)
        if self.fail_with is not None:
            raise OSError(self.fail_with, os.strerror(self.fail_with))
        os.fsync(fd)
        with self.lock:
            self.done.append((time.monotonic(), covered))


async def _post_all(app: BotscoreApp, count: int) -> list[tuple[str, float, int]]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://botscore") as client:

        async def one(i: int) -> tuple[str, float, int]:
            response = await client.post("/bot-score", json=SCORE, headers={"x-request-id": f"r-{i}"})
            return response.headers["x-request-id"], time.monotonic(), response.status_code

        return await asyncio.gather(*(one(i) for i in range(count)))


def test_always_sends_each_answer_only_after_an_fsync_that_covers_its_record(tmp_path: Path) -> None:
    fsync = SlowFsync(tmp_path / "audit")
    app, audit = _app(tmp_path, "always", fsync)
    try:
        answers = asyncio.run(_post_all(app, 60))
    finally:
        audit.close()
    assert {status for _, _, status in answers} == {200}
    for request_id, answered_at, _ in answers:
        assert any(request_id in covered and done <= answered_at for done, covered in fsync.done), request_id
    assert 1 <= len(fsync.done) <= 60 / 4  # concurrent requests share an fsync (group commit)


def test_none_answers_without_waiting_for_any_fsync(tmp_path: Path) -> None:
    fsync = SlowFsync(tmp_path / "audit")
    app, audit = _app(tmp_path, "none", fsync)
    try:
        answers = asyncio.run(_post_all(app, 10))
    finally:
        audit.close()
    assert {status for _, _, status in answers} == {200}
    assert fsync.done == []


def test_interval_syncs_what_was_appended_within_the_interval(tmp_path: Path) -> None:
    fsync = SlowFsync(tmp_path / "audit", delay=0)

    async def scenario() -> list[tuple[str, float, int]]:
        app, audit = _app(tmp_path, "interval", fsync)
        timer = asyncio.create_task(audit.syncer.every(audit.sync_interval))
        try:
            answers = await _post_all(app, 5)
            await asyncio.sleep(0.3)
        finally:
            timer.cancel()
            audit.close()
        return answers

    answers = asyncio.run(scenario())
    assert {status for _, _, status in answers} == {200}
    assert {request_id for request_id, _, _ in answers} <= set().union(*(covered for _, covered in fsync.done))


def test_a_failing_fsync_answers_503_and_unready_until_it_works_again(tmp_path: Path) -> None:
    fsync = SlowFsync(tmp_path / "audit", delay=0)
    app, audit = _app(tmp_path, "always", fsync)

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as client:
            fsync.fail_with = errno.EIO
            refused = await client.post("/bot-score", json=SCORE)
            unready = await client.get("/readyz")
            fsync.fail_with = None
            answered = await client.post("/bot-score", json=SCORE)
            ready = await client.get("/readyz")
            return refused, unready, answered, ready

    try:
        refused, unready, answered, ready = asyncio.run(scenario())
    finally:
        audit.close()
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "audit_unavailable"
    assert "cannot sync the audit spool: Input/output error" in refused.json()["error"]["message"]
    assert unready.status_code == 503 and "cannot sync" in unready.json()["error"]["message"]
    assert answered.status_code == 200
    assert ready.status_code == 200


@pytest.mark.parametrize("sync", ["interval", "always"])
def test_a_sealed_segment_is_synced_before_it_is_sealed(tmp_path: Path, sync: SyncMode) -> None:
    synced: list[int] = []
    _, audit = _app(tmp_path, sync, synced.append)
    try:
        audit.writer.append(b'{"id":"a"}\n')
        audit.writer.seal()
    finally:
        audit.close()
    assert len(synced) == 1


def test_always_comes_back_after_a_failed_fsync_without_any_request(tmp_path: Path) -> None:
    fsync = SlowFsync(tmp_path / "audit", delay=0)
    app, audit = _app(tmp_path, "always", fsync)

    async def scenario() -> tuple[int, int]:
        retry = asyncio.create_task(audit.syncer.every(0.05))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as client:
            fsync.fail_with = errno.EIO
            assert (await client.post("/bot-score", json=SCORE)).status_code == 503
            unready = (await client.get("/readyz")).status_code
            fsync.fail_with = None
            await asyncio.sleep(0.3)  # no request comes: the load balancer sent none to an unready task
            ready = (await client.get("/readyz")).status_code
        retry.cancel()
        return unready, ready

    try:
        assert asyncio.run(scenario()) == (503, 200)
    finally:
        audit.close()
