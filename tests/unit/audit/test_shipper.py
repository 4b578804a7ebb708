"""The shipper: a segment leaves the disk only after its upload, failures keep it, counts stay exact."""

from __future__ import annotations

import errno
import gzip
import json
import os
import threading
import time
from pathlib import Path

import pytest

from botscore.audit.segment import SegmentWriter, SpoolUnavailable
from botscore.audit.shipper import Shipper
from botscore.audit.spool import SpoolDirectory
from botscore.audit.uploaders import LocalUploader, UploadError
from tests.support.workers import kill_a_worker


class SlowFirstUpload(LocalUploader):
    """A real local destination whose first upload takes a while, like a slow S3 PUT."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.started = threading.Event()
        self.calls = 0

    def put(self, key: str, data: bytes) -> None:
        self.started.set()
        self.calls += 1
        if self.calls == 1:
            time.sleep(0.5)
        super().put(key, data)


class FailingFirstUploads(LocalUploader):
    """A real local destination that refuses its first `failures` uploads, like S3 answering 503."""

    def __init__(self, folder: Path, failures: int) -> None:
        super().__init__(folder)
        self.failures = failures
        self.calls = 0
        self.failed = threading.Event()

    def put(self, key: str, data: bytes) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            self.failed.set()
            raise UploadError("SlowDown: please reduce your request rate")
        super().put(key, data)


def _ids(folder: Path) -> list[str]:
    return sorted(
        json.loads(line)["id"]
        for path in folder.rglob("*.jsonl.gz")
        for line in gzip.decompress(path.read_bytes()).splitlines()
    )


def _spool(tmp_path: Path) -> tuple[SpoolDirectory, SegmentWriter]:
    spool = SpoolDirectory(tmp_path / "audit", host="h")
    spool.open()
    return spool, SegmentWriter(spool, max_bytes=1 << 20, max_age=3600)


def test_stop_during_an_upload_still_seals_and_ships_the_active_segment(tmp_path: Path) -> None:
    spool, writer = _spool(tmp_path)
    writer.append(b'{"id":"a"}\n')
    writer.seal()
    writer.append(b'{"id":"b"}\n')  # still active when the stop comes
    uploader = SlowFirstUpload(tmp_path / "shipped")
    shipper = Shipper(spool, writer, uploader, prefix="p/", tick=0.05)
    shipper.start()
    assert uploader.started.wait(5)
    assert shipper.stop(timeout=5) is True
    assert _ids(tmp_path / "shipped") == ["a", "b"]
    assert spool.sealed() == [] and writer.active_bytes == 0
    assert list((tmp_path / "audit").rglob("*.jsonl")) == []


def test_a_failed_upload_keeps_the_segment_on_disk_and_a_retry_ships_it_once(tmp_path: Path) -> None:
    spool, writer = _spool(tmp_path)
    for i in range(3):
        writer.append(b'{"id":"%d"}\n' % i)
    writer.seal()
    (segment,) = spool.sealed()
    uploader = FailingFirstUploads(tmp_path / "shipped", failures=1)
    shipper = Shipper(spool, writer, uploader, prefix="p/", tick=0.05, backoff_base=0.2, backoff_cap=0.2)
    shipper.start()
    assert uploader.failed.wait(5)
    assert segment.path.exists() and spool.sealed() == [segment]  # kept while S3 refuses it
    assert shipper.stop(timeout=5) is True
    assert uploader.calls == 2
    assert _ids(tmp_path / "shipped") == ["0", "1", "2"]
    assert not segment.path.exists()
    assert (shipper.stats.records_shipped, shipper.stats.objects_shipped, shipper.stats.upload_failures) == (3, 1, 1)


def test_a_leftover_whose_last_line_lacks_its_newline_is_shipped_whole(tmp_path: Path) -> None:
    dead = tmp_path / "audit" / "workers" / "1.dead"
    (dead / "active").mkdir(parents=True)
    (dead / "sealed").mkdir()
    (dead / "lock").write_bytes(b"h")  # a worker of this host, whose flock went with its process
    (dead / "sealed" / "dt=2026-11-27+hour=01+h-1.dead-000001.jsonl").write_bytes(b'{"id":"a"}\n{"id":"b"}')
    spool, writer = _spool(tmp_path)
    shipper = Shipper(spool, writer, LocalUploader(tmp_path / "shipped"), prefix="p/", tick=0.05)
    shipper.start()
    assert shipper.stop(timeout=5) is True
    assert _ids(tmp_path / "shipped") == ["a", "b"]
    assert shipper.stats.records_shipped == 2 and shipper.stats.torn_lines == 0


def test_a_killed_workers_torn_last_line_is_dropped_and_counted_and_the_rest_shipped(tmp_path: Path) -> None:
    kill_a_worker(tmp_path / "audit", sealed=['{"id":"a"}'], active=['{"id":"b"}', '{"id":"c", "sta'], host="h")
    spool, writer = _spool(tmp_path)
    shipper = Shipper(spool, writer, LocalUploader(tmp_path / "shipped"), prefix="p/", tick=0.05)
    shipper.start()
    assert shipper.stop(timeout=5) is True
    assert _ids(tmp_path / "shipped") == ["a", "b"]
    assert (shipper.stats.records_shipped, shipper.stats.torn_lines) == (2, 1)


def test_a_segment_that_cannot_be_read_does_not_block_the_others(tmp_path: Path) -> None:
    spool, writer = _spool(tmp_path)
    writer.append(b'{"id":"blocked"}\n')
    writer.seal()
    writer.append(b'{"id":"behind"}\n')
    writer.seal()
    first, _ = spool.sealed()
    first.path.unlink()
    first.path.mkdir()  # reading it fails (IsADirectoryError), as an unreadable file would
    shipper = Shipper(spool, writer, LocalUploader(tmp_path / "shipped"), prefix="p/", tick=0.05)
    shipper.start()
    shipper.stop(timeout=1)
    assert _ids(tmp_path / "shipped") == ["behind"]
    assert [segment.name for segment in spool.sealed()] == [first.name]  # kept, tried again later
    assert shipper.stats.upload_failures >= 1


def test_a_segment_whose_write_failed_midway_is_shipped_without_its_torn_line(tmp_path: Path) -> None:
    spool, writer = _spool(tmp_path)
    writer.append(b'{"id":"a"}\n')
    write = os.write

    def torn(fd: int, data: bytes) -> int:
        # What a file server that fails mid-write leaves (EIO, ESTALE): part of the line, then the error.
        write(fd, data[:7])
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    # A fake write, because no local file system tears a write and then fails it.
    writer.write = torn
    with pytest.raises(SpoolUnavailable, match="Input/output error"):
        writer.append(b'{"id":"torn"}\n')
    writer.write = os.write
    writer.append(b'{"id":"c"}\n')  # into a new segment
    writer.seal()
    shipper = Shipper(spool, writer, LocalUploader(tmp_path / "shipped"), prefix="p/", tick=0.05)
    shipper.start()
    assert shipper.stop(timeout=5) is True
    assert _ids(tmp_path / "shipped") == ["a", "c"]  # every shipped line is a whole record
    assert (shipper.stats.records_shipped, shipper.stats.torn_lines) == (2, 1)


def test_after_many_failed_uploads_a_retry_waits_no_longer_than_its_cap(tmp_path: Path) -> None:
    spool, writer = _spool(tmp_path)
    writer.append(b'{"id":"late"}\n')
    writer.seal()
    uploader = FailingFirstUploads(tmp_path / "shipped", failures=8)
    # Uncapped, the 8th wait alone would be 0.05 * 2**8 = 12.8 s (6.4 s at least, with jitter).
    shipper = Shipper(spool, writer, uploader, prefix="p/", tick=0.05, backoff_base=0.05, backoff_cap=0.2)
    started = time.monotonic()
    shipper.start()
    try:
        while _ids(tmp_path / "shipped") != ["late"]:
            assert time.monotonic() - started < 5, f"not shipped after {uploader.calls} attempts"
            time.sleep(0.05)
    finally:
        shipper.stop(timeout=1)
    assert uploader.calls == 9
    assert time.monotonic() - started < 8 * 0.2 + 3


def test_a_segment_deleted_from_outside_before_its_seal_is_dropped_and_later_ones_are_still_shipped(
    tmp_path: Path,
) -> None:
    spool, writer = _spool(tmp_path)
    writer.append(b'{"id":"deleted"}\n')
    (active,) = (tmp_path / "audit" / "workers" / spool.worker / "active").iterdir()
    active.unlink()  # an operator, a cleanup job
    writer.seal()  # the records in it are lost; nothing to retry
    writer.append(b'{"id":"later"}\n')
    writer.seal()
    shipper = Shipper(spool, writer, LocalUploader(tmp_path / "shipped"), prefix="p/", tick=0.05)
    shipper.start()
    assert shipper.stop(timeout=5) is True
    assert _ids(tmp_path / "shipped") == ["later"]
    assert writer.segments_vanished == 1
