"""An answer is released only while the folder its record was written to is provably this worker's:
checked against the lock's token once per round of fsyncs, never against this host's clock."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

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
from botscore.settings import SHIPPED_MODEL
from tests.support.audit import audit_log
from tests.support.records import spooled_records
from tests.support.servers import wait_for

SCORE = {"x1": 0.1, "x2": 0.2}
ADOPTER = "host-b/1.0badf00d"  # what an adopter writes into the lock first: its fencing token


def _app(tmp_path: Path, sync: SyncMode) -> tuple[BotscoreApp, AuditLog]:
    metrics = Metrics()
    # A lease of 0.4 s: the heartbeat (every 0.1 s) finds the adopter's token within a few beats.
    audit = audit_log(
        SpoolDirectory(tmp_path / "audit", host="host-a"),
        LocalUploader(tmp_path / "shipped"),
        sync=sync,
        adopt_after=0.8,
    )
    metrics.audit_counters = audit.counters
    audit.start()
    model = ModelSlot(Scorer(artifact.load(SHIPPED_MODEL)))
    return create_app(Handler(audit, metrics), model, metrics, max_body_bytes=1024), audit


async def _post(app: BotscoreApp, request_id: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://botscore") as client:
        return await client.post("/bot-score", json=SCORE, headers={"x-request-id": request_id})


@pytest.mark.parametrize("sync", ["always", "none"])
def test_a_write_stalled_while_its_folder_is_adopted_and_shipped_is_answered_503_never_200(
    tmp_path: Path, sync: SyncMode
) -> None:
    app, audit = _app(tmp_path, sync)
    entered, release = threading.Event(), threading.Event()
    adopted = tmp_path / "adopter"
    adopted.mkdir()

    def stalled(fd: int, line: bytes) -> int:
        # A write to a hung mount: it returns only once the folder was adopted and its segment shipped.
        entered.set()
        assert release.wait(10)
        return os.write(fd, line)

    def adopter() -> None:
        """What another host does to a folder it took for dead (spool.py's adoption steps)."""
        assert entered.wait(10)
        folder = audit.spool.directory / "workers" / audit.spool.worker
        generation = audit.spool.generation
        (folder / "lock").write_text(f"host-a\n{ADOPTER}\n")
        for segment in (folder / "active").iterdir():
            os.rename(segment, adopted / segment.name)
        shipped = {path.name: path.read_bytes() for path in adopted.iterdir()}
        for name in shipped:
            (adopted / name).unlink()  # shipped to S3 and deleted
        adopter_saw.update(shipped)
        # The owner's heartbeat finds the token and moves to a new folder; then the write returns.
        wait_for(lambda: audit.spool.generation != generation, 10, "the worker moving to a new folder")
        release.set()

    adopter_saw: dict[str, bytes] = {}
    try:
        assert asyncio.run(_post(app, "before")).status_code == 200
        audit.writer.write = stalled
        thread = threading.Thread(target=adopter)
        thread.start()
        stalled_answer = asyncio.run(_post(app, "stalled"))
        thread.join(10)
        audit.writer.write = os.write
        wait_for(lambda: audit.readiness() is None, 10, "the new folder in use")
        after = asyncio.run(_post(app, "after"))
    finally:
        release.set()
        audit.close()
    assert stalled_answer.status_code == 503
    assert stalled_answer.json()["error"]["code"] == "audit_unavailable"
    assert "adopted by another worker" in stalled_answer.json()["error"]["message"]
    assert b'"id":"stalled"' not in b"".join(adopter_saw.values())  # it is in no file anyone ships
    assert after.status_code == 200


def test_an_answer_is_refused_once_the_lock_holds_another_token_though_this_hosts_clock_says_the_lease_runs(
    tmp_path: Path,
) -> None:
    now = [1000.0]
    spool = SpoolDirectory(tmp_path / "audit", host="host-a", clock=lambda: now[0])
    spool.open(lease=15)
    writer = SegmentWriter(spool, max_bytes=1 << 20, max_age=3600, durable_seal=True)
    syncer = Syncer(writer)
    lock = tmp_path / "audit" / "workers" / spool.worker / "lock"

    async def scenario() -> tuple[bool, bool]:
        writer.append(b'{"id":"owned"}\n')
        owned = await syncer.commit()
        lock.write_text(f"host-a\n{ADOPTER}\n")  # adopted: the token is written before any segment moves
        now[0] -= 3600  # this host's clock set back (or stopped while a VM was frozen): the lease looks alive
        writer.append(b'{"id":"taken"}\n')  # the lease's clock lets the append through
        return owned, await syncer.commit()

    try:
        owned, taken = asyncio.run(scenario())
    finally:
        syncer.close()
    assert (owned, taken) == (True, False)
    assert syncer.failure == "cannot prove that this worker owns its spool folder: its lock holds no token of its"
    assert spool.taken


def test_a_refusal_for_a_lapsed_lease_gets_its_row_in_the_folder_still_open(tmp_path: Path) -> None:
    app, audit = _app(tmp_path, "none")
    lock = tmp_path / "audit" / "workers" / audit.spool.worker / "lock"
    away = lock.with_name("lock.away")
    try:
        assert asyncio.run(_post(app, "before")).status_code == 200
        os.rename(lock, away)
        lock.mkdir()  # the heartbeat cannot read the lock (EISDIR): no beat renews the lease
        wait_for(lambda: audit.spool.ownership_problem() is not None, 5, "the lease running out")
        refused = asyncio.run(_post(app, "refused"))
        lock.rmdir()
        os.rename(away, lock)
        wait_for(lambda: audit.readiness() is None, 5, "a heartbeat renewing the lease")
        after = asyncio.run(_post(app, "after"))
        rows = {str(row["id"]): row for row in spooled_records(tmp_path / "audit")}
    finally:
        audit.close()
    assert (refused.status_code, after.status_code) == (503, 200)
    assert sorted(rows) == ["after", "before", "refused"]
    assert rows["refused"]["status"] == 503
    assert str(rows["refused"]["error_message"]).startswith(
        "cannot confirm that this worker still owns its spool folder (lease ran out"
    )
