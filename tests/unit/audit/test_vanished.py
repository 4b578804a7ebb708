"""An active segment deleted from outside under load: answers given once the worker noticed are kept,
and shipping goes on."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest

from botscore.audit.spool import SpoolDirectory
from botscore.audit.sync import SyncMode
from botscore.audit.uploaders import LocalUploader
from botscore.dataplane.handler import Handler
from botscore.http.app import create_app
from botscore.model import artifact
from botscore.model.scorer import ModelSlot, Scorer
from botscore.ops.metrics import Metrics
from botscore.settings import SHIPPED_MODEL
from tests.support.audit import audit_log
from tests.support.records import shipped_records
from tests.support.servers import wait_for

SCORE = {"x1": 0.1, "x2": 0.2}


@pytest.mark.parametrize("sync", ["always", "none"])
def test_an_active_segment_deleted_under_load_is_replaced_and_every_later_answer_is_shipped(
    tmp_path: Path, sync: SyncMode
) -> None:
    metrics = Metrics()
    audit = audit_log(
        SpoolDirectory(tmp_path / "audit", host="h"),
        LocalUploader(tmp_path / "audit" / "shipped"),
        sync=sync,
        tick=0.05,
        shutdown_seconds=10,
    )
    metrics.audit_counters = audit.counters
    audit.start()
    app = create_app(
        Handler(audit, metrics), ModelSlot(Scorer(artifact.load(SHIPPED_MODEL))), metrics, max_body_bytes=1024
    )
    active = tmp_path / "audit" / "workers" / audit.spool.worker / "active"
    moments: dict[str, float] = {}

    def delete() -> None:
        wait_for(lambda: any(path.stat().st_size for path in active.iterdir()), 10, "a first record")
        time.sleep(0.2)
        # The segments with records (the spare opened ahead is empty, and left alone).
        deleted = [path for path in active.iterdir() if path.stat().st_size]
        for path in deleted:
            path.unlink()
        moments["deleted"] = time.monotonic()
        moments["segments"] = len(deleted)
        # A vanished segment is counted when its seal finds it gone: after the writer moved on.
        wait_for(lambda: audit.writer.segments_vanished == len(deleted), 10, "the segment replaced")
        moments["replaced"] = time.monotonic()

    async def load() -> list[tuple[str, float, int]]:
        answers: list[tuple[str, float, int]] = []
        stop = time.monotonic() + 1.5
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://botscore") as client:

            async def client_loop(n: int) -> None:
                i = 0
                while time.monotonic() < stop:
                    i += 1
                    sent = time.monotonic()
                    response = await client.post("/bot-score", json=SCORE, headers={"x-request-id": f"r-{n}-{i}"})
                    answers.append((f"r-{n}-{i}", sent, response.status_code))
                    await asyncio.sleep(0.002)

            await asyncio.gather(*(client_loop(n) for n in range(4)))
        return answers

    deleter = threading.Thread(target=delete)
    deleter.start()
    try:
        answers = asyncio.run(load())
        deleter.join(10)
    finally:
        audit.close()
    shipped = {str(row["id"]) for row in shipped_records(tmp_path / "audit")}
    later = [rid for rid, sent, status in answers if status == 200 and sent > moments["replaced"]]
    assert len(later) >= 50
    assert set(later) <= shipped
    if sync == "always":  # no answer is released from a segment that was gone when its fsync returned
        answered_after_deletion = {rid for rid, sent, status in answers if status == 200 and sent > moments["deleted"]}
        assert answered_after_deletion <= shipped
    assert audit.writer.segments_vanished == moments["segments"] == 1
