"""The audit log: what the request path calls to keep a record, and the policy when it cannot.

`AuditLog.record(line)` appends to the spool before the response is sent (no network on
the request path); the shipper moves sealed segments to S3 in the background. At the
disk bound, `when_full="reject"` refuses to score what it cannot record, `"drop"` serves
and counts the lost record.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.errors import AuditUnavailable
from app.shipper import Shipper
from app.spool import Spool, SpoolUnavailable
from app.uploaders import Uploader

log = logging.getLogger("botscore.audit")

READY_FRACTION = 0.8
RETRY_AFTER_SECONDS = 5


@dataclass
class AuditCounters:
    """Counters of the request side."""

    records_dropped: int = 0
    records_refused: int = 0


class AuditLog:
    """Spool + shipper + disk policy; one per worker process."""

    def __init__(
        self,
        spool: Spool,
        uploader: Uploader,
        *,
        prefix: str,
        spool_max_bytes: int,
        when_full: Literal["reject", "drop"],
        shutdown_seconds: float,
        retry_max_seconds: float = 30.0,
        tick: float = 0.5,
    ) -> None:
        self.spool = spool
        self.uploader = uploader
        self.spool_max_bytes = spool_max_bytes
        self.when_full = when_full
        self.shutdown_seconds = shutdown_seconds
        self.counters = AuditCounters()
        self.shipper = Shipper(
            spool, uploader, prefix=prefix, tick=tick, backoff_cap=retry_max_seconds, on_tick=self._refresh
        )
        self._usage_scanned = 0
        self._appended_at_scan = 0
        self._unavailable: str | None = "not started"
        self._last_open_attempt = 0.0
        self._open_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool (a failure is reported by /readyz, not raised) and start shipping."""
        self._try_open()
        self._refresh()
        self.shipper.start()
        log.info(
            "audit log started",
            extra={"spool": str(self.spool.directory), "destination": self.uploader.describe(), "worker": self.spool.worker},
        )

    def close(self) -> None:
        """Seal and ship within the shutdown deadline; what is left stays on disk for the next start."""
        shipped_all = self.shipper.stop(self.shutdown_seconds)
        if self._unavailable is None:
            self.spool.close()
        left = self.spool.sealed()
        stats = self.shipper.stats
        log.info(
            "audit log closed",
            extra={
                "records_written": self.spool.records_written,
                "records_shipped": stats.records_shipped,
                "segments_left": len(left),
                "shipped_all": shipped_all,
            },
        )

    def tick(self) -> None:
        """Seal the active segment when it is old enough; called from the event loop, which owns it."""
        if self._unavailable is None:
            try:
                self.spool.seal_if_due()
            except OSError as exc:
                log.error("cannot seal the active segment", extra={"reason": str(exc)})

    # -- the request path ---------------------------------------------------------------

    def record(self, line: bytes) -> None:
        """Spool one record line, or apply the when-full policy (raise AuditUnavailable to refuse)."""
        problem = self._unavailable
        if problem is None and self.usage_bytes >= self.spool_max_bytes:
            problem = f"audit spool is full (BOTSCORE_AUDIT_SPOOL_MAX_BYTES={self.spool_max_bytes})"
        if problem is None:
            try:
                self.spool.append(line)
                return
            except SpoolUnavailable as exc:
                problem = str(exc)
                self._unavailable = problem
                log.error("audit spool unavailable", extra={"reason": problem})
        if self.when_full == "drop":
            self.counters.records_dropped += 1
            return
        self.counters.records_refused += 1
        raise AuditUnavailable(f"{problem}; request not scored because it could not be recorded")

    def readiness(self) -> str | None:
        """None when records are being accepted with room to spare, else the reason."""
        if self._unavailable is not None:
            return f"audit spool unavailable: {self._unavailable}"
        usage = self.usage_bytes
        if usage >= READY_FRACTION * self.spool_max_bytes:
            return (
                f"audit spool holds {usage} bytes, above {int(READY_FRACTION * 100)}% of "
                f"BOTSCORE_AUDIT_SPOOL_MAX_BYTES={self.spool_max_bytes}"
            )
        return None

    @property
    def usage_bytes(self) -> int:
        """Bytes on disk at the last scan, plus what this worker appended since (the scan runs every tick)."""
        return self._usage_scanned + self.spool.bytes_appended - self._appended_at_scan

    # -- housekeeping (shipper thread) --------------------------------------------------------

    def _try_open(self) -> None:
        with self._open_lock:
            self._last_open_attempt = time.monotonic()
            try:
                if not self.spool.root.is_dir():
                    self.spool.open()
                probe = self.spool.root / "active" / ".probe"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                self._unavailable = f"cannot use {self.spool.directory}: {exc.strerror or exc}"
                return
            self._unavailable = None

    def _refresh(self) -> None:
        if self._unavailable is not None and time.monotonic() - self._last_open_attempt >= 1.0:
            self._try_open()
            if self._unavailable is None:
                log.info("audit spool available again", extra={"spool": str(self.spool.directory)})
        # The event loop only ever adds to spool.bytes_appended; reading it before the walk means
        # appends during the walk are counted at most twice (briefly), never lost.
        before = self.spool.bytes_appended
        try:
            scanned = self.spool.usage_bytes()
        except OSError:
            return
        self._usage_scanned, self._appended_at_scan = scanned, before


def spool_dir(path: Path) -> Path:
    """The spool directory, made absolute so a later chdir cannot move it."""
    return path.expanduser().resolve()
