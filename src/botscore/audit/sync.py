"""When records reach the disk: BOTSCORE_AUDIT_SYNC.

    none      the kernel writes the page cache back when it likes: a process crash loses
              nothing (the write() is done), the loss of the machine or the task can.
    interval  an fsync at least every AUDIT_SYNC_INTERVAL_MS: at most that window is lost.
    always    group commit: an answer is sent only after an fsync that covers its record.

Commit window. Under `always` a new round of fsyncs starts at most once every COMMIT_WINDOW
(BOTSCORE_AUDIT_COMMIT_WINDOW_MS): a request whose record no running fsync covers waits at most that
window for the round that covers it, and every request appended meanwhile joins the same round. So
a worker makes at most 1000 / window fsyncs a second whatever its load; on EFS, which bills every
data operation as at least 32 KiB, that bounds the durable hop's storage operations per second, not
per request (docs/cost.md prices it). A request that comes after a quiet spell longer than the window
starts its round at once.

Group commit. An fsync covers what was appended before it started. A request whose record no
running fsync covers joins the next one to start, which starts at once (in the next turn of the
event loop, so every request that appended meanwhile joins it too) beside the running ones, once
the youngest of them has run OVERLAP_AFTER_SECONDS (1 ms) and fewer than SYNC_THREADS run;
otherwise as soon as one returns, covering everything appended until then. On a network file
system (EFS commits in about 5 ms) a request so waits about one fsync, not the rest of the
running one plus the next, and throughput under `always` is about concurrency / fsync latency;
on a local disk, whose fsyncs take well under a millisecond, one runs at a time and covers more.

Each fsync runs in a thread on duplicates of the fds of the segments not sealed yet (the event
loop keeps appending; the seal thread may seal a segment meanwhile); sealed segments were synced
when they were sealed, so one round of fsyncs covers every byte appended before it started.

An answer is released only if no fsync failed between its append and its release: after an
error, Linux reports it to one fsync only and may drop the dirty pages, so a later fsync's success
proves nothing about what was appended before the error. An fsync that takes longer than
ANSWER_WITHIN_SECONDS counts as failed for the answers waiting for it (a hung NFS server: they get
a 503 within that window, not a hang).

Ownership, without clocks. Each record carries the generation of the folder it was written to
(`SegmentWriter.generation_written`, kept by the audit log until the answer settles). Each round,
once its fsyncs have returned, re-reads the lock file of the worker's folder (opened anew: NFS's
close-to-open consistency asks the server) and finds this worker's token in it or not
(`SpoolDirectory.owned_generation`): one open and one read a round, none per request. An answer is
released only if the round that covered its record found its record's generation still owned.
Why that keeps every released record: the fsync put the record in the segment file on the server
before the read at time r; the read found our token, so an adopter's token, written before it
touches any active segment (spool.py, adoption step 2), was written after r; the adopter renames
the segment after that, so the file it ships holds the record. If the folder was taken, the read
finds the adopter's token (or no lock file) and the answer is a 503; if the worker already moved to a
new folder, the record's older generation is not the one the round proves, and the answer is a 503
too. Nothing here reads a clock, so a frozen VM whose clocks stopped, or a clock set back, cannot
make a stale lease look alive; the lease (spool.py) only stops appends early.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from botscore.audit.sealer import Detached
from botscore.audit.segment import SegmentWriter
from botscore.ops.threads import Workers

log = logging.getLogger("botscore.audit")

SyncMode = Literal["none", "interval", "always"]
SYNC_THREADS = 4  # fsyncs running at once (each holds a thread, blocked in the kernel)
ANSWER_WITHIN_SECONDS = 5.0  # an answer waits this long for its fsync, then it is a 503
OVERLAP_AFTER_SECONDS = 0.001  # another fsync starts beside one running this long (a network file system's)
COMMIT_WINDOW_SECONDS = 0.0  # rounds of fsyncs start at least this far apart (Terraform sets 25 ms on EFS)
# Where a record not yet answered ends and which folder holds it is kept this long at least (twice at
# most); an answer settled later than that (no fsync keeps one waiting past ANSWER_WITHIN_SECONDS) is
# a 503, for nothing proves its record kept.
NOTED_SECONDS = 30.0


@dataclass
class _Fsync:
    """One round of fsyncs: what it covers, and who waits for it."""

    done: asyncio.Future[None]  # answers waiting for it may go (it returned, failed or timed out)
    returned: asyncio.Future[None]  # its thread is free again
    covered: int = -1  # bytes_appended when it started; -1 until then
    failures: int = 0  # the Syncer's failure count when it started
    generation: int | None = None  # the folder generation its lock read proved still ours, after the fsyncs
    started: float = field(default_factory=time.monotonic)
    timer: asyncio.TimerHandle | None = None  # ANSWER_WITHIN_SECONDS from when the first request joined
    task: asyncio.Task[None] | None = None  # runs it (a reference, so the loop cannot drop it)


class Syncer:
    """Fsyncs the unsealed segments for the `interval` and `always` modes."""

    def __init__(
        self,
        writer: SegmentWriter,
        *,
        fsync: Callable[[int], None] = os.fsync,
        on_fsync: Callable[[float], object] = lambda seconds: None,
        threads: int = SYNC_THREADS,
        answer_within: float = ANSWER_WITHIN_SECONDS,
        overlap_after: float = OVERLAP_AFTER_SECONDS,
        window: float = COMMIT_WINDOW_SECONDS,
    ) -> None:
        self.writer = writer
        self.fsync = fsync
        self.on_fsync = on_fsync  # told each fsync's duration (the metrics' histogram)
        self.threads = threads
        self.answer_within = answer_within
        self.overlap_after = overlap_after
        self.window = window
        self.rounds = 0  # rounds of fsyncs started (each covers everything appended before it)
        self._last_started = float("-inf")  # monotonic time the last round started
        self.synced = 0  # writer.bytes_appended durable: covered by an fsync with no failure since it started
        self.synced_generation: int | None = None  # the folder generation the round that set `synced` proved ours
        self.failure: str | None = None  # why the last fsync failed; None once one succeeds
        self.last_seconds = 0.0  # how long the last fsync that returned took
        self.last_returned = 0.0  # monotonic time it returned
        self._failures = 0  # fsyncs failed so far
        self._last_failure = ""
        self._running: list[_Fsync] = []
        self._next: _Fsync | None = None  # started, waiting for the next turn of the loop or a thread
        self._pool = Workers(threads, "botscore-fsync")
        self._noted: dict[object, tuple[int, int]] = {}  # an unanswered record's end and folder generation
        self._noted_before: dict[object, tuple[int, int]] = {}  # the same, noted in the previous period
        self._noted_since = time.monotonic()

    def note(self, key: object) -> None:
        """Remember where the record just appended for `key` (a call) ends and which folder holds it,
        for `settle`. Event loop, right after the append."""
        self._noted[key] = (self.writer.bytes_appended, self.writer.generation_written)

    async def settle(self, key: object) -> bool:
        """`commit` for the record noted for `key`; False if none is (noted too long ago)."""
        where = self._noted.pop(key, None) or self._noted_before.pop(key, None)
        if where is None:
            self.failure = f"the record of an answer not settled within {NOTED_SECONDS:g} s cannot be proven kept"
            return False
        return await self.commit(*where)

    async def commit(self, end: int | None = None, generation: int | None = None) -> bool:
        """Wait until the record that ends at byte `end` of bytes_appended (the one appended last when
        None), written to folder `generation` (the last append's), is on disk and may be answered: False
        if an fsync failed or hung meanwhile, or the round that covered it could not prove that folder
        still ours (`failure` says why). Event loop."""
        target = self.writer.bytes_appended if end is None else end
        generation = self.writer.generation_written if generation is None else generation
        failures = self._failures
        while self.synced < target:
            await asyncio.shield(self._covering(target))
            if self._failures != failures:
                self.failure = self.failure or self._last_failure
                return False
        if self.synced_generation != generation:  # the fence: only what a provably owned folder holds
            self.failure = (
                "cannot prove that this worker still owns the spool folder its record was written to "
                "(it was adopted by another worker, or the worker moved to a new folder)"
            )
            return False
        return True

    async def catch_up(self) -> None:
        """Sync what was appended since the last fsync, or retry after a failure: the `interval` mode's
        job, every interval; in `always` mode, what brings a failed spool back with no request (the
        service's schedule runs it)."""
        target = self.writer.bytes_appended
        if self.failure is not None or self.synced < target:
            await asyncio.shield(self._covering(target))

    def running_for(self) -> float:
        """Seconds the oldest running fsync has taken so far (0 when none runs)."""
        running = self._running
        return time.monotonic() - running[0].started if running else 0.0

    def _covering(self, target: int) -> asyncio.Future[None]:
        """A running fsync that covers `target` bytes, or the next one to start (which will)."""
        for job in self._running:
            if job.covered >= target:
                return job.done
        if self._next is None:
            loop = asyncio.get_running_loop()
            self._next = _Fsync(loop.create_future(), loop.create_future())
            self._next.timer = loop.call_later(self.answer_within, self._timed_out, self._next)
            self._next.task = loop.create_task(self._run(self._next))
        return self._next.done

    async def _run(self, job: _Fsync) -> None:
        opens = self._last_started + self.window - time.monotonic()
        if opens > 0:  # the commit window: requests that append meanwhile join this round
            await asyncio.sleep(opens)
        while self._running:
            # Every thread busy: start when one is free. A young fsync (a local disk's take well under
            # a millisecond) is waited for too, so that the next one covers more; an older one is
            # a slow file server's, and the next starts beside it.
            young = self.overlap_after - (time.monotonic() - self._running[-1].started)
            if len(self._running) < self.threads and young <= 0:
                break
            returned = [running.returned for running in self._running]
            timeout = young if len(self._running) < self.threads else None
            await asyncio.wait(returned, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        self._next = None  # from here on, a request that appends joins the one after
        job.started = self._last_started = time.monotonic()
        if job.started - self._noted_since >= NOTED_SECONDS:  # a record noted but never settled (a shed call's)
            self._noted_before, self._noted, self._noted_since = self._noted, {}, job.started
        self.rounds += 1
        job.failures = self._failures
        self._running.append(job)
        try:
            fds, job.covered, owners = self.writer.dup_unsynced()
            job.generation = await self._pool.run(self._round, fds, owners)
            if self.writer.sync_error is not None:  # a segment sealed meanwhile could not be synced
                raise OSError(self.writer.sync_error)
            if job.generation is None:
                self._failed("cannot prove that this worker owns its spool folder: its lock holds no token of its")
            elif self._failures == job.failures:
                self.synced = max(self.synced, job.covered)
                self.synced_generation = job.generation
                if self.failure is not None:
                    log.info("audit spool syncs again")
                self.failure = None
        except Exception as exc:  # OSError above all; anything else must not wedge every later commit
            self._failed(f"cannot sync the audit spool: {getattr(exc, 'strerror', None) or exc}")
            self.writer.sync_error = None
        finally:
            if job.timer is not None:
                job.timer.cancel()
            self._running.remove(job)
            if not job.done.done():
                job.done.set_result(None)
            job.returned.set_result(None)

    def _timed_out(self, job: _Fsync) -> None:
        if not job.done.done():
            self._failed(f"an fsync of the audit spool has not returned within {self.answer_within:g} s")
            job.done.set_result(None)

    def _failed(self, reason: str) -> None:
        self._failures += 1
        if self.failure is None:
            log.error("cannot sync the audit spool", extra={"reason": reason})
        self.failure = self._last_failure = reason

    def _round(self, fds: list[int], owners: list[Detached | None]) -> int | None:
        """fsync `fds` (closed after), then read the lock: the folder generation still ours after them, or
        None. FileNotFoundError if a segment they belong to was deleted meanwhile (its records are lost)."""
        try:
            self._fsync_all(fds)
            if self.writer.gone(fds, owners):
                raise FileNotFoundError(errno.ENOENT, "a segment was deleted from outside")
        finally:
            for fd in fds:
                os.close(fd)
        return self.writer.spool.owned_generation()

    def _fsync_all(self, fds: list[int]) -> None:
        started = time.perf_counter()
        try:
            for fd in fds:
                self.fsync(fd)
        finally:
            self.last_seconds = time.perf_counter() - started
            self.last_returned = time.monotonic()
            if fds:
                self.on_fsync(self.last_seconds)

    def close(self) -> None:
        """Stop the threads; an fsync hung in the kernel is not waited for (shutdown has a deadline)."""
        self._pool.close()
