"""Segments: keys fixed at open, sealing by size and age, leftovers claimed exactly once."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from app.shipper import drop_torn_lines
from app.spool import Spool, key_for, object_key


def _spool(tmp_path: Path, **kwargs) -> Spool:  # type: ignore[no-untyped-def]
    kwargs.setdefault("segment_max_bytes", 1 << 20)
    kwargs.setdefault("segment_max_age", 60)
    spool = Spool(tmp_path / "audit", host="host-a", **kwargs)
    spool.open()
    return spool


def test_object_key_is_the_athena_partition_layout_in_utc() -> None:
    opened = datetime(2026, 11, 27, 23, 59, 59, tzinfo=timezone.utc)
    assert object_key("bot-score/", opened, "ip-10-0-1-2", "41.ab12cd34", 7) == (
        "bot-score/dt=2026-11-27/hour=23/ip-10-0-1-2-41.ab12cd34-000007.jsonl.gz"
    )


def test_segment_name_round_trips_to_the_key_fixed_at_open(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.append(b'{"id":"a"}\n')
    spool.seal()
    (segment,) = spool.sealed()
    key = key_for("p/", segment.name)
    assert key.startswith("p/dt=") and key.endswith(f"/host-a-{spool.worker}-000001.jsonl.gz")


def test_seals_by_size_and_by_age_and_never_seals_empty(tmp_path: Path) -> None:
    spool = _spool(tmp_path, segment_max_bytes=100, segment_max_age=5)
    for _ in range(3):
        spool.append(b'{"id":"' + b"x" * 40 + b'"}\n')  # 48 bytes each: sealed at the 3rd
    assert len(spool.sealed()) == 1
    spool.append(b'{"id":"y"}\n')
    spool.seal_if_due(now=os.path.getmtime(spool.root) + 1)
    assert len(spool.sealed()) == 1  # young
    spool.seal_if_due(now=9e9)
    assert len(spool.sealed()) == 2
    spool.seal_if_due(now=9e9)
    assert len(spool.sealed()) == 2


def test_a_dead_workers_segments_are_claimed_exactly_once(tmp_path: Path) -> None:
    dead = _spool(tmp_path)
    dead.append(b'{"id":"1"}\n')
    dead.seal()
    dead.append(b'{"id":"2"}\n')  # still active when it dies
    assert dead._lock_fd is not None
    os.close(dead._lock_fd)  # what the kernel does when the process dies: the flock goes

    alive_a, alive_b = _spool(tmp_path), _spool(tmp_path)
    assert alive_a.claim_leftovers() + alive_b.claim_leftovers() == 2
    assert len(alive_a.sealed()) + len(alive_b.sealed()) == 2
    assert not dead.root.exists()


def test_a_live_workers_segments_are_left_alone(tmp_path: Path) -> None:
    live = _spool(tmp_path)
    live.append(b'{"id":"1"}\n')
    live.seal()
    other = _spool(tmp_path)
    assert other.claim_leftovers() == 0
    assert len(live.sealed()) == 1


def test_clean_close_leaves_no_worker_directory(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.close()
    assert list((tmp_path / "audit" / "workers").iterdir()) == []


def test_drop_torn_lines_keeps_whole_records() -> None:
    data = b'{"id":"a"}\n{"id":"b"}\n{"id":"c", "sta'
    assert drop_torn_lines(data) == (b'{"id":"a"}\n{"id":"b"}\n', 1)


def test_a_repair_copy_left_by_a_crash_is_not_shipped_as_a_segment(tmp_path: Path) -> None:
    dead = _spool(tmp_path)
    dead.append(b'{"id":"1"}\n')
    dead.seal()
    (segment,) = dead.sealed()
    (segment.path.parent / f".repair-{segment.name}.tmp").write_bytes(b'{"id":"1"}\n')
    (segment.path.parent / f".repair-{segment.name}").write_bytes(b'{"id":"1"}\n')  # an older naming
    assert dead._lock_fd is not None
    os.close(dead._lock_fd)

    alive = _spool(tmp_path)
    assert alive.claim_leftovers() == 1
    assert [s.name for s in alive.sealed()] == [segment.name]
    assert not dead.root.exists()


def test_a_staging_directory_of_a_dead_worker_is_removed(tmp_path: Path) -> None:
    staging = tmp_path / "audit" / "workers" / ".new-123.abcd"
    (staging / "active").mkdir(parents=True)
    (staging / "sealed").mkdir()
    (staging / "lock").write_bytes(b"")
    alive = _spool(tmp_path)
    alive.claim_leftovers()
    assert not staging.exists()
