"""Readiness: whether this worker takes records with room to spare (/readyz), and the disk bound.

/readyz turns 503 before requests are refused: above READY_FRACTION of the spool bound (or of what
its disk has room for, when that is less), while the folder is not provably this worker's, while
fsyncs fail, and while a storage call is slow. What replaces a task is health.py's judgement.
"""

from __future__ import annotations

import os
import time

from botscore.audit.segment import SegmentWriter
from botscore.audit.spool import SpoolDirectory
from botscore.audit.sync import Syncer

READY_FRACTION = 0.8  # /readyz turns 503 above this share of the spool bound, before requests are refused
# Past the bound, refusals are still recorded in this share of it; past that they are only counted.
REFUSAL_RESERVE_FRACTION = 0.01
# A storage call (fsync, seal, heartbeat) running longer than this, or an fsync that took longer the
# last time, makes the worker unready: EFS commits in milliseconds; half a second is a sick server.
SLOW_STORAGE_SECONDS = 0.5
SLOW_STORAGE_HOLD_SECONDS = 5.0  # ...for this long after it returned (no fsync comes while no request does)


class Readiness:
    """The spool's room (scanned by the housekeeping thread) and the reasons a worker is unready."""

    def __init__(self, spool: SpoolDirectory, writer: SegmentWriter, syncer: Syncer, spool_max_bytes: int) -> None:
        self.spool = spool
        self.writer = writer
        self.syncer = syncer
        self.spool_max_bytes = spool_max_bytes
        self.reserve = int(spool_max_bytes * REFUSAL_RESERVE_FRACTION)
        self.append_limit = spool_max_bytes  # bytes_appended at which usage_bytes reaches the capacity
        self.oldest_scanned: float | None = None  # the oldest segment's mtime in the whole spool, last scan
        self.full_reason = f"audit spool is full (BOTSCORE_AUDIT_SPOOL_MAX_BYTES={spool_max_bytes})"
        self.beat_started: float | None = None  # monotonic start of the running heartbeat
        self._capacity = spool_max_bytes  # the bound, or less when the disk has less room
        self._scanned = 0
        self._appended_at_scan = 0

    @property
    def usage_bytes(self) -> int:
        """Bytes on disk at the last scan, plus what this worker appended since (the scan runs every tick)."""
        return self._scanned + self.writer.bytes_appended - self._appended_at_scan

    def full(self) -> bool:
        """usage_bytes has reached the capacity (event loop: one comparison)."""
        return self.writer.bytes_appended >= self.append_limit

    def scan(self) -> None:
        """Measure the spool and its disk (housekeeping thread); nothing changes if they cannot be read."""
        # The event loop only ever adds to bytes_appended; reading it before the walk means
        # appends during the walk are counted at most twice (briefly), never lost.
        before = self.writer.bytes_appended
        try:
            scanned, self.oldest_scanned = self.spool.usage()
            disk = os.statvfs(self.spool.directory)
        except OSError:
            return
        # What the disk can still take, less a margin for refusal records and file-system overhead.
        margin = min(self.reserve, disk.f_blocks * disk.f_frsize // 20)
        room = disk.f_bavail * disk.f_frsize - margin
        capacity = min(self.spool_max_bytes, scanned + max(room, 0))
        if capacity < self.spool_max_bytes:
            self.full_reason = f"the audit spool's disk is full ({max(room, 0)} bytes left for records)"
        else:
            self.full_reason = f"audit spool is full (BOTSCORE_AUDIT_SPOOL_MAX_BYTES={self.spool_max_bytes})"
        self._scanned, self._appended_at_scan, self._capacity = scanned, before, capacity
        self.append_limit = capacity - scanned + before

    def reason(self, unavailable: str | None) -> str | None:
        """None when records are being accepted with room to spare, else the reason."""
        if unavailable is not None:
            return f"audit spool unavailable: {unavailable}"
        problem = self.spool.ownership_problem()
        if problem is not None:
            return str(problem)
        if self.syncer.failure is not None:
            return self.syncer.failure
        slow = self.slow_storage()
        if slow is not None:
            return slow
        usage = self.usage_bytes
        if usage >= READY_FRACTION * self._capacity:
            share = f"above {int(READY_FRACTION * 100)}% of"
            if self._capacity < self.spool_max_bytes:
                return (
                    f"audit spool holds {usage} bytes, {share} the {self._capacity} its disk has room for "
                    f"(less than BOTSCORE_AUDIT_SPOOL_MAX_BYTES={self.spool_max_bytes})"
                )
            return f"audit spool holds {usage} bytes, {share} BOTSCORE_AUDIT_SPOOL_MAX_BYTES={self.spool_max_bytes}"
        return None

    def slow_storage(self) -> str | None:
        slow = self.running_storage(SLOW_STORAGE_SECONDS)
        if slow is not None:
            return slow
        recent = time.monotonic() - self.syncer.last_returned < SLOW_STORAGE_HOLD_SECONDS
        if recent and self.syncer.last_seconds > SLOW_STORAGE_SECONDS:
            return f"slow audit spool storage: the last fsync took {self.syncer.last_seconds:.1f} s"
        return None

    def running_storage(self, longer_than: float) -> str | None:
        """Which storage call has been running for longer than `longer_than` seconds, if one has."""
        running = {
            "an fsync of the audit spool": self.syncer.running_for(),
            "sealing an audit segment": self.writer.sealing_for(),
            "the spool heartbeat": time.monotonic() - beat if (beat := self.beat_started) is not None else 0.0,
        }
        for what, seconds in running.items():
            if seconds > longer_than:
                return f"slow audit spool storage: {what} has been running for {seconds:.1f} s"
        return None
