"""Bounded disk: readiness turns 503 before the bound; at the bound `reject` refuses, `drop` serves and counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app.uploaders import LocalUploader

SCORE = {"x1": 0.1, "x2": 0.2}


def _nowhere(tmp_path: Path) -> LocalUploader:
    """A destination that really fails: its folder would have to live under a regular file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    return LocalUploader(blocker / "shipped")


def test_reject_policy_turns_unready_before_the_bound_then_answers_503(make_service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    service = make_service(uploader=_nowhere(tmp_path), audit_spool_max_bytes=65536, audit_when_full="reject", audit_shutdown_seconds=0.5)
    with TestClient(service.app) as client:
        statuses = []
        unready_at = None
        for i in range(400):
            response = client.post("/bot-score", json=SCORE)
            statuses.append(response.status_code)
            if unready_at is None and client.get("/readyz").status_code == 503:
                unready_at = i
            if response.status_code != 200:
                break
        refused = response
        ready = client.get("/readyz")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["error"]["code"] == "audit_unavailable"
    assert "BOTSCORE_AUDIT_SPOOL_MAX_BYTES=65536" in refused.json()["error"]["message"]
    assert unready_at is not None and unready_at < len(statuses) - 1  # unready strictly before refusing
    assert service.audit.usage_bytes >= 0.8 * 65536
    assert ready.status_code == 503 and "above 80%" in ready.json()["error"]["message"]
    assert service.audit.counters.records_refused == 1
    assert service.audit.shipper.stats.upload_failures >= 1


def test_drop_policy_serves_and_counts_what_it_could_not_record(make_service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    service = make_service(uploader=_nowhere(tmp_path), audit_spool_max_bytes=65536, audit_when_full="drop", audit_shutdown_seconds=0.5)
    with TestClient(service.app) as client:
        statuses = {client.post("/bot-score", json=SCORE).status_code for _ in range(400)}
    assert statuses == {200}
    written = service.audit.spool.records_written
    assert written < 400
    assert service.audit.counters.records_dropped == 400 - written


@pytest.mark.parametrize(("policy", "status"), [("reject", 503), ("drop", 200)])
def test_unwritable_spool_directory_never_crashes_the_server(make_service, tmp_path: Path, policy: str, status: int) -> None:  # type: ignore[no-untyped-def]
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
