"""The spool directory and the active segment: keys fixed at open, sealing by size and age, leftovers claimed once."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from botscore.audit.segment import FolderTaken, SegmentWriter, SpoolUnavailable
from botscore.audit.shipper import drop_torn_lines
from botscore.audit.spool import SpoolDirectory, object_key
from botscore.audit.uploaders import UploadError
from tests.support.audit import audit_log
from tests.support.workers import kill_a_worker


def _open(tmp_path: Path, host: str = "host-a") -> SpoolDirectory:
    spool = SpoolDirectory(tmp_path / "audit", host=host)
    spool.open()
    return spool


def _writer(spool: SpoolDirectory, max_bytes: int = 1 << 20, max_age: float = 60) -> SegmentWriter:
    return SegmentWriter(spool, max_bytes=max_bytes, max_age=max_age)


def _ids(spool: SpoolDirectory) -> list[str]:
    return sorted(json.loads(line)["id"] for s in spool.sealed() for line in s.path.read_bytes().splitlines() if line)


def test_object_key_is_the_athena_partition_layout_in_utc() -> None:
    opened = datetime(2026, 11, 27, 23, 59, 59, tzinfo=UTC)
    assert object_key("bot-score/", opened, "ip-10-0-1-2", "41.ab12cd34", 7) == (
        "bot-score/dt=2026-11-27/hour=23/ip-10-0-1-2-41.ab12cd34-000007.jsonl.gz"
    )


def test_a_sealed_segments_key_is_the_one_fixed_when_it_opened(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    writer = _writer(spool)
    writer.append(b'{"id":"a"}\n')
    writer.seal()
    (segment,) = spool.sealed()
    key = segment.key("p/")
    assert key.startswith("p/dt=") and key.endswith(f"/host-a-{spool.worker}-000001.jsonl.gz")


def _sealed_soon(spool: SpoolDirectory, count: int) -> int:
    """How many segments are sealed once the seal thread had time to seal `count` (it seals off the loop)."""
    deadline = time.monotonic() + 5
    while len(spool.sealed()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # and a little longer, so that one sealed too many would be seen
    return len(spool.sealed())


def test_seals_by_size_and_by_age_and_never_seals_empty(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    writer = _writer(spool, max_bytes=100, max_age=5)
    for _ in range(3):
        writer.append(b'{"id":"' + b"x" * 40 + b'"}\n')  # 48 bytes each: sealed at the 3rd
    assert _sealed_soon(spool, 1) == 1
    writer.append(b'{"id":"y"}\n')
    opened = writer.opened_at
    assert opened is not None
    writer.seal_if_due(now=opened + 1)
    assert _sealed_soon(spool, 1) == 1  # young
    writer.seal_if_due(now=opened + 5)
    assert _sealed_soon(spool, 2) == 2
    writer.seal_if_due(now=9e9)
    writer.seal()
    assert len(spool.sealed()) == 2


def test_a_removed_segment_is_gone_from_the_disk_not_only_from_the_list(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    writer = _writer(spool)
    writer.append(b'{"id":"a"}\n')
    writer.seal()
    (segment,) = spool.sealed()
    spool.remove(segment)
    assert spool.sealed() == []
    assert not segment.path.exists()
    assert spool.usage_bytes() == 0


def test_a_killed_workers_segments_are_claimed_exactly_once(tmp_path: Path) -> None:
    dead = kill_a_worker(tmp_path / "audit", sealed=['{"id":"1"}'], active=['{"id":"2"}'], host="host-a")
    alive_a, alive_b = _open(tmp_path), _open(tmp_path)
    assert alive_a.claim_leftovers() + alive_b.claim_leftovers() == 2
    assert sorted(_ids(alive_a) + _ids(alive_b)) == ["1", "2"]
    assert alive_a.claim_leftovers() + alive_b.claim_leftovers() == 0
    assert not (tmp_path / "audit" / "workers" / dead).exists()


def test_a_live_workers_segments_are_left_alone(tmp_path: Path) -> None:
    live = _open(tmp_path)
    writer = _writer(live)
    writer.append(b'{"id":"1"}\n')
    writer.seal()
    other = _open(tmp_path)
    assert other.claim_leftovers() == 0
    assert len(live.sealed()) == 1


def test_clean_close_leaves_no_worker_directory(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    spool.close()
    assert list((tmp_path / "audit" / "workers").iterdir()) == []


def test_drop_torn_lines_keeps_whole_records() -> None:
    data = b'{"id":"a"}\n{"id":"b"}\n{"id":"c", "sta'
    assert drop_torn_lines(data) == (b'{"id":"a"}\n{"id":"b"}\n', 1)


def test_a_repair_copy_left_by_a_crash_is_not_shipped_as_a_segment(tmp_path: Path) -> None:
    dead = kill_a_worker(tmp_path / "audit", sealed=['{"id":"1"}'], active=[], host="host-a")
    sealed = tmp_path / "audit" / "workers" / dead / "sealed"
    (name,) = [p.name for p in sealed.iterdir()]
    (sealed / f".repair-{name}.tmp").write_bytes(b'{"id":"1"}\n')
    (sealed / f".repair-{name}").write_bytes(b'{"id":"1"}\n')  # an older naming
    alive = _open(tmp_path)
    assert alive.claim_leftovers() == 1
    assert [s.name for s in alive.sealed()] == [name]
    assert not (tmp_path / "audit" / "workers" / dead).exists()


def test_a_staging_directory_of_a_dead_worker_is_removed(tmp_path: Path) -> None:
    staging = tmp_path / "audit" / "workers" / ".new-123.abcd"
    (staging / "active").mkdir(parents=True)
    (staging / "sealed").mkdir()
    (staging / "lock").write_bytes(b"")
    old = time.time() - 120
    os.utime(staging, (old, old))
    alive = _open(tmp_path)
    alive.claim_leftovers()
    assert not staging.exists()


def test_a_worker_creating_its_folder_keeps_it_while_another_claims_leftovers(tmp_path: Path) -> None:
    # The starting worker has created its lock file but not locked it yet: the moment two workers
    # of `--workers 2` met in CI, and the starting one answered 503 for a second.
    staging = tmp_path / "audit" / "workers" / ".new-123.abcd"
    (staging / "active").mkdir(parents=True)
    (staging / "sealed").mkdir()
    (staging / "lock").write_bytes(b"")
    alive = _open(tmp_path)
    alive.claim_leftovers()
    assert sorted(p.name for p in staging.iterdir()) == ["active", "lock", "sealed"]


def test_another_hosts_dead_worker_is_adopted_only_once_its_heartbeat_is_old_and_its_active_segment_after_the_fence(
    tmp_path: Path,
) -> None:
    dead = kill_a_worker(tmp_path / "audit", sealed=['{"id":"1"}'], active=['{"id":"2"}'], host="host-b")
    lock = tmp_path / "audit" / "workers" / dead / "lock"
    alive = _open(tmp_path, host="host-a")
    assert alive.claim_leftovers(adopt_after=1) == 0  # its lock is free, but on NFS that may be a lost lease
    beat = time.time() - 31
    os.utime(lock, (beat, beat))  # 31 s without a heartbeat
    assert alive.claim_leftovers(adopt_after=1) == 1  # the sealed segment; the fencing token is written
    assert lock.read_text().splitlines() == ["host-b", f"host-a/{alive.worker}"]
    assert _ids(alive) == ["1"]
    assert alive.claim_leftovers(adopt_after=1) == 0  # the active one waits out the owner's lease (0.5 s + 1 s)
    time.sleep(1.6)
    assert alive.claim_leftovers(adopt_after=1) == 1
    assert _ids(alive) == ["1", "2"]
    assert not (tmp_path / "audit" / "workers" / dead).exists()


def test_a_worker_whose_lease_ran_out_refuses_to_append_until_a_heartbeat_proves_the_folder_is_still_its(
    tmp_path: Path,
) -> None:
    spool = SpoolDirectory(tmp_path / "audit", host="host-a")
    spool.open(lease=0.2)
    writer = _writer(spool)
    writer.append(b'{"id":"before"}\n')
    time.sleep(0.3)  # as if stopped (SIGSTOP, a frozen VM) past its lease
    with pytest.raises(SpoolUnavailable, match="cannot confirm that this worker still owns its spool folder"):
        writer.append(b'{"id":"refused"}\n')
    spool.heartbeat(lease=5)
    writer.append(b'{"id":"after"}\n')
    writer.seal()
    assert _ids(spool) == ["after", "before"]


def test_a_live_worker_of_another_host_keeps_its_segments_while_it_beats(tmp_path: Path) -> None:
    live = _open(tmp_path, host="host-b")
    writer = _writer(live)
    writer.append(b'{"id":"1"}\n')
    writer.seal()
    lock = next((tmp_path / "audit" / "workers").iterdir()) / "lock"
    old = time.time() - 3600
    os.utime(lock, (old, old))
    live.heartbeat(lease=15)
    other = _open(tmp_path, host="host-a")
    assert other.claim_leftovers(adopt_after=30) == 0
    assert len(live.sealed()) == 1


def test_a_rename_whose_reply_was_lost_still_adopts_the_segment_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = kill_a_worker(tmp_path / "audit", sealed=['{"id":"1"}'], active=['{"id":"2"}'], host="host-a")
    alive = _open(tmp_path)
    rename = os.rename

    def reply_lost(source: str | Path, target: str | Path) -> None:
        # What NFS does when a rename's reply is lost: the client retries it, the source is gone.
        rename(source, target)
        raise FileNotFoundError(2, "No such file or directory")

    # A mock, because only a network file system that drops a reply reaches this branch.
    monkeypatch.setattr(os, "rename", reply_lost)
    assert alive.claim_leftovers() == 2
    monkeypatch.undo()
    assert _ids(alive) == ["1", "2"]
    assert not (tmp_path / "audit" / "workers" / dead).exists()


def test_a_worker_that_finds_another_holder_in_its_lock_refuses_and_moves_to_a_new_folder(tmp_path: Path) -> None:
    spool = _open(tmp_path, host="host-a")
    writer = _writer(spool)
    writer.append(b'{"id":"mine"}\n')
    old = spool.worker
    lock = tmp_path / "audit" / "workers" / old / "lock"
    lock.write_text("host-a\nhost-b/1.0badf00d\n")  # what an adopter writes first: its fencing token
    with pytest.raises(FolderTaken, match="adopted by another worker"):
        spool.heartbeat(lease=15)
    with pytest.raises(FolderTaken):
        writer.append(b'{"id":"refused"}\n')
    spool.probe(lease=15)  # a new folder, under a new name
    assert spool.worker != old
    writer.append(b'{"id":"new"}\n')
    writer.seal()
    spool.close()
    assert _ids(spool) == ["new"]
    # The old folder's segment is left to its adopter, untouched, and its lock keeps the adopter's token.
    assert [p.name for p in (tmp_path / "audit" / "workers" / old / "active").iterdir()] != []
    assert lock.read_text() == "host-a\nhost-b/1.0badf00d\n"


class _Refusing:
    """An uploader S3 refuses, so that nothing leaves the spool."""

    def put(self, key: str, data: bytes) -> None:
        raise UploadError("AccessDenied: no")

    def describe(self) -> str:
        return "s3://refusing"


def test_the_oldest_unshipped_age_is_the_whole_spools_not_only_this_workers(tmp_path: Path) -> None:
    """A worker with nothing of its own to ship still reports the 10-minute-old segment another worker (of
    another task, sharing the spool on EFS) could not ship: the alarm reads the maximum over workers, and
    it must see the stuck one whichever worker writes the line."""
    other = _open(tmp_path, host="host-b")
    stuck = _writer(other)
    stuck.append(b'{"id":"old"}\n')
    stuck.seal()
    (segment,) = other.sealed()
    ten_minutes_ago = time.time() - 600
    os.utime(segment.path, (ten_minutes_ago, ten_minutes_ago))
    audit = audit_log(_open(tmp_path), _Refusing(), adopt_after=3600)
    audit.start()
    try:
        age = audit.counters()["oldest_unshipped_age_seconds"]
        assert 600 <= age < 630, age
    finally:
        audit.close()
        other.close()


def test_another_hosts_active_segment_is_taken_only_once_the_lease_and_its_1_s_margin_have_passed(
    tmp_path: Path,
) -> None:
    dead = kill_a_worker(tmp_path / "audit", sealed=[], active=['{"id":"active"}'], host="host-b")
    lock = tmp_path / "audit" / "workers" / dead / "lock"
    beat = time.time() - 31
    os.utime(lock, (beat, beat))
    now = [1000.0]
    alive = SpoolDirectory(tmp_path / "audit", host="host-a", clock=lambda: now[0])
    alive.open()
    assert alive.claim_leftovers(adopt_after=1) == 0  # the token is written at 1000.0; the lease is 0.5 s
    now[0] = 1000.0 + 0.5 + 0.99
    assert alive.claim_leftovers(adopt_after=1) == 0  # past the lease, not past its margin
    now[0] = 1000.0 + 0.5 + 1.0
    assert alive.claim_leftovers(adopt_after=1) == 1
    assert _ids(alive) == ["active"]


def test_the_lease_runs_from_the_start_of_the_heartbeat_that_proved_the_folder_not_its_end(tmp_path: Path) -> None:
    spool = SpoolDirectory(tmp_path / "audit", host="host-a", clock=lambda: _mtime(lock))
    lock = tmp_path / "audit" / "workers" / spool.worker / "lock"
    spool.open(lease=15)
    started = time.time() - 10
    os.utime(lock, (started, started))
    # The clock is the lock's mtime: the beat reads it at its start, then its touch moves it 10 s on,
    # as if the beat took 10 s; its lease of 5 s ran out 5 s before it returned.
    spool.heartbeat(lease=5)
    problem = spool.ownership_problem()
    assert problem is not None
    assert str(problem) == "cannot confirm that this worker still owns its spool folder (lease ran out 5.0 s ago)"


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0
