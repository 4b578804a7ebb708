"""When records reach the disk: BOTSCORE_AUDIT_SYNC.

    none      the kernel writes the page cache back when it likes: a process crash loses
              nothing (the write() is done), the loss of the machine or the task can.
    interval  an fsync at least every AUDIT_SYNC_INTERVAL_MS: at most that window is lost.
    always    group commit: an answer is sent only after an fsync that covers its record;
              requests that arrive while an fsync runs share the next one.

The fsync runs in a thread of its own on a duplicate of the active segment's fd (the event
loop keeps appending and may seal the segment meanwhile); sealed segments were synced when
they were sealed, so one fsync covers every byte appended before it started.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from botscore.audit.segment import SegmentWriter

log = logging.getLogger("botscore.audit")

SyncMode = Literal["none", "interval", "always"]


class Syncer:
    """Fsyncs the active segment for the `interval` and `always` modes."""

    def __init__(
        self,
        writer: SegmentWriter,
        *,
        fsync: Callable[[int], None] = os.fsync,
        on_fsync: Callable[[float], object] = lambda seconds: None,
    ) -> None:
        self.writer = writer
        self.fsync = fsync
        self.on_fsync = on_fsync  # told each fsync's duration (the metrics' histogram)
        self.synced = 0  # writer.bytes_appended covered by the last fsync that completed
        self.failure: str | None = None  # why the last fsync failed; None once one succeeds
        self._running: asyncio.Future[None] | None = None
        self._started = 0.0  # monotonic time the running fsync started
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="botscore-fsync")

    async def commit(self) -> bool:
        """Wait until every record appended so far is on disk; False if an fsync failed (event loop)."""
        target = self.writer.bytes_appended
        while self.synced < target:
            await self._sync()
            if self.failure is not None:
                return False
        return True

    async def every(self, seconds: float) -> None:
        """Sync what was appended since the last fsync, and retry after a failure, every `seconds`
        (the `interval` mode's timer; in `always` mode, what brings a failed spool back)."""
        while True:
            await asyncio.sleep(seconds)
            if self.failure is not None or self.synced < self.writer.bytes_appended:
                await self._sync()

    async def _sync(self) -> None:
        """Start an fsync unless one is running, and wait for it: whoever comes meanwhile shares it."""
        if self._running is None:
            self._running = asyncio.ensure_future(self._sync_once())
        await asyncio.shield(self._running)

    def running_for(self) -> float:
        """Seconds the running fsync has taken so far (0 when none runs)."""
        return time.monotonic() - self._started if self._running is not None else 0.0

    async def _sync_once(self) -> None:
        self._started = time.monotonic()
        try:
            fd, covered = self.writer.dup_active()
            if fd is not None:
                await asyncio.get_running_loop().run_in_executor(self._thread, self._fsync, fd)
            if self.writer.sync_error is not None:  # a segment sealed meanwhile could not be synced
                raise OSError(self.writer.sync_error)
            self.synced = max(self.synced, covered)
            if self.failure is not None:
                log.info("audit spool syncs again")
            self.failure = None
        except Exception as exc:  # OSError above all; anything else must not wedge every later commit
            if self.failure is None:
                log.error("cannot sync the audit spool", extra={"reason": str(exc)})
            self.failure = f"cannot sync the audit spool: {getattr(exc, 'strerror', None) or exc}"
            self.writer.sync_error = None
        finally:
            self._running = None

    def _fsync(self, fd: int) -> None:
        started = time.perf_counter()
        try:
            self.fsync(fd)
        finally:
            os.close(fd)
            self.on_fsync(time.perf_counter() - started)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
