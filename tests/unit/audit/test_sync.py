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
from typing import Any

import httpx
import pytest

from botscore.audit.log import AuditLog
from botscore.audit.segment import SegmentWriter
from botscore.audit.spool import SpoolDirectory
from botscore.audit.sync import Syncer, SyncMode
from botscore.audit.uploaders import LocalUploader
from botscore.dataplane.handler import Handler
from botscore.http.app import BotscoreApp, create_app
from botscore.model import artifact
from botscore.model.scorer import ModelSlot, Scorer
from botscore.ops.metrics import Metrics
from botscore.ops.schedule import Schedule
from botscore.settings import SHIPPED_MODEL
from tests.support.audit import audit_log
from tests.support.records import spooled_records

SCORE = {"x1": 0.1, "x2": 0.2}


def _app(
    tmp_path: Path, sync: SyncMode, fsync: Callable[[int], None], segment_max_bytes: int = 1 << 20
) -> tuple[BotscoreApp, AuditLog]:
    metrics = Metrics()
    audit = audit_log(
        SpoolDirectory(tmp_path / "audit", host="h"),
        LocalUploader(tmp_path / "shipped"),
        segment_max_bytes=segment_max_bytes,
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


@pytest.mark.parametrize("window", [0.0, 0.03])
def test_always_sends_each_answer_only_after_an_fsync_that_covers_its_record(tmp_path: Path, window: float) -> None:
    fsync = SlowFsync(tmp_path / "audit")
    app, audit = _app(tmp_path, "always", fsync)
    audit.syncer.window = window
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


def _fsync_job(audit: AuditLog, seconds: float) -> Schedule:
    """The service's fsync job (service.py): `catch_up` every `seconds` on a schedule, started."""
    schedule = Schedule(0.25)
    schedule.every(seconds, "fsync the audit spool", audit.syncer.catch_up)
    schedule.start()
    return schedule


def test_interval_syncs_what_was_appended_within_the_interval(tmp_path: Path) -> None:
    fsync = SlowFsync(tmp_path / "audit", delay=0)

    async def scenario() -> list[tuple[str, float, int]]:
        app, audit = _app(tmp_path, "interval", fsync)
        schedule = _fsync_job(audit, audit.sync_interval)
        try:
            answers = await _post_all(app, 5)
            await asyncio.sleep(0.3)
        finally:
            await schedule.stop()
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
        retry = _fsync_job(audit, 0.05)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as client:
            fsync.fail_with = errno.EIO
            assert (await client.post("/bot-score", json=SCORE)).status_code == 503
            unready = (await client.get("/readyz")).status_code
            fsync.fail_with = None
            await asyncio.sleep(0.3)  # no request comes: the load balancer sent none to an unready task
            ready = (await client.get("/readyz")).status_code
        await retry.stop()
        return unready, ready

    try:
        assert asyncio.run(scenario()) == (503, 200)
    finally:
        audit.close()


class GatedFsync:
    """os.fsync once the test opens its gate; notes which records were in the spool when each started."""

    def __init__(self, audit_dir: Path) -> None:
        self.audit_dir = audit_dir
        self.calls: list[tuple[set[str], threading.Event]] = []

    def __call__(self, fd: int) -> None:
        gate = threading.Event()
        self.calls.append(({str(r["id"]) for r in spooled_records(self.audit_dir)}, gate))
        assert gate.wait(10)
        os.fsync(fd)


def _gated(tmp_path: Path, **options: Any) -> tuple[SegmentWriter, GatedFsync, Syncer]:
    """A writer on a spool of its own and a Syncer whose fsyncs wait for the test's gates."""
    spool = SpoolDirectory(tmp_path / "audit", host="h")
    spool.open()
    writer = SegmentWriter(spool, max_bytes=1 << 20, max_age=3600)
    fsync = GatedFsync(tmp_path / "audit")
    return writer, fsync, Syncer(writer, fsync=fsync, **options)


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 5 s")


def test_a_record_appended_while_an_fsync_runs_waits_for_an_fsync_that_started_after_it(tmp_path: Path) -> None:
    spool = SpoolDirectory(tmp_path / "audit", host="h")
    spool.open()
    writer = SegmentWriter(spool, max_bytes=1 << 20, max_age=3600, durable_seal=True)
    fsync = GatedFsync(tmp_path / "audit")
    syncer = Syncer(writer, fsync=fsync)

    async def scenario() -> None:
        writer.append(b'{"id":"first"}\n')
        first = asyncio.create_task(syncer.commit())
        await _until(lambda: len(fsync.calls) == 1)
        writer.append(b'{"id":"second"}\n')  # while the first fsync runs: it does not cover this record
        fsync.calls[0][1].set()
        assert await first is True
        second = asyncio.create_task(syncer.commit())
        await _until(lambda: len(fsync.calls) == 2)
        assert fsync.calls[1][0] == {"first", "second"}
        await asyncio.sleep(0.3)
        assert not second.done()  # the first fsync's return released nothing it had not covered
        fsync.calls[1][1].set()
        assert await second is True

    try:
        asyncio.run(scenario())
    finally:
        syncer.close()


def test_requests_waiting_while_every_fsync_thread_is_busy_share_the_next_fsync(tmp_path: Path) -> None:
    writer, fsync, syncer = _gated(tmp_path, threads=2)

    async def scenario() -> None:
        commits = []
        for i in range(2):  # two fsyncs run, one record each
            writer.append(b'{"id":"busy-%d"}\n' % i)
            commits.append(asyncio.create_task(syncer.commit()))
            await _until(lambda n=i + 1: len(fsync.calls) == n)
        for i in range(10):  # no thread is free: all ten join the next fsync
            writer.append(b'{"id":"waiting-%d"}\n' % i)
            commits.append(asyncio.create_task(syncer.commit()))
        await asyncio.sleep(0.1)
        assert len(fsync.calls) == 2
        fsync.calls[0][1].set()
        await _until(lambda: len(fsync.calls) == 3)
        assert {f"waiting-{i}" for i in range(10)} <= fsync.calls[2][0]
        for _, gate in fsync.calls:
            gate.set()
        assert await asyncio.gather(*commits) == [True] * 12
        assert len(fsync.calls) == 3

    try:
        asyncio.run(scenario())
    finally:
        syncer.close()


def test_with_fsync_slowed_to_1_s_health_answers_at_once_readiness_turns_503_and_no_answer_beats_its_fsync(
    tmp_path: Path,
) -> None:
    fsync = SlowFsync(tmp_path / "audit", delay=1.0)
    # Small segments: the seal (an fsync of the segment and of sealed/) is due every few requests.
    app, audit = _app(tmp_path, "always", fsync, segment_max_bytes=1024)

    async def scenario() -> tuple[list[float], list[httpx.Response], list[tuple[str, float, int]]]:
        latencies: list[float] = []
        readiness: list[httpx.Response] = []
        answers: list[tuple[str, float, int]] = []
        stop = time.monotonic() + 4
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://botscore", timeout=30) as client:

            async def score(n: int) -> None:
                i = 0
                while time.monotonic() < stop:
                    i += 1
                    response = await client.post("/bot-score", json=SCORE, headers={"x-request-id": f"r-{n}-{i}"})
                    answers.append((response.headers["x-request-id"], time.monotonic(), response.status_code))

            async def probe() -> None:
                # Each probe is due 50 ms after the last answer: its latency counts from then, so a loop
                # held by anything (a seal's fsync) delays the probe that was due meanwhile.
                while time.monotonic() < stop:
                    for path in ("/healthz", "/readyz"):
                        due = time.monotonic() + 0.05
                        await asyncio.sleep(0.05)
                        response = await client.get(path)
                        latencies.append(time.monotonic() - due)
                        if path == "/readyz":
                            readiness.append(response)

            await asyncio.gather(probe(), *(score(n) for n in range(16)))
        return latencies, readiness, answers

    try:
        latencies, readiness, answers = asyncio.run(scenario())
    finally:
        audit.close()
    latencies.sort()
    # Blocking the loop on one seal's fsync would hold a probe for 1 s; the margins are for a busy machine.
    assert latencies[int(len(latencies) * 0.9)] < 0.1, latencies[-10:]
    assert latencies[-1] < 0.5, latencies[-10:]
    unready = [r for r in readiness if r.status_code == 503]
    assert unready and "slow audit spool storage" in unready[0].json()["error"]["message"]
    assert [status for _, _, status in answers].count(200) >= 16
    for request_id, answered_at, status in answers:
        if status == 200:
            assert any(request_id in covered and done <= answered_at for done, covered in fsync.done), request_id


def test_the_commit_window_bounds_rounds_per_second_and_each_answer_waits_at_most_one_window(tmp_path: Path) -> None:
    fsync = SlowFsync(tmp_path / "audit", delay=0.002)  # about an EFS commit
    window = 0.05
    _, audit = _app(tmp_path, "always", fsync)
    audit.syncer.window = window
    waits: list[float] = []

    async def one(i: int) -> None:
        await asyncio.sleep(i * 0.004)  # 250 requests a second, spread over 0.4 s: each would start a round
        audit.writer.append(b'{"id":"r-%d"}\n' % i)
        started = time.monotonic()
        assert await audit.syncer.commit()
        waits.append(time.monotonic() - started)

    async def scenario() -> float:
        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(100)))
        return time.monotonic() - started

    try:
        seconds = asyncio.run(scenario())
    finally:
        audit.close()
    assert len(waits) == 100
    # The first round starts at once, then at most one every window.
    assert audit.syncer.rounds <= 1 + seconds / window + 1e-9
    assert len(fsync.done) == audit.syncer.rounds + 1  # one segment: one fsync a round, and the seal at close
    assert max(waits) < window + 0.002 + 0.05  # the window, the fsync, and the scheduler's slack


def test_without_a_window_requests_apart_in_time_each_start_a_round(tmp_path: Path) -> None:
    fsync = SlowFsync(tmp_path / "audit", delay=0.002)
    _, audit = _app(tmp_path, "always", fsync)

    async def scenario() -> None:
        for i in range(10):
            audit.writer.append(b'{"id":"r-%d"}\n' % i)
            assert await audit.syncer.commit()
            await asyncio.sleep(0.005)

    try:
        asyncio.run(scenario())
    finally:
        audit.close()
    assert audit.syncer.rounds == 10


def test_no_more_fsyncs_run_at_once_than_the_syncer_has_threads(tmp_path: Path) -> None:
    writer, fsync, syncer = _gated(tmp_path, threads=2)

    async def scenario() -> None:
        commits = []
        for i in range(6):  # each apart from the last by more than OVERLAP_AFTER: each would start a round
            writer.append(b'{"id":"r-%d"}\n' % i)
            commits.append(asyncio.create_task(syncer.commit()))
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        assert (syncer.rounds, len(fsync.calls)) == (2, 2)
        for _ in range(3):
            for _, gate in fsync.calls:
                gate.set()
            await asyncio.sleep(0.05)
        assert await asyncio.gather(*commits) == [True] * 6
        assert syncer.rounds == 3

    try:
        asyncio.run(scenario())
    finally:
        syncer.close()


def test_an_fsync_that_hangs_is_a_503_within_the_answer_timer_counted_from_the_first_request_not_cancelled_by_its_start(
    tmp_path: Path,
) -> None:
    writer, fsync, syncer = _gated(tmp_path, answer_within=0.3)

    async def scenario() -> tuple[bool, float]:
        writer.append(b'{"id":"hung"}\n')
        started = time.monotonic()
        answered = await asyncio.wait_for(syncer.commit(), 3)
        return answered, time.monotonic() - started

    try:
        answered, seconds = asyncio.run(scenario())
    finally:
        for _, gate in fsync.calls:
            gate.set()
        syncer.close()
    assert answered is False
    assert 0.3 <= seconds < 0.6
    assert syncer.failure == "an fsync of the audit spool has not returned within 0.3 s"
