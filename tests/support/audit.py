"""An audit log as the unit and SQL tests build it: small segments sealed by size only, room to
spare, `reject` when full, no wait at shutdown; each test overrides what it is about."""

from __future__ import annotations

from typing import Any

from botscore.audit.log import AuditLog
from botscore.audit.spool import SpoolDirectory
from botscore.audit.uploaders import Uploader

DEFAULTS: dict[str, Any] = {
    "prefix": "p/",
    "segment_max_bytes": 1 << 20,
    "segment_max_age": 3600,
    "spool_max_bytes": 1 << 30,
    "when_full": "reject",
    "shutdown_seconds": 0,
}


def audit_log(spool: SpoolDirectory, uploader: Uploader, **options: Any) -> AuditLog:
    """An AuditLog over `spool` shipping through `uploader`, with DEFAULTS unless `options` say otherwise."""
    return AuditLog(spool, uploader, **{**DEFAULTS, **options})
