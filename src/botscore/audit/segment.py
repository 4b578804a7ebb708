"""The active segment: each record appended with one write, sealed by size or age.

Appends belong to the event-loop thread and take no lock, and make no storage call but the
write(): the segment they write to was opened ahead by the seal thread (`preopen`, the service's
way; tools and tests open it in place). A segment due to be sealed is detached (the next append
takes the next one) and handed to the seal thread (sealer.py). `seal()` seals everything at once
in the caller's thread (at shutdown, or in tests). Where the files live is the spool's business.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from botscore.audit.lease import FolderTaken, LeaseLapsed, SpoolUnavailable
from botscore.audit.sealer import Detached, Sealer
from botscore.audit.spool import SpoolDirectory

__all__ = ["FolderTaken", "LeaseLapsed", "NotOpenYet", "SegmentWriter", "SpoolUnavailable", "Unreleased"]

log = logging.getLogger("botscore.spool")


class NotOpenYet(SpoolUnavailable):
    """The next segment is still being opened (a slow file server): this record is refused, the next
    append tries again; nothing failed."""


class Unreleased(SpoolUnavailable):
    """The record was written, but its folder is no longer provably this worker's: its answer is a 503,
    and no refusal row is added (the record's own row may still be shipped: docs/audit-log.md)."""


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
        preopen: bool = False,
    ) -> None:
        self.spool = spool
        self.sealer = Sealer(spool, max_age=max_age, durable=durable_seal, fsync=fsync, preopen=preopen)
        self.write = write  # os.write; a test holds one to play a write stalled on a hung mount
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._fd: int | None = None
        self._name = ""
        self._opened_at = 0.0
        self._bytes = 0
        self._generation = 0
        self.generation_written = 0  # the folder generation the last append wrote to (sync.py releases by it)
        self.records_written = 0  # record lines
        self.bytes_appended = 0  # only ever grows; the audit log's usage estimate reads it
        self._vanished = False  # set by a thread that found the active segment deleted: the loop replaces it

    def append(self, line: bytes, records: int = 1, *, fenced: bool = True) -> None:
        """Append `records` record lines (one, or a batch's) with one write; SpoolUnavailable if the disk
        refuses it or this worker cannot prove it still owns its folder (FolderTaken once it knows another
        worker adopted it). Not `fenced`: the row of a refusal, written to the open segment of a folder
        not known to be taken though its lease lapsed (no answer waits for it; a new segment is not opened)."""
        # The lease is read inline, not through lease.problem() (only when it fails: it says why):
        # two checks every append, each a call less.
        spool = self.spool
        lease = spool.lease
        if not fenced:
            if self._fd is None or self._generation != spool.generation or lease.taken is not None:
                raise SpoolUnavailable("no segment of a folder not known to be taken is open")
        elif lease.taken is not None or lease.clock() > lease.until:
            problem = lease.problem()
            if problem is not None:  # else renewed meanwhile (the heartbeat thread)
                raise problem
        fd = self._fd
        if fd is not None and (self._generation != spool.generation or self._vanished):
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
            self._detach(suspect=True)  # never written to again (EIO, ESTALE: it may be gone; may be torn)
            raise SpoolUnavailable(f"cannot write {name}: {exc.strerror}") from None
        if written != len(line):
            # A short write (disk full) would leave a torn line in the middle; cut it off.
            try:
                os.ftruncate(fd, self._bytes)
            except OSError:
                self._detach(suspect=True)  # the torn line stays; the segment is repaired when shipped
            raise SpoolUnavailable(f"cannot write {name}: short write, disk full")
        self._bytes += written
        self.bytes_appended += written
        self.records_written += records  # told, not counted: line.count() was ~1,300 instructions a row
        self.generation_written = generation
        if self._bytes >= self.max_bytes and self.sealer.ready():
            self._detach()
        # The write may have stalled (a hung mount) while the folder was adopted and its segment shipped:
        # the line then sits in a file nobody ships. No storage call here: what the heartbeat (or the
        # lease) knows now is checked, and `always` checks the lock itself after the fsync (sync.py).
        if generation != spool.generation or lease.taken is not None:
            raise FolderTaken(f"this worker's spool folder was adopted by another worker while a write to {name} ran")
        if fenced and lease.clock() > lease.until:
            problem = lease.problem()
            if problem is not None:
                raise Unreleased(str(problem))

    def _open(self) -> int:
        now = time.time()
        if self.sealer.preopen:
            spare = self.sealer.take_spare()  # opened ahead: an open can wait on a file server, the loop must not
            if spare is None:
                raise NotOpenYet(f"no segment is open yet in {self.spool.directory}: one is being created")
            self._name, fd, self._generation = spare.name, spare.fd, spare.generation
        else:
            try:
                self._name, fd, self._generation = self.spool.create_active(now)
            except OSError as exc:
                raise SpoolUnavailable(f"cannot create a segment in {self.spool.directory}: {exc.strerror}") from None
        self._fd = fd
        self._opened_at = now
        self._bytes = 0
        return fd

    def prepare(self) -> None:
        """Open the next segment ahead, now, in this thread (start-up, a new folder); OSError if it cannot."""
        self.sealer.prepare()

    @property
    def sync_error(self) -> str | None:
        return self.sealer.sync_error

    @sync_error.setter
    def sync_error(self, value: str | None) -> None:
        self.sealer.sync_error = value

    @property
    def segments_vanished(self) -> int:
        return self.sealer.segments_vanished

    @property
    def active_bytes(self) -> int:
        """Bytes not sealed yet: the active segment's and those waiting for the seal thread."""
        with self.sealer.lock:
            waiting = sum(d.size for d in self.sealer.detached)
        return waiting + (self._bytes if self._fd is not None else 0)

    @property
    def opened_at(self) -> float | None:
        """Wall-clock time of the oldest unsealed record, or None when there is none."""
        with self.sealer.lock:
            times = [d.opened_at for d in self.sealer.detached if d.size]
        if self._fd is not None and self._bytes:
            times.append(self._opened_at)
        return min(times, default=None)

    def sealing_for(self) -> float:
        """Seconds the running seal has taken so far (0 when none runs)."""
        return self.sealer.sealing_for()

    def seal_if_due(self, now: float | None = None) -> None:
        """Hand the active segment to the seal thread once it is older than the age bound, retry seals
        that failed, renew a spare (event-loop thread; never waits for the disk)."""
        now = time.time() if now is None else now
        if self._fd is not None and now - self._opened_at >= self.max_age and self.sealer.ready():
            self._detach()
        elif (self.sealer.detached or self.sealer.spare_due(now)) and self.sealer.idle():
            self.sealer.submit()

    def seal(self) -> None:
        """Seal the active segment and every detached one now, in this thread (at shutdown, when no
        request runs any more); OSError if one cannot be sealed (it stays for the next start)."""
        if self._fd is not None:
            self._detach(submit=False)
        self.sealer.seal_all(raise_errors=True)

    def dup_unsynced(self) -> tuple[list[int], int, list[Detached | None]]:
        """Duplicates of the fds of every segment not sealed yet (the caller closes them), bytes_appended
        at this moment, and whose each is (None: the active segment's): fsyncs of the duplicates make
        every byte appended so far durable, since sealed segments were synced when sealed. Event loop."""
        current = self.spool.generation  # a folder adopted since is not synced: its records are 503s anyway
        with self.sealer.lock:  # the seal thread closes their fds under this lock
            owners: list[Detached | None] = [d for d in self.sealer.detached if d.generation == current]
            fds = [os.dup(d.fd) for d in owners if d is not None]
        if self._fd is not None and self._generation == current:
            fds.append(os.dup(self._fd))
            owners.append(None)
        return fds, self.bytes_appended, owners

    def gone(self, fds: list[int], owners: list[Detached | None]) -> bool:
        """True if a segment of these duplicates (`dup_unsynced`) has no name left though it is not sealed:
        deleted from outside. An active one is then replaced at the next append. Not the loop's: fstats."""
        current = self.spool.generation  # a segment of a folder adopted since is its adopter's to ship
        for fd, owner in zip(fds, owners, strict=True):
            if os.fstat(fd).st_nlink:
                continue
            if owner is None:
                if self._generation == current:
                    self._vanished = True
                    return True
                continue
            if owner.generation == current and not owner.renamed:  # else sealed (synced), shipped, deleted
                return True
        return False

    def check_active(self) -> bool:
        """True if the active segment has no name left: deleted from outside; the next append then opens
        a new one. One fstat: the housekeeping thread's, so that `none` finds it too."""
        with self.sealer.lock:  # the seal thread closes a detached fd under this lock: ours stays valid
            if self._fd is None:
                return False
            fd = os.dup(self._fd)
        try:
            return self.gone([fd], [None])
        finally:
            os.close(fd)

    def close(self) -> None:
        """Stop the seal thread (after `seal`, at shutdown) and remove the spare segment."""
        self.sealer.close()

    def _detach(self, *, suspect: bool = False, submit: bool = True) -> None:
        if self._fd is None:
            return
        segment = Detached(self._fd, self._name, self._opened_at, self._bytes, self._generation, suspect)
        self.sealer.hand(segment, submit=submit)
        self._fd = None
