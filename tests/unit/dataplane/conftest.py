"""The data plane's tests: an audit log on a temporary folder, shipping to a local one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from botscore.audit.log import AuditLog
from botscore.audit.spool import SpoolDirectory
from botscore.audit.uploaders import LocalUploader


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditLog]:
    log = AuditLog(
        SpoolDirectory(tmp_path / "audit"),
        LocalUploader(tmp_path / "shipped"),
        prefix="p/",
        segment_max_bytes=1 << 20,
        segment_max_age=3600,
        spool_max_bytes=1 << 30,
        when_full="reject",
        shutdown_seconds=0,
    )
    log.start()
    yield log
    log.shipper.stop(0)
