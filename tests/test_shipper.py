"""The shipper's shutdown: seal and ship everything, even when the stop arrives mid-upload."""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path

from app.shipper import Shipper
from app.spool import Spool
from app.uploaders import LocalUploader


class SlowFirstUpload(LocalUploader):
    """A real local destination whose first upload takes a while, like a slow S3 PUT."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.started = threading.Event()
        self._first = True

    def put(self, key: str, data: bytes) -> None:
        self.started.set()
        if self._first:
            self._first = False
            time.sleep(0.5)
        super().put(key, data)


def _ids(folder: Path) -> list[str]:
    import json

    return sorted(
        json.loads(line)["id"] for path in folder.rglob("*.jsonl.gz") for line in gzip.decompress(path.read_bytes()).splitlines()
    )


def test_stop_during_an_upload_still_seals_and_ships_the_active_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "audit", segment_max_bytes=1 << 20, segment_max_age=3600, host="h")
    spool.open()
    spool.append(b'{"id":"a"}\n')
    spool.seal()
    spool.append(b'{"id":"b"}\n')  # still active when the stop comes
    uploader = SlowFirstUpload(tmp_path / "shipped")
    shipper = Shipper(spool, uploader, prefix="p/", tick=0.05)
    shipper.start()
    assert uploader.started.wait(5)
    assert shipper.stop(timeout=5) is True
    assert _ids(tmp_path / "shipped") == ["a", "b"]
    assert spool.sealed() == [] and spool.active_bytes == 0


def test_a_leftover_whose_last_line_lacks_its_newline_is_shipped_whole(tmp_path: Path) -> None:
    dead = tmp_path / "audit" / "workers" / "1.dead"
    (dead / "active").mkdir(parents=True)
    (dead / "sealed").mkdir()
    (dead / "lock").write_bytes(b"")
    (dead / "sealed" / "dt=2026-11-27+hour=01+h-1.dead-000001.jsonl").write_bytes(b'{"id":"a"}\n{"id":"b"}')
    spool = Spool(tmp_path / "audit", segment_max_bytes=1 << 20, segment_max_age=3600, host="h")
    spool.open()
    shipper = Shipper(spool, LocalUploader(tmp_path / "shipped"), prefix="p/", tick=0.05)
    shipper.start()
    assert shipper.stop(timeout=5) is True
    assert _ids(tmp_path / "shipped") == ["a", "b"]
    assert shipper.stats.records_shipped == 2 and shipper.stats.torn_lines == 0
