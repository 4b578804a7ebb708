"""The audit log's front object: what the data plane calls to keep a record, and the policy when it cannot.

`AuditLog.keep(call, line)` appends to the spool before the answer is sent (no network on
the request path); the shipper moves sealed segments to S3 in the background. At the disk
bound, `when_full="reject"` refuses to score what it cannot record (`keep` returns the
`AuditUnavailable` refusal, itself recorded while a reserve of 1 % of the bound lasts, and the
data plane answers it), `"drop"` serves and counts the lost record. This package knows no HTTP:
it reads what arrived (`Call`) and returns its decisions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Literal

from botscore.audit import record
from botscore.audit.segment import SegmentWriter, SpoolUnavailable
from botscore.audit.shipper import Shipper
from botscore.audit.spool import SpoolDirectory
from botscore.audit.sync import Syncer, SyncMode
from botscore.audit.uploaders import Uploader
from botscore.call import Call
from botscore.errors import AuditUnavailable

log = logging.getLogger("botscore.audit")

READY_FRACTION = 0.8  # /readyz turns 503 above this share of the spool bound, before requests are refused
# Past the bound, refusals are still recorded in this share of it; past that they are only counted.
REFUSAL_RESERVE_FRACTION = 0.01
REFUSAL_REPORT_SECONDS = 60  # while refusing, one log line with the count this often, not one per request
SYNC_STUCK_SECONDS = 5.0  # an fsync running longer than this makes the worker unready (a hung NFS server)
HEARTBEAT_SECONDS = 2.0
WhenFull = Literal["reject", "drop"]


class AuditLog:
    """Spool, active segment, shipper and the disk policy; one per worker process."""

    def __init__(
        self,
        spool: SpoolDirectory,
        uploader: Uploader,
        *,
        prefix: str,
        segment_max_bytes: int,
        segment_max_age: float,
        spool_max_bytes: int,
        when_full: WhenFull,
        shutdown_seconds: float,
        retry_max_seconds: float = 30.0,
        tick: float = 0.5,
        sync: SyncMode = "none",
        sync_interval: float = 0.5,
        adopt_after: float = 30.0,
        fsync: Callable[[int], None] = os.fsync,
        on_fsync: Callable[[float], object] = lambda seconds: None,
    ) -> None:
        self.spool = spool
        self.writer = SegmentWriter(
            spool, max_bytes=segment_max_bytes, max_age=segment_max_age, durable_seal=sync != "none", fsync=fsync
        )
        self.sync = sync
        self.sync_interval = sync_interval
        self.syncer = Syncer(self.writer, fsync=fsync, on_fsync=on_fsync)
        self.uploader = uploader
        self.spool_max_bytes = spool_max_bytes
        self.when_full = when_full
        self.shutdown_seconds = shutdown_seconds
        self.shipper = Shipper(
            spool,
            self.writer,
            uploader,
            prefix=prefix,
            tick=tick,
            backoff_cap=retry_max_seconds,
            adopt_after=adopt_after,
        )
        self.tick_seconds = tick
        self._housekeeper: threading.Thread | None = None
        self._stop_housekeeping = threading.Event()
        self.records_dropped = 0
        self.records_refused = 0
        self._usage_scanned = 0
        self._appended_at_scan = 0
        self._append_limit = spool_max_bytes  # bytes_appended at which usage_bytes reaches the capacity
        self._capacity = spool_max_bytes  # the bound, or less when the disk has less room
        self._full_reason = f"audit spool is full (BOTSCORE_AUDIT_SPOOL_MAX_BYTES={spool_max_bytes})"
        self._reserve = int(spool_max_bytes * REFUSAL_RESERVE_FRACTION)
        self._refusing = False
        self._refused_reported = 0
        self._refusal_reported_at = 0.0
        self._unavailable: str | None = "not started"
        self._last_open_attempt = 0.0
        self._open_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool (a failure is reported by /readyz, not raised) and start shipping."""
        self._try_open()
        self._refresh()
        self.shipper.start()
        # Heartbeat and usage in a thread of their own: a pass of the shipper can take a minute
        # while S3 hangs, and another host must never take this worker for dead meanwhile.
        self._housekeeper = threading.Thread(target=self._housekeep, name="botscore-audit", daemon=True)
        self._housekeeper.start()
        log.info(
            "audit log started",
            extra={
                "spool": str(self.spool.directory),
                "destination": self.uploader.describe(),
                "worker": self.spool.worker,
            },
        )

    def close(self) -> None:
        """Seal and ship within the shutdown deadline; what is left stays on disk for the next start."""
        shipped_all = self.shipper.stop(self.shutdown_seconds)
        self.syncer.close()
        self._stop_housekeeping.set()
        if self._housekeeper is not None:
            self._housekeeper.join(5)
        if self._unavailable is None:
            self.writer.seal()
            self.spool.close()
        log.info(
            "audit log closed",
            extra={
                "records_written": self.writer.records_written,
                "records_shipped": self.shipper.stats.records_shipped,
                "segments_left": len(self.spool.sealed()),
                "shipped_all": shipped_all,
            },
        )

    def tick(self) -> None:
        """Seal the active segment when it is old enough; called from the event loop, which owns it."""
        if self._unavailable is None:
            try:
                self.writer.seal_if_due()
            except OSError as exc:
                log.error("cannot seal the active segment", extra={"reason": str(exc)})

    # -- the request path ---------------------------------------------------------------

    def keep(self, call: Call, line: bytes) -> AuditUnavailable | None:
        """Spool the call's record line, or apply the when-full policy: under `reject` the refusal
        is returned (the caller answers it; its own row is kept while the reserve lasts), under
        `drop` the record is counted as lost and None returned, as when it was kept."""
        problem = self._unavailable
        if problem is None and self.writer.bytes_appended >= self._append_limit:  # usage_bytes >= the capacity
            problem = self._full_reason
        if problem is None:
            try:
                self.writer.append(line)
                return None
            except SpoolUnavailable as exc:
                problem = str(exc)
                self._unavailable = problem
                log.error("audit spool unavailable", extra={"reason": problem})
        if self.when_full == "drop":
            self.records_dropped += 1
            return None
        if not self._refusing:
            self._refusing = True
            self._refusal_reported_at = time.monotonic()
            log.warning("refusing requests: the audit log cannot record them", extra={"reason": problem})
        return self._refuse(
            call,
            f"{problem}; request not scored because it could not be recorded",
            record_it=self._unavailable is None and self.writer.bytes_appended < self._append_limit + self._reserve,
        )

    async def settle(self, call: Call) -> AuditUnavailable | None:
        """With AUDIT_SYNC=always, wait for the fsync that covers the call's record; if it fails,
        the refusal (the record may not have reached the disk), else None."""
        if await self.syncer.commit():
            return None
        # The row that says 200 may be on disk; the refusal's row says what the client got.
        reason = f"{self.syncer.failure}; request not answered because its record may be lost"
        return self._refuse(call, reason, record_it=True)

    def _refuse(self, call: Call, reason: str, *, record_it: bool) -> AuditUnavailable:
        """The 503 refusal of `call`, counted, and recorded (best effort) when `record_it`; if the
        disk itself is full after all, the refusal is counted, not recorded."""
        self.records_refused += 1
        refusal = AuditUnavailable(reason)
        if record_it:
            with contextlib.suppress(SpoolUnavailable):
                self.writer.append(record.failed(call, refusal, record.Sent()))
        return refusal

    def readiness(self) -> str | None:
        """None when records are being accepted with room to spare, else the reason."""
        if self._unavailable is not None:
            return f"audit spool unavailable: {self._unavailable}"
        if self.syncer.failure is not None:
            return self.syncer.failure
        stuck = self.syncer.running_for()
        if stuck > SYNC_STUCK_SECONDS:
            return f"an fsync of the audit spool has been running for {stuck:.0f} s"
        usage = self.usage_bytes
        if usage >= READY_FRACTION * self._capacity:
            if self._capacity < self.spool_max_bytes:
                return (
                    f"audit spool holds {usage} bytes, above {int(READY_FRACTION * 100)}% of the {self._capacity} "
                    f"its disk has room for (less than BOTSCORE_AUDIT_SPOOL_MAX_BYTES={self.spool_max_bytes})"
                )
            return (
                f"audit spool holds {usage} bytes, above {int(READY_FRACTION * 100)}% of "
                f"BOTSCORE_AUDIT_SPOOL_MAX_BYTES={self.spool_max_bytes}"
            )
        return None

    @property
    def usage_bytes(self) -> int:
        """Bytes on disk at the last scan, plus what this worker appended since (the scan runs every tick)."""
        return self._usage_scanned + self.writer.bytes_appended - self._appended_at_scan

    def counters(self) -> dict[str, float]:
        """The audit log's counters and gauges, as /metrics reports them."""
        stats = self.shipper.stats
        oldest = min((t for t in (self.spool.oldest_sealed(), self.writer.opened_at) if t is not None), default=None)
        return {
            "records_written": self.writer.records_written,
            "records_shipped": stats.records_shipped,
            "records_dropped": self.records_dropped,
            "records_refused": self.records_refused,
            "torn_lines": stats.torn_lines,
            "upload_failures": stats.upload_failures,
            "objects_shipped": stats.objects_shipped,
            "adoptions": self.shipper.stats.adoptions,
            "spool_bytes": self.usage_bytes,
            "oldest_unshipped_age_seconds": 0.0 if oldest is None else max(0.0, time.time() - oldest),
        }

    # -- housekeeping (shipper thread) --------------------------------------------------------

    def _try_open(self) -> None:
        with self._open_lock:
            self._last_open_attempt = time.monotonic()
            try:
                self.spool.probe()
            except OSError as exc:
                self._unavailable = f"cannot use {self.spool.directory}: {exc.strerror or exc}"
                return
            self._unavailable = None

    def _refresh(self) -> None:
        if self._unavailable is not None and time.monotonic() - self._last_open_attempt >= 1.0:
            self._try_open()
            if self._unavailable is None:
                log.info("audit spool available again", extra={"spool": str(self.spool.directory)})
        # The event loop only ever adds to bytes_appended; reading it before the walk means
        # appends during the walk are counted at most twice (briefly), never lost.
        before = self.writer.bytes_appended
        try:
            scanned = self.spool.usage_bytes()
            disk = os.statvfs(self.spool.directory)
        except OSError:
            return
        # What the disk can still take, less a margin for refusal records and file-system overhead.
        margin = min(self._reserve, disk.f_blocks * disk.f_frsize // 20)
        room = disk.f_bavail * disk.f_frsize - margin
        capacity = min(self.spool_max_bytes, scanned + max(room, 0))
        if capacity < self.spool_max_bytes:
            self._full_reason = f"the audit spool's disk is full ({max(room, 0)} bytes left for records)"
        else:
            self._full_reason = f"audit spool is full (BOTSCORE_AUDIT_SPOOL_MAX_BYTES={self.spool_max_bytes})"
        self._usage_scanned, self._appended_at_scan, self._capacity = scanned, before, capacity
        self._append_limit = capacity - scanned + before
        self._report_refusals()

    def _report_refusals(self) -> None:
        """While refusing, a count every REFUSAL_REPORT_SECONDS; once the spool takes records again, one line."""
        if not self._refusing:
            return
        now = time.monotonic()
        refused = self.records_refused
        if self._unavailable is None and self.writer.bytes_appended < self._append_limit:
            self._refusing = False
            log.info("accepting requests again", extra={"refused": refused - self._refused_reported})
            self._refused_reported = refused
        elif now - self._refusal_reported_at >= REFUSAL_REPORT_SECONDS:
            log.warning(
                "still refusing requests",
                extra={"refused": refused - self._refused_reported, "reason": self._unavailable or self._full_reason},
            )
            self._refusal_reported_at = now
            self._refused_reported = refused

    def _housekeep(self) -> None:
        next_beat = 0.0
        while not self._stop_housekeeping.wait(self.tick_seconds):
            try:
                if time.monotonic() >= next_beat:
                    self.spool.heartbeat()
                    next_beat = time.monotonic() + HEARTBEAT_SECONDS
                self._refresh()
            except Exception:  # the thread must outlive any surprise
                log.exception("audit housekeeping failed; retrying")
