"""The active segment: each record appended with one write, sealed by size or age.

It belongs to the event-loop thread (`append`, `seal_if_due`) and takes no lock; `seal` also
runs at shutdown, when no request runs any more. Where the file lives is the spool's business.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from botscore.audit.spool import SpoolDirectory

log = logging.getLogger("botscore.spool")


class SpoolUnavailable(Exception):
    """The spool cannot take the record (disk full, folder unwritable); the message says why."""


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
    ) -> None:
        self.spool = spool
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.durable_seal = durable_seal  # fsync a segment before sealing it (BOTSCORE_AUDIT_SYNC other than none)
        self.fsync = fsync
        self._fd: int | None = None
        self._name = ""
        self._opened_at = 0.0
        self._bytes = 0
        self.records_written = 0  # record lines
        self.bytes_appended = 0  # only ever grows; the audit log's usage estimate reads it
        self.sync_error: str | None = None  # a failed fsync while sealing, for the Syncer to report

    def append(self, line: bytes) -> None:
        """Append one record line with one write; SpoolUnavailable if the disk refuses it."""
        fd = self._fd
        if fd is None:
            fd = self._open()
        try:
            written = os.write(fd, line)
        except OSError as exc:
            name = self._name
            self._abandon()  # never write to this fd again (EIO, ESTALE: it may be gone); the next append opens anew
            raise SpoolUnavailable(f"cannot write {name}: {exc.strerror}") from None
        if written != len(line):
            # A short write (disk full) would leave a torn line in the middle; cut it off.
            try:
                os.ftruncate(fd, self._bytes)
            except OSError:
                self._abandon()  # the torn line stays; the segment is repaired when shipped
            raise SpoolUnavailable(f"cannot write {self._name}: short write, disk full")
        self._bytes += written
        self.bytes_appended += written
        self.records_written += line.count(b"\n")
        if self._bytes >= self.max_bytes:
            try:
                self._seal()
            except OSError as exc:  # the record is written; sealing is retried at the next tick
                log.error("cannot seal a full segment", extra={"segment": self._name, "reason": str(exc)})

    def _open(self) -> int:
        now = time.time()
        try:
            self._name, fd = self.spool.create_active(now)
        except OSError as exc:
            raise SpoolUnavailable(f"cannot create a segment in {self.spool.directory}: {exc.strerror}") from None
        self._fd = fd
        self._opened_at = now
        self._bytes = 0
        return fd

    @property
    def active_bytes(self) -> int:
        """Bytes in the active segment (0 when none is open)."""
        return self._bytes if self._fd is not None else 0

    @property
    def opened_at(self) -> float | None:
        """Wall-clock time of the active segment's first record, or None when it holds none."""
        return self._opened_at if self._fd is not None and self._bytes else None

    def seal_if_due(self, now: float | None = None) -> None:
        """Seal the active segment once it is older than the age bound (event-loop thread)."""
        now = time.time() if now is None else now
        if self._fd is not None and now - self._opened_at >= self.max_age:
            self._seal()

    def seal(self) -> None:
        """Seal the active segment now (at shutdown, or from the event-loop thread)."""
        self._seal()

    def dup_active(self) -> tuple[int | None, int]:
        """A duplicate of the active segment's fd (None when none is open; the caller closes it) and
        bytes_appended at this moment: an fsync of the duplicate makes every byte appended so far
        durable, since sealed segments were synced when sealed. Event-loop thread, like `append`."""
        return (os.dup(self._fd) if self._fd is not None else None), self.bytes_appended

    def _seal(self, *, suspect: bool = False) -> None:
        if self._fd is None:
            return
        if self.durable_seal and self._bytes:
            try:
                self.fsync(self._fd)
            except OSError as exc:
                self.sync_error = f"cannot sync {self._name}: {exc.strerror or exc}"
                raise
        self.spool.seal(self._name, self._opened_at, empty=self._bytes == 0, suspect=suspect)
        self._close()
        if self.durable_seal:
            try:
                self.spool.sync_sealed()  # the rename too, so it survives the machine
            except OSError as exc:
                self.sync_error = f"cannot sync the sealed folder: {exc.strerror or exc}"

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None

    def _abandon(self) -> None:
        """Stop writing to a segment that may end in a torn line; a new one opens at the next append."""
        try:
            self._seal(suspect=True)
        except OSError:
            self._close()  # it stays in active/: the next start claims it, and checks its lines
