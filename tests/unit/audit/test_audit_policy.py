"""Bounded disk: readiness turns 503 before the bound; at the bound `reject` refuses, `drop` serves and counts."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from botscore.audit.spool import SpoolDirectory
from botscore.audit.uploaders import LocalUploader
from botscore.call import Call
from botscore.model import artifact
from botscore.model.scorer import Scorer
from botscore.service import Service
from botscore.settings import SHIPPED_MODEL
from tests.support.audit import audit_log
from tests.support.records import spooled_records

SCORE = {"x1": 0.1, "x2": 0.2}
SCORER = Scorer(artifact.load(SHIPPED_MODEL))
MakeService = Callable[..., Service]


def _nowhere(tmp_path: Path) -> LocalUploader:
    """A destination that really fails: its folder would have to live under a regular file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    return LocalUploader(blocker / "shipped")


def test_readiness_turns_503_above_80_percent_of_the_bound_while_requests_are_still_served(
    make_service: MakeService, tmp_path: Path
) -> None:
    bound = 65536
    service = make_service(uploader=_nowhere(tmp_path), audit_spool_max_bytes=bound, audit_shutdown_seconds=0.5)
    with TestClient(service.app) as client:
        while service.audit.usage_bytes < 0.75 * bound:
            assert client.post("/bot-score", json=SCORE).status_code == 200
        below = client.get("/readyz")
        while service.audit.usage_bytes < 0.8 * bound:
            assert client.post("/bot-score", json=SCORE).status_code == 200
        above = client.get("/readyz")
        served = client.post("/bot-score", json=SCORE)
    assert below.status_code == 200
    assert above.status_code == 503
    assert above.json()["error"]["code"] == "not_ready"
    assert "above 80% of BOTSCORE_AUDIT_SPOOL_MAX_BYTES=65536" in above.json()["error"]["message"]
    assert served.status_code == 200


def test_reject_policy_answers_503_with_retry_after_at_the_bound(make_service: MakeService, tmp_path: Path) -> None:
    service = make_service(
        uploader=_nowhere(tmp_path), audit_spool_max_bytes=65536, audit_when_full="reject", audit_shutdown_seconds=0.5
    )
    with TestClient(service.app) as client:
        answered = 0
        for _ in range(1000):
            response = client.post("/bot-score", json=SCORE)
            if response.status_code != 200:
                break
            answered += 1
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"]["code"] == "audit_unavailable"
    assert "BOTSCORE_AUDIT_SPOOL_MAX_BYTES=65536" in response.json()["error"]["message"]
    assert service.audit.records_refused == 1
    assert service.audit.shipper.stats.upload_failures >= 1
    rows = spooled_records(tmp_path / "audit")
    assert len([row for row in rows if row["status"] == 200]) == answered  # every answered request is kept
    [refused] = [row for row in rows if row["status"] == 503]  # the refusal too, in the reserve past the bound
    assert (refused["id"], refused["error_code"]) == (response.headers["x-request-id"], "audit_unavailable")


def test_reject_policy_answers_503_when_the_disk_fills_mid_run(
    make_service: MakeService, small_disk: Path, tmp_path: Path
) -> None:
    service = make_service(
        uploader=_nowhere(tmp_path), audit_dir=small_disk, audit_when_full="reject", audit_shutdown_seconds=0.5
    )
    with TestClient(service.app) as client:
        assert client.post("/bot-score", json=SCORE).status_code == 200  # the spool worked after start-up
        answered = 1
        for _ in range(5000):
            response = client.post("/bot-score", json=SCORE)
            if response.status_code != 200:
                break
            answered += 1
        again = client.post("/bot-score", json=SCORE)
        ready = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "audit_unavailable"
    assert re.search(
        r"No space left on device|short write, disk full|disk is full", response.json()["error"]["message"]
    )
    assert again.status_code == 503
    assert ready.status_code == 503
    rows = spooled_records(small_disk)
    assert len([row for row in rows if row["status"] == 200]) == answered  # every answered request is kept


def test_drop_policy_serves_and_counts_what_it_could_not_record(make_service: MakeService, tmp_path: Path) -> None:
    service = make_service(
        uploader=_nowhere(tmp_path), audit_spool_max_bytes=65536, audit_when_full="drop", audit_shutdown_seconds=0.5
    )
    with TestClient(service.app) as client:
        statuses = {client.post("/bot-score", json=SCORE).status_code for _ in range(400)}
    assert statuses == {200}
    written = service.audit.writer.records_written
    assert written < 400
    assert service.audit.records_dropped == 400 - written


def test_a_batch_counts_each_of_its_rows_written_and_each_dropped(make_service: MakeService, tmp_path: Path) -> None:
    service = make_service(
        uploader=_nowhere(tmp_path), audit_spool_max_bytes=65536, audit_when_full="drop", audit_shutdown_seconds=0.5
    )
    batch = {"instances": [SCORE] * 10}
    with TestClient(service.app) as client:
        statuses = {client.post("/bot-score/batch", json=batch).status_code for _ in range(60)}
    assert statuses == {200}
    written, dropped = service.audit.writer.records_written, service.audit.records_dropped
    assert written % 10 == 0 and 0 < written < 600  # whole batches, until the spool was full
    assert dropped == 600 - written  # each row of a batch that could not be kept, not one per batch


@pytest.mark.parametrize(("policy", "status"), [("reject", 503), ("drop", 200)])
def test_unwritable_spool_directory_never_crashes_the_server(
    make_service: MakeService, tmp_path: Path, policy: str, status: int
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the spool should be")
    service = make_service(audit_dir=blocker / "audit", audit_when_full=policy)
    with TestClient(service.app) as client:
        ready = client.get("/readyz")
        scored = client.post("/bot-score", json=SCORE)
        alive = client.get("/healthz")
    assert ready.status_code == 503
    assert "audit spool unavailable: cannot use" in ready.json()["error"]["message"]
    assert scored.status_code == status
    assert alive.status_code == 200


def test_an_append_that_fails_after_start_up_is_refused_not_answered(small_disk: Path, tmp_path: Path) -> None:
    # tick: no housekeeping after start-up, the disk fills behind the audit log's back
    audit = audit_log(SpoolDirectory(small_disk), _nowhere(tmp_path), tick=3600)
    audit.start()
    try:
        first = audit.keep(_call(), b'{"id":"first"}\n')
        _fill(small_disk / "filler")
        filled = audit.keep(_call(), b'{"id":"filled"}\n' * 4096, 4096)
    finally:
        audit.shipper.stop(0)
    assert first is None  # kept
    assert filled is not None and filled.status == 503
    assert re.search(r"No space left on device|short write", filled.message)
    assert audit.readiness() is not None and "audit spool unavailable" in audit.readiness()


def _fill(path: Path) -> None:
    """Write to `path` until the disk is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def _call() -> Call:
    return Call("/bot-score", "POST", b"id", SCORER, 0.0, 0.0)


def test_readiness_turns_503_before_a_disk_smaller_than_the_bound_fills(
    make_service: MakeService, small_disk: Path, tmp_path: Path
) -> None:
    service = make_service(uploader=_nowhere(tmp_path), audit_dir=small_disk, audit_shutdown_seconds=0.5)
    with TestClient(service.app) as client:
        for _ in range(5000):
            assert client.post("/bot-score", json=SCORE).status_code == 200
            ready = client.get("/readyz")
            if ready.status_code == 503:
                break
        served = client.post("/bot-score", json=SCORE)
    assert ready.status_code == 503
    assert (
        "its disk has room for (less than BOTSCORE_AUDIT_SPOOL_MAX_BYTES=1073741824)"
        in ready.json()["error"]["message"]
    )
    assert served.status_code == 200  # unready first: the load balancer moves traffic away before any refusal


def test_refusals_are_logged_when_they_start_not_once_per_request(
    make_service: MakeService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = make_service(uploader=_nowhere(tmp_path), audit_spool_max_bytes=65536, audit_shutdown_seconds=0.5)
    with TestClient(service.app) as client, caplog.at_level("INFO", logger="botscore"):
        statuses = [client.post("/bot-score", json=SCORE).status_code for _ in range(600)]
    assert statuses.count(503) >= 200
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "botscore.audit"]
    assert [r.getMessage() for r in warnings][:1] == ["refusing requests: the audit log cannot record them"]
    assert len(warnings) <= 2  # the start, and at most one periodic count
