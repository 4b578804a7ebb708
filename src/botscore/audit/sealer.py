"""The seal thread: segments detached by the writer are fsynced (when the sync mode asks), renamed
into sealed/ and that folder fsynced, and the next segment is opened ahead, so that a slow or hung
file server never holds the event loop. Until its seal is done, a detached segment is still
"unsynced" for the Syncer (`SegmentWriter.dup_unsynced`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from botscore.audit.spool import SpoolDirectory
from botscore.ops.threads import daemon

log = logging.getLogger("botscore.spool")


@dataclass
class Detached:
    """A segment no longer appended to, waiting for the seal thread."""

    fd: int
    name: str
    opened_at: float
    size: int
    generation: int  # the spool folder's generation it was opened in
    suspect: bool  # a write to it failed: it may end in a torn line
    renamed: bool = False  # its seal began: it may be in sealed/, and then shipped and deleted


@dataclass
class Spare:
    """An empty segment opened ahead by the seal thread, so that no append ever opens a file."""

    name: str
    fd: int
    generation: int
    created: float  # wall-clock seconds its name (the object key's hour) was taken from


class Sealer:
    """Seals detached segments, oldest first, and keeps a spare segment open (`preopen`)."""

    def __init__(
        self, spool: SpoolDirectory, *, max_age: float, durable: bool, fsync: Callable[[int], None], preopen: bool
    ) -> None:
        self.spool = spool
        self.max_age = max_age
        self.durable = durable  # fsync a segment before sealing it (BOTSCORE_AUDIT_SYNC other than none)
        self.fsync = fsync
        self.preopen = preopen
        self.lock = threading.Lock()  # guards `detached` and `spare` (this thread closes their fds)
        self.detached: list[Detached] = []  # oldest first
        self.spare: Spare | None = None
        self.sync_error: str | None = None  # a failed fsync while sealing, for the Syncer to report
        self.segments_vanished = 0  # segments deleted from outside before they were sealed (records lost)
        self._sealing = threading.Lock()  # one sealer at a time: the seal thread, or seal()
        self._since: float | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def hand(self, segment: Detached, *, submit: bool = True) -> None:
        with self.lock:
            self.detached.append(segment)
        if submit:
            self.submit()

    def take_spare(self) -> Spare | None:
        """The spare of the current folder, if one is open (event loop); the thread opens the next."""
        with self.lock:
            spare = self.spare
            if spare is not None and spare.generation == self.spool.generation:
                self.spare = None
            else:
                spare = None
        self.submit()
        return spare

    def ready(self) -> bool:
        """True unless a spare is wanted and not open yet: the writer then keeps its segment a while
        longer (past its size or age bound) rather than refuse records."""
        spare = self.spare
        return not self.preopen or (spare is not None and spare.generation == self.spool.generation)

    def spare_due(self, now: float) -> bool:
        spare = self.spare
        if not self.preopen:
            return False
        return spare is None or spare.generation != self.spool.generation or now - spare.created >= self.max_age

    def prepare(self) -> None:
        """Have an empty segment open in the current folder for the next append, not older than the age
        bound (its name fixes the object key's hour); OSError if it cannot be created. Not the loop's."""
        now = time.time()
        if not self.spare_due(now):
            return
        name, fd, generation = self.spool.create_active(now)
        with self.lock:
            old, self.spare = self.spare, Spare(name, fd, generation, now)
        if old is not None:
            self._discard(old)

    def _discard(self, spare: Spare) -> None:
        os.close(spare.fd)
        if spare.generation == self.spool.generation:  # else in a folder taken since: its adopter removes it
            with contextlib.suppress(OSError):
                self.spool.seal(spare.name, spare.created, empty=True)

    def sealing_for(self) -> float:
        """Seconds the running seal has taken so far (0 when none runs)."""
        since = self._since
        return time.monotonic() - since if since is not None else 0.0

    def idle(self) -> bool:
        return self._since is None

    def submit(self) -> None:
        """Wake the seal thread (a daemon: a seal hung on a dead file server never holds the exit)."""
        if self._thread is None or not self._thread.is_alive():
            self._stopped = False
            self._thread = daemon(self._seal_forever, "botscore-seal")
        self._wake.set()

    def close(self) -> None:
        """Stop the thread (a seal hung in the kernel is not waited for) and remove the spare."""
        self._stopped = True
        self._wake.set()
        with self.lock:
            spare, self.spare = self.spare, None
        if spare is not None:
            with contextlib.suppress(OSError):
                self._discard(spare)

    def _seal_forever(self) -> None:
        while self._wake.wait() and not self._stopped:
            self._wake.clear()
            if self.preopen:  # first: the writer waits for it, seals wait for nobody
                try:
                    self.prepare()
                except OSError as exc:  # the writer keeps its segment (or refuses) meanwhile; retried at the next tick
                    log.error("cannot open the next audit segment", extra={"reason": str(exc)})
            try:
                self.seal_all()
            except Exception:  # the thread must outlive any surprise; the segment stays detached
                log.exception("sealing failed; retrying at the next tick")

    def seal_all(self, *, raise_errors: bool = False) -> None:
        """Seal the detached segments, oldest first (seal thread, or `seal`'s caller)."""
        with self._sealing:
            while True:
                with self.lock:
                    if not self.detached:
                        return
                    segment = self.detached[0]
                try:
                    self._seal_one(segment)
                except OSError as exc:
                    # It stays detached: retried at the next tick, or left in active/ for the next start.
                    log.error("cannot seal a segment", extra={"segment": segment.name, "reason": str(exc)})
                    if raise_errors:
                        raise
                    return
                with self.lock:
                    self.detached.remove(segment)
                    os.close(segment.fd)

    def _seal_one(self, segment: Detached) -> None:
        if segment.generation != self.spool.generation:
            return  # its folder was adopted by another worker, and the segment with it: not ours to seal
        self._since = time.monotonic()
        try:
            if self.durable and segment.size:
                try:
                    self.fsync(segment.fd)
                except OSError as exc:
                    self.sync_error = f"cannot sync {segment.name}: {exc.strerror or exc}"
                    raise
            segment.renamed = True  # before: once renamed, the shipper may delete it at any moment
            try:
                self.spool.seal(segment.name, segment.opened_at, empty=segment.size == 0, suspect=segment.suspect)
            except FileNotFoundError:
                if self.spool.generation == segment.generation and not self.spool.taken:
                    # Deleted from outside (an operator, a cleanup job): its records are lost, and retrying
                    # would hold every later segment back. Dropped, counted, said once.
                    self.segments_vanished += 1
                    log.error("an audit segment was deleted before it was sealed", extra={"segment": segment.name})
                return  # or adopted meanwhile
            if self.durable:
                try:
                    self.spool.sync_sealed()  # the rename too, so it survives the machine
                except OSError as exc:
                    self.sync_error = f"cannot sync the sealed folder: {exc.strerror or exc}"
        finally:
            self._since = None
