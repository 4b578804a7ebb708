"""The data plane's tests: an audit log on a temporary folder, shipping to a local one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from botscore.audit.log import AuditLog
from botscore.audit.spool import SpoolDirectory
from botscore.audit.uploaders import LocalUploader
from tests.support.audit import audit_log


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditLog]:
    log = audit_log(SpoolDirectory(tmp_path / "audit"), LocalUploader(tmp_path / "shipped"))
    log.start()
    yield log
    log.shipper.stop(0)
