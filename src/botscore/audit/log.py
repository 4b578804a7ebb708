"""The audit log's front object: what the data plane calls to keep a record, and the policy when it cannot.

`AuditLog.keep(call, line)` appends to the spool before the answer is sent (no network on
the request path); the shipper moves sealed segments to S3 in the background. At the disk
bound, `when_full="reject"` refuses to score what it cannot record (`keep` returns the
`AuditUnavailable` refusal, itself recorded while a reserve of 1 % of the bound lasts, and the
data plane answers it), `"drop"` serves and counts the lost record. This package knows no HTTP:
it reads what arrived (`Call`) and returns its decisions. The parts it fronts: spool.py (the folder),
segment.py and sealer.py (appends, seals), sync.py (fsyncs, and the release of answers), lease.py and
adoption.py (ownership), readiness.py (/readyz), health.py (/healthz), upkeep.py (its threads).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Literal

from botscore.audit import record
from botscore.audit.health import LOCAL_FAULT_GRACE_SECONDS, FaultJudge
from botscore.audit.lease import lease_seconds
from botscore.audit.readiness import Readiness
from botscore.audit.segment import LeaseLapsed, NotOpenYet, SegmentWriter, SpoolUnavailable, Unreleased
from botscore.audit.shipper import Shipper
from botscore.audit.spool import SpoolDirectory
from botscore.audit.sync import Syncer, SyncMode
from botscore.audit.upkeep import Upkeep
from botscore.audit.uploaders import Uploader
from botscore.call import Call
from botscore.errors import AuditUnavailable

log = logging.getLogger("botscore.audit")

REFUSAL_REPORT_SECONDS = 60  # while refusing, one log line with the count this often, not one per request
WhenFull = Literal["reject", "drop"]


class _Refusals:
    """What the when-full policy refused or dropped, and when it last said so (counted, logged sparingly)."""

    def __init__(self) -> None:
        self.dropped = 0
        self.refused = 0
        self.refusing = False
        self._reported = 0
        self._reported_at = 0.0

    def began(self, problem: str) -> None:
        if not self.refusing:
            self.refusing = True
            self._reported_at = time.monotonic()
            log.warning("refusing requests: the audit log cannot record them", extra={"reason": problem})

    def report(self, accepting: bool, reason: str) -> None:
        """While refusing, a count every REFUSAL_REPORT_SECONDS; once records are taken again, one line."""
        if not self.refusing:
            return
        now = time.monotonic()
        if accepting:
            self.refusing = False
            log.info("accepting requests again", extra={"refused": self.refused - self._reported})
            self._reported = self.refused
        elif now - self._reported_at >= REFUSAL_REPORT_SECONDS:
            log.warning("still refusing requests", extra={"refused": self.refused - self._reported, "reason": reason})
            self._reported_at, self._reported = now, self.refused


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
        commit_window: float = 0.0,
        adopt_after: float = 30.0,
        fsync: Callable[[int], None] = os.fsync,
        on_fsync: Callable[[float], object] = lambda seconds: None,
        raw_limit: int = record.RAW_LIMIT,
        local_fault_grace: float = LOCAL_FAULT_GRACE_SECONDS,
    ) -> None:
        self.spool = spool
        self.raw_limit = raw_limit  # BOTSCORE_AUDIT_RAW_MAX_BYTES, for the rows of refusals
        self.writer = SegmentWriter(  # preopen: no segment is ever opened on the event loop
            spool,
            max_bytes=segment_max_bytes,
            max_age=segment_max_age,
            durable_seal=sync != "none",
            fsync=fsync,
            preopen=True,
        )
        self.sync = sync
        self.sync_interval = sync_interval
        self.syncer = Syncer(self.writer, fsync=fsync, on_fsync=on_fsync, window=commit_window)
        self.uploader = uploader
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
        self.room = Readiness(spool, self.writer, self.syncer, spool_max_bytes)
        self.judge = FaultJudge(spool, local_fault_grace)
        self.refusals = _Refusals()
        self.upkeep = Upkeep(
            spool,
            self.writer,
            self.room,
            self.judge,
            lease=lease_seconds(adopt_after),
            tick=tick,
            problems=lambda: self.syncer.failure,
            after_scan=self._report_refusals,
        )

    def start(self) -> None:
        """Open the spool (a failure is reported by /readyz, not raised) and start shipping."""
        self.upkeep.start()
        self.shipper.start()
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
        self.judge.close()
        self.upkeep.stop()
        try:  # what cannot be sealed stays in active/ for the next start, which checks its lines
            self.writer.seal()
        except OSError as exc:
            log.error("cannot seal the active segment at shutdown", extra={"reason": str(exc)})
        self.writer.close()
        try:
            self.spool.close()
        except OSError as exc:
            log.error("cannot close the spool folder", extra={"reason": str(exc)})
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
        """Hand the active segment to the seal thread when it is old enough; called from the event loop,
        which owns it (the seal itself never runs on the loop)."""
        if self.upkeep.unavailable is None:
            self.writer.seal_if_due()

    def keep(self, call: Call, line: bytes, records: int = 1) -> AuditUnavailable | None:
        """Spool the call's record line (or its `records` lines), or apply the when-full policy: under
        `reject` the refusal is returned (the caller answers it; its own row is kept while the reserve
        lasts), under `drop` the record is counted as lost and None returned, as when it was kept."""
        problem, written = self.upkeep.unavailable, False
        if problem is None and self.writer.bytes_appended >= self.room.append_limit:  # room.full(), inline
            problem = self.room.full_reason
        if problem is None:
            try:
                self.writer.append(line, records)
                if self.sync == "always":
                    self.syncer.note(call)  # its answer waits for `settle`, which needs the record's folder
                return None
            except (LeaseLapsed, NotOpenYet) as exc:  # no storage call failed: the next request tries again
                problem = str(exc)
            except Unreleased as exc:  # its own row is written: no second one
                problem, written = str(exc), True
            except SpoolUnavailable as exc:
                problem = self.upkeep.unavailable = str(exc)
                log.error("audit spool unavailable", extra={"reason": problem})
        if self.when_full == "drop":
            self.refusals.dropped += records
            return None
        self.refusals.began(problem)
        room_left = self.writer.bytes_appended < self.room.append_limit + self.room.reserve
        return self._refuse(
            call,
            f"{problem}; request not scored because it could not be recorded",
            record_it=self.upkeep.unavailable is None and room_left and not written,
            fenced=False,  # nothing of this call was written: a lapsed lease still gets the refusal's row
        )

    async def settle(self, call: Call) -> AuditUnavailable | None:
        """With AUDIT_SYNC=always, wait for the fsync that covers the call's record; if it fails,
        the refusal (the record may not have reached the disk), else None."""
        if await self.syncer.settle(call):
            return None
        # The row that says 200 may be on disk; the refusal's row says what the client got.
        reason = f"{self.syncer.failure}; request not answered because its record may be lost"
        return self._refuse(call, reason, record_it=True, fenced=True)

    def _refuse(self, call: Call, reason: str, *, record_it: bool, fenced: bool) -> AuditUnavailable:
        """The 503 refusal of `call`, counted, and recorded (best effort) when `record_it`; if the
        disk itself is full after all, the refusal is counted, not recorded. Not `fenced`: written to
        the segment still open though the lease lapsed (the folder is most likely still ours)."""
        self.refusals.refused += 1
        refusal = AuditUnavailable(reason)
        if record_it:
            with contextlib.suppress(SpoolUnavailable):
                row = record.failed(call, refusal, record.Sent(), raw_limit=self.raw_limit)
                self.writer.append(row, fenced=fenced)
        return refusal

    def _report_refusals(self) -> None:
        unavailable = self.upkeep.unavailable
        owned = self.spool.ownership_problem() is None
        accepting = unavailable is None and owned and not self.room.full()
        self.refusals.report(accepting, unavailable or self.room.full_reason)

    def readiness(self) -> str | None:
        """None when records are being accepted with room to spare, else the reason."""
        return self.room.reason(self.upkeep.unavailable)

    @property
    def local_fault(self) -> str | None:
        """Why this task should be replaced (read by /healthz): set by the housekeeping thread only."""
        return self.judge.local_fault

    @property
    def usage_bytes(self) -> int:
        return self.room.usage_bytes

    @property
    def records_dropped(self) -> int:
        return self.refusals.dropped

    @property
    def records_refused(self) -> int:
        return self.refusals.refused

    def counters(self) -> dict[str, float]:
        """The audit log's counters and gauges, as /metrics reports them."""
        stats = self.shipper.stats
        # This worker's own segments to the millisecond, and every other segment in the spool (other
        # workers', other tasks', a dead one's awaiting adoption) from the last scan.
        known = (self.spool.oldest_sealed(), self.writer.opened_at, self.room.oldest_scanned)
        oldest = min((t for t in known if t is not None), default=None)
        return {
            "records_written": self.writer.records_written,
            "records_shipped": stats.records_shipped,
            "records_dropped": self.refusals.dropped,
            "records_refused": self.refusals.refused,
            "torn_lines": stats.torn_lines,
            "upload_failures": stats.upload_failures,
            "objects_shipped": stats.objects_shipped,
            "adoptions": stats.adoptions,
            "spool_bytes": self.usage_bytes,
            "oldest_unshipped_age_seconds": 0.0 if oldest is None else max(0.0, time.time() - oldest),
        }
