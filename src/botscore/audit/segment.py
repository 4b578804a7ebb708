"""The active segment: each record appended with one write, sealed by size or age.

Appends belong to the event-loop thread and take no lock. Sealing does not: a segment due to be
sealed is detached (the next append opens a new one) and handed to a seal thread, which fsyncs it
(when the sync mode asks), renames it into sealed/ and fsyncs that folder, so a slow or hung file
server never holds the event loop. Until its seal is done, a detached segment is still "unsynced"
for the Syncer (`dup_unsynced`). `seal()` seals everything at once in the caller's thread (at
shutdown, or in tests). Where the files live is the spool's business.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from botscore.audit.spool import FolderTaken, SpoolDirectory, SpoolUnavailable

__all__ = ["FolderTaken", "SegmentWriter", "SpoolUnavailable"]

log = logging.getLogger("botscore.spool")


@dataclass
class _Detached:
    """A segment no longer appended to, waiting for the seal thread."""

    fd: int
    name: str
    opened_at: float
    size: int
    generation: int  # the spool folder's generation it was opened in
    suspect: bool  # a write to it failed: it may end in a torn line


class SegmentWriter:
    """Appends record lines to one worker's active segment and seals it into the spool."""

    def __init__(
        self,
        spool: SpoolDirectory,
        *,
        max_bytes: int,
        max_age: float,
        durable_seal: bool = False,
        fsync: Callable[[int], None] = os.fsync,
        write: Callable[[int, bytes], int] = os.write,
    ) -> None:
        self.spool = spool
        self.write = write  # os.write; a test holds one to play a write stalled on a hung mount
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.durable_seal = durable_seal  # fsync a segment before sealing it (BOTSCORE_AUDIT_SYNC other than none)
        self.fsync = fsync
        self._fd: int | None = None
        self._name = ""
        self._opened_at = 0.0
        self._bytes = 0
        self._generation = 0
        self.generation_written = 0  # the folder generation the last append wrote to (sync.py releases by it)
        self.records_written = 0  # record lines
        self.bytes_appended = 0  # only ever grows; the audit log's usage estimate reads it
        self.sync_error: str | None = None  # a failed fsync while sealing, for the Syncer to report
        self._detached: list[_Detached] = []  # oldest first; guarded by _lock (the seal thread closes their fds)
        self._lock = threading.Lock()
        self._sealing = threading.Lock()  # one sealer at a time: the seal thread, or seal()
        self._sealing_since: float | None = None
        self._wake = threading.Event()
        self._sealer: threading.Thread | None = None
        self._stopped = False
        self._vanished = False  # set by a thread that found the active segment deleted: the loop replaces it
        self.segments_vanished = 0  # segments deleted from outside before they were sealed (their records lost)

    def append(self, line: bytes, records: int = 1) -> None:
        """Append `records` record lines (one, or a batch's) with one write; SpoolUnavailable if the disk
        refuses it or this worker cannot prove it still owns its folder (FolderTaken once it knows another
        worker adopted it)."""
        problem = self.spool.ownership_problem()
        if problem is not None:
            raise problem
        fd = self._fd
        if fd is not None and (self._generation != self.spool.generation or self._vanished):
            # Opened in a folder that was taken, or deleted from outside: the seal thread drops it.
            self._vanished = False
            self._detach()
            fd = None
        if fd is None:
            fd = self._open()
        generation, name = self._generation, self._name
        try:
            written = self.write(fd, line)
        except OSError as exc:
            self._abandon()  # never write to this fd again (EIO, ESTALE: it may be gone); the next append opens anew
            raise SpoolUnavailable(f"cannot write {name}: {exc.strerror}") from None
        if written != len(line):
            # A short write (disk full) would leave a torn line in the middle; cut it off.
            try:
                os.ftruncate(fd, self._bytes)
            except OSError:
                self._abandon()  # the torn line stays; the segment is repaired when shipped
            raise SpoolUnavailable(f"cannot write {name}: short write, disk full")
        self._bytes += written
        self.bytes_appended += written
        self.records_written += records  # told, not counted: line.count() was ~1,300 instructions a row
        self.generation_written = generation
        if self._bytes >= self.max_bytes:
            self._detach()
        # The write may have stalled (a hung mount) while the folder was adopted and its segment shipped:
        # the line then sits in a file nobody ships. No storage call here: what the heartbeat (or the
        # lease) knows now is checked, and `always` checks the lock itself after the fsync (sync.py).
        if generation != self.spool.generation or self.spool.taken:
            raise FolderTaken(f"this worker's spool folder was adopted by another worker while a write to {name} ran")
        problem = self.spool.ownership_problem()
        if problem is not None:
            raise problem

    def _open(self) -> int:
        now = time.time()
        try:
            self._name, fd, self._generation = self.spool.create_active(now)
        except OSError as exc:
            raise SpoolUnavailable(f"cannot create a segment in {self.spool.directory}: {exc.strerror}") from None
        self._fd = fd
        self._opened_at = now
        self._bytes = 0
        return fd

    @property
    def active_bytes(self) -> int:
        """Bytes not sealed yet: the active segment's and those waiting for the seal thread."""
        with self._lock:
            waiting = sum(d.size for d in self._detached)
        return waiting + (self._bytes if self._fd is not None else 0)

    @property
    def opened_at(self) -> float | None:
        """Wall-clock time of the oldest unsealed record, or None when there is none."""
        with self._lock:
            times = [d.opened_at for d in self._detached if d.size]
        if self._fd is not None and self._bytes:
            times.append(self._opened_at)
        return min(times, default=None)

    def sealing_for(self) -> float:
        """Seconds the running seal has taken so far (0 when none runs)."""
        since = self._sealing_since
        return time.monotonic() - since if since is not None else 0.0

    def seal_if_due(self, now: float | None = None) -> None:
        """Hand the active segment to the seal thread once it is older than the age bound, and retry
        seals that failed (event-loop thread; never waits for the disk)."""
        now = time.time() if now is None else now
        if self._fd is not None and now - self._opened_at >= self.max_age:
            self._detach()
        elif self._detached and self._sealing_since is None:
            self._submit()

    def seal(self) -> None:
        """Seal the active segment and every detached one now, in this thread (at shutdown, when no
        request runs any more); OSError if one cannot be sealed (it stays for the next start)."""
        if self._fd is not None:
            self._detach(submit=False)
        self._seal_detached(raise_errors=True)

    def dup_unsynced(self) -> tuple[list[int], int, int | None]:
        """Duplicates of the fds of every segment not sealed yet (the caller closes them), bytes_appended
        at this moment, and which of them is the active segment's (None if none is open): fsyncs of the
        duplicates make every byte appended so far durable, since sealed segments were synced when
        sealed. Event-loop thread, like `append`."""
        with self._lock:
            fds = [os.dup(d.fd) for d in self._detached]
        active = None
        if self._fd is not None:
            active = os.dup(self._fd)
            fds.append(active)
        return fds, self.bytes_appended, active

    def check_active(self, fd: int | None = None) -> bool:
        """True if the active segment (or `fd`, a duplicate of it) has no name left: deleted from outside.
        The next append then opens a new segment. One fstat: a thread's, never the event loop's."""
        if fd is None:
            with self._lock:  # the seal thread closes a detached fd under this lock: ours stays valid
                if self._fd is None:
                    return False
                fd = os.dup(self._fd)
            try:
                return self.check_active(fd)
            finally:
                os.close(fd)
        if os.fstat(fd).st_nlink:
            return False
        if not self._vanished:
            log.error("the active audit segment was deleted from outside; a new one is opened")
        self._vanished = True
        return True

    def close(self) -> None:
        """Stop the seal thread (after `seal`, at shutdown); a seal hung in the kernel is not waited for."""
        self._stopped = True
        self._wake.set()

    def _submit(self) -> None:
        """Wake the seal thread (a daemon: a seal hung on a dead file server never holds the exit)."""
        if self._sealer is None or not self._sealer.is_alive():
            self._stopped = False
            self._sealer = threading.Thread(target=self._seal_forever, name="botscore-seal", daemon=True)
            self._sealer.start()
        self._wake.set()

    def _seal_forever(self) -> None:
        while self._wake.wait() and not self._stopped:
            self._wake.clear()
            try:
                self._seal_detached()
            except Exception:  # the thread must outlive any surprise; the segment stays detached
                log.exception("sealing failed; retrying at the next tick")

    def _detach(self, *, suspect: bool = False, submit: bool = True) -> None:
        if self._fd is None:
            return
        detached = _Detached(self._fd, self._name, self._opened_at, self._bytes, self._generation, suspect)
        with self._lock:
            self._detached.append(detached)
        self._fd = None
        if submit:
            self._submit()

    def _abandon(self) -> None:
        """Stop writing to a segment that may end in a torn line; a new one opens at the next append."""
        self._detach(suspect=True)

    def _seal_detached(self, *, raise_errors: bool = False) -> None:
        """Seal the detached segments, oldest first (seal thread, or `seal`'s caller)."""
        with self._sealing:
            while True:
                with self._lock:
                    if not self._detached:
                        return
                    segment = self._detached[0]
                try:
                    self._seal_one(segment)
                except OSError as exc:
                    # It stays detached: retried at the next tick, or left in active/ for the next start.
                    log.error("cannot seal a segment", extra={"segment": segment.name, "reason": str(exc)})
                    if raise_errors:
                        raise
                    return
                with self._lock:
                    self._detached.remove(segment)
                    os.close(segment.fd)

    def _seal_one(self, segment: _Detached) -> None:
        if segment.generation != self.spool.generation:
            return  # its folder was adopted by another worker, and the segment with it: not ours to seal
        self._sealing_since = time.monotonic()
        try:
            if self.durable_seal and segment.size:
                try:
                    self.fsync(segment.fd)
                except OSError as exc:
                    self.sync_error = f"cannot sync {segment.name}: {exc.strerror or exc}"
                    raise
            try:
                self.spool.seal(segment.name, segment.opened_at, empty=segment.size == 0, suspect=segment.suspect)
            except FileNotFoundError:
                if self.spool.generation == segment.generation and not self.spool.taken:
                    # Deleted from outside (an operator, a cleanup job): its records are lost, and retrying
                    # would hold every later segment back. Dropped, counted, said once.
                    self.segments_vanished += 1
                    log.error("an audit segment was deleted before it was sealed", extra={"segment": segment.name})
                return  # or adopted meanwhile
            if self.durable_seal:
                try:
                    self.spool.sync_sealed()  # the rename too, so it survives the machine
                except OSError as exc:
                    self.sync_error = f"cannot sync the sealed folder: {exc.strerror or exc}"
        finally:
            self._sealing_since = None
