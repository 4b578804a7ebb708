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
from botscore.audit.spool import FolderTaken, PeerWatch, SpoolDirectory, lease_seconds
from botscore.audit.sync import Syncer, SyncMode
from botscore.audit.uploaders import Uploader
from botscore.call import Call
from botscore.errors import AuditUnavailable

log = logging.getLogger("botscore.audit")

READY_FRACTION = 0.8  # /readyz turns 503 above this share of the spool bound, before requests are refused
# Past the bound, refusals are still recorded in this share of it; past that they are only counted.
REFUSAL_RESERVE_FRACTION = 0.01
REFUSAL_REPORT_SECONDS = 60  # while refusing, one log line with the count this often, not one per request
# A storage call (fsync, seal, heartbeat) running longer than this, or an fsync that took longer the
# last time, makes the worker unready: EFS commits in milliseconds; half a second is a sick server.
SLOW_STORAGE_SECONDS = 0.5
SLOW_STORAGE_HOLD_SECONDS = 5.0  # ...for this long after it returned (no fsync comes while no request does)
HEARTBEAT_SECONDS = 2.0  # at most; more often when the lease is shorter (lease / 4)
# A spool unusable for this long (5 heartbeats) while another worker's heartbeat is seen advancing
# in it is this worker's own fault (its mount, its process): /healthz turns 503 so the task is replaced.
LOCAL_FAULT_GRACE_SECONDS = 10.0
WhenFull = Literal["reject", "drop"]


def is_local_fault(
    unusable_since: float | None, peer_advanced_at: float | None, now: float, grace: float = LOCAL_FAULT_GRACE_SECONDS
) -> bool:
    """True when this worker's spool has been unusable for longer than `grace` while another worker
    was seen writing to the same spool within the last `grace` (monotonic seconds). A spool nobody
    writes to (the file server down for everyone, or a single host) is never a local fault: replacing
    the task could not help, and doing it everywhere at once would cycle the fleet."""
    return (
        unusable_since is not None
        and now - unusable_since > grace
        and peer_advanced_at is not None
        and now - peer_advanced_at <= grace
    )


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
        self.writer = SegmentWriter(
            spool, max_bytes=segment_max_bytes, max_age=segment_max_age, durable_seal=sync != "none", fsync=fsync
        )
        self.sync = sync
        self.sync_interval = sync_interval
        self.syncer = Syncer(self.writer, fsync=fsync, on_fsync=on_fsync, window=commit_window)
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
        self.lease = lease_seconds(adopt_after)
        self._housekeeper: threading.Thread | None = None
        self._heart: threading.Thread | None = None
        self._beat_started: float | None = None  # monotonic start of the running heartbeat
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
        self._beat_failure: str | None = None  # why the last heartbeat failed, while it fails
        self._unusable_since: float | None = None  # monotonic time the spool became unusable
        self._peers = PeerWatch()
        self.local_fault_grace = local_fault_grace
        self.local_fault: str | None = None  # read by /healthz: set by the housekeeping thread only
        self._last_open_attempt = 0.0
        self._open_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool (a failure is reported by /readyz, not raised) and start shipping."""
        self._try_open()
        self._refresh()
        self.shipper.start()
        # Usage scans in a thread of their own (a pass of the shipper can take a minute while S3
        # hangs), and heartbeats in another: a slow scan of a large spool must not let the lease lapse.
        self._housekeeper = threading.Thread(target=self._housekeep, name="botscore-audit", daemon=True)
        self._housekeeper.start()
        self._heart = threading.Thread(target=self._beat, name="botscore-heartbeat", daemon=True)
        self._heart.start()
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
        for thread in (self._housekeeper, self._heart):
            if thread is not None:
                thread.join(5)
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
        if self._unavailable is None:
            self.writer.seal_if_due()

    # -- the request path ---------------------------------------------------------------

    def keep(self, call: Call, line: bytes, records: int = 1) -> AuditUnavailable | None:
        """Spool the call's record line (or its `records` lines), or apply the when-full policy: under
        `reject` the refusal is returned (the caller answers it; its own row is kept while the reserve
        lasts), under `drop` the record is counted as lost and None returned, as when it was kept."""
        problem = self._unavailable
        if problem is None and self.writer.bytes_appended >= self._append_limit:  # usage_bytes >= the capacity
            problem = self._full_reason
        if problem is None:
            try:
                self.writer.append(line, records)
                if self.sync == "always":
                    self.syncer.note(call)  # its answer waits for `settle`, which needs the record's folder
                return None
            except SpoolUnavailable as exc:
                problem = str(exc)
                self._unavailable = problem
                log.error("audit spool unavailable", extra={"reason": problem})
        if self.when_full == "drop":
            self.records_dropped += records
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
        if await self.syncer.settle(call):
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
                self.writer.append(record.failed(call, refusal, record.Sent(), raw_limit=self.raw_limit))
        return refusal

    def readiness(self) -> str | None:
        """None when records are being accepted with room to spare, else the reason."""
        if self._unavailable is not None:
            return f"audit spool unavailable: {self._unavailable}"
        problem = self.spool.ownership_problem()
        if problem is not None:
            return str(problem)
        if self.syncer.failure is not None:
            return self.syncer.failure
        slow = self._slow_storage()
        if slow is not None:
            return slow
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

    def _slow_storage(self) -> str | None:
        running = {
            "an fsync of the audit spool": self.syncer.running_for(),
            "sealing an audit segment": self.writer.sealing_for(),
            "the spool heartbeat": time.monotonic() - beat if (beat := self._beat_started) is not None else 0.0,
        }
        for what, seconds in running.items():
            if seconds > SLOW_STORAGE_SECONDS:
                return f"slow audit spool storage: {what} has been running for {seconds:.1f} s"
        recent = time.monotonic() - self.syncer.last_returned < SLOW_STORAGE_HOLD_SECONDS
        if recent and self.syncer.last_seconds > SLOW_STORAGE_SECONDS:
            return f"slow audit spool storage: the last fsync took {self.syncer.last_seconds:.1f} s"
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

    # -- housekeeping (its own threads) --------------------------------------------------------

    def _try_open(self) -> None:
        """Open the folder (a new one if ours was taken), prove it is ours and that it takes data."""
        with self._open_lock:
            self._last_open_attempt = time.monotonic()
            try:
                self.spool.probe(self.lease)
                self.spool.heartbeat(self.lease)
            except FolderTaken as exc:
                self._unavailable = str(exc)  # the next attempt (within a second) moves to a new folder
                return
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

    def _judge_local_fault(self) -> None:
        """Set `local_fault` while `is_local_fault` holds; other workers' locks are scanned only while
        this worker's spool is unusable, so a healthy spool costs nothing here."""
        problem = self._unavailable or self._beat_failure
        now = time.monotonic()
        if problem is None:
            self._unusable_since = None
            self._peers.forget()
            self.local_fault = None
            return
        if self._unusable_since is None:
            self._unusable_since = now
        try:
            self._peers.observe(self.spool.peer_heartbeats(), now)
        except OSError:
            self._peers.forget()  # nothing to compare the next scan with; no evidence either way
        if not is_local_fault(self._unusable_since, self._peers.advanced_at, now, self.local_fault_grace):
            if self.local_fault is not None:
                log.warning("other workers no longer seen writing to the audit spool: not a fault of this task")
            self.local_fault = None
            return
        fault = (
            f"this task cannot use the audit spool {self.spool.directory} while other workers write to it "
            f"(for {now - self._unusable_since:.0f} s: {problem})"
        )
        if self.local_fault is None:
            log.error("audit spool fault of this task alone: /healthz answers 503", extra={"reason": fault})
        self.local_fault = fault

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
        while not self._stop_housekeeping.wait(self.tick_seconds):
            try:
                with contextlib.suppress(OSError):  # a spool that fails is judged below
                    self.writer.check_active()  # deleted from outside: the next append opens a new one
                self._judge_local_fault()  # before the usage scan, which a broken spool may fail
                self._refresh()
            except Exception:  # the thread must outlive any surprise
                log.exception("audit housekeeping failed; retrying")

    def _beat(self) -> None:
        """Renew the lease on this worker's folder; when another worker adopted it, say so once and move
        to a new folder (meanwhile appends and answers are refused: spool.py's fencing argument)."""
        failing = False
        while not self._stop_housekeeping.wait(min(HEARTBEAT_SECONDS, self.lease / 4)):
            self._beat_started = time.monotonic()
            try:
                self.spool.heartbeat(self.lease)
                if failing:
                    log.info("audit spool heartbeat works again")
                failing = False
                self._beat_failure = None
            except FolderTaken as exc:
                log.warning(
                    "this worker's spool folder was adopted by another worker: refusing until it works "
                    "from a new folder",
                    extra={"reason": str(exc)},
                )
                self._try_open()
                if self._unavailable is None:
                    log.info("audit log works from a new spool folder", extra={"worker": self.spool.worker})
            except Exception as exc:  # OSError above all; the thread must outlive any surprise
                if not failing:
                    log.error("audit spool heartbeat failed; retrying", extra={"reason": str(exc)})
                failing = True
                self._beat_failure = f"the spool heartbeat fails: {exc}"
            finally:
                self._beat_started = None
