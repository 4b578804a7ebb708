"""The audit log's two threads: the heartbeat (renews the lease; moves to a new folder when this one
was adopted) and the housekeeping (reopens a failed spool, scans its room, checks the active segment,
judges faults). A slow scan of a large spool must not let the lease lapse, so they are apart."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from botscore.audit.health import FaultJudge
from botscore.audit.lease import FolderTaken
from botscore.audit.readiness import Readiness
from botscore.audit.segment import SegmentWriter
from botscore.audit.spool import SpoolDirectory
from botscore.ops.threads import daemon

log = logging.getLogger("botscore.audit")

HEARTBEAT_SECONDS = 2.0  # at most; more often when the lease is shorter (lease / 4)
REOPEN_SECONDS = 1.0  # a spool that failed is tried again this often


# The longest `stop` waits for each thread; part of the drain ECS's stop timeout covers (terraform/ecs.tf).
THREAD_JOIN_SECONDS = 5.0


class Upkeep:
    """Keeps this worker's folder usable and says why it is not (`unavailable`, `beat_failure`)."""

    def __init__(
        self,
        spool: SpoolDirectory,
        writer: SegmentWriter,
        room: Readiness,
        judge: FaultJudge,
        *,
        lease: float,
        tick: float,
        problems: Callable[[], str | None],
        after_scan: Callable[[], None],
    ) -> None:
        self.spool = spool
        self.writer = writer
        self.room = room
        self.judge = judge
        self.lease = lease
        self.tick = tick
        self.problems = problems  # what else makes the spool unusable (a failed fsync), for the judge
        self.after_scan = after_scan  # the refusals' report
        self.unavailable: str | None = "not started"
        self.beat_failure: str | None = None  # why the last heartbeat failed, while it fails
        self._last_open_attempt = 0.0
        self._open_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Open the folder (a failure is reported by /readyz, not raised), then the two threads."""
        self.open()
        self.refresh()
        for target, name in ((self._housekeep, "botscore-audit"), (self._beat, "botscore-heartbeat")):
            self._threads.append(daemon(target, name))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(THREAD_JOIN_SECONDS)

    def open(self) -> None:
        """Open the folder (a new one if ours was taken), prove it is ours and that it takes data."""
        with self._open_lock:
            self._last_open_attempt = time.monotonic()
            try:
                self.spool.probe(self.lease)
                self.spool.heartbeat(self.lease)
                self.writer.prepare()  # the first segment of this folder, opened ahead of any append
            except FolderTaken as exc:
                self.unavailable = str(exc)  # the next attempt (within a second) moves to a new folder
                return
            except OSError as exc:
                self.unavailable = f"cannot use {self.spool.directory}: {exc.strerror or exc}"
                return
            self.unavailable = None

    def refresh(self) -> None:
        if self.unavailable is not None and time.monotonic() - self._last_open_attempt >= REOPEN_SECONDS:
            self.open()
            if self.unavailable is None:
                log.info("audit spool available again", extra={"spool": str(self.spool.directory)})
        self.room.scan()
        self.after_scan()

    def _judge(self) -> None:
        """health.py's table: a failed open or append, heartbeat or fsync, or a storage call hung past
        twice the grace."""
        hung = self.room.running_storage(2 * self.judge.grace)
        problem = self.unavailable or self.beat_failure or self.problems() or hung
        self.judge.judge(problem, time.monotonic())

    def _housekeep(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                with contextlib.suppress(OSError):  # a spool that fails is judged below
                    self.writer.check_active()  # deleted from outside: the next append opens a new one
                self._judge()  # before the usage scan, which a broken spool may fail
                self.refresh()
            except Exception:  # the thread must outlive any surprise
                log.exception("audit housekeeping failed; retrying")

    def _beat(self) -> None:
        """Renew the lease on this worker's folder; when another worker adopted it, say so once and move
        to a new folder (meanwhile appends and answers are refused: lease.py)."""
        failing = False
        while not self._stop.wait(min(HEARTBEAT_SECONDS, self.lease / 4)):
            self.room.beat_started = time.monotonic()
            try:
                self.spool.heartbeat(self.lease)
                if failing:
                    log.info("audit spool heartbeat works again")
                failing = False
                self.beat_failure = None
            except FolderTaken as exc:
                log.warning(
                    "this worker's spool folder was adopted by another worker: refusing until it works "
                    "from a new folder",
                    extra={"reason": str(exc)},
                )
                self.open()
                if self.unavailable is None:
                    log.info("audit log works from a new spool folder", extra={"worker": self.spool.worker})
            except Exception as exc:  # OSError above all; the thread must outlive any surprise
                if not failing:
                    log.error("audit spool heartbeat failed; retrying", extra={"reason": str(exc)})
                failing = True
                self.beat_failure = f"the spool heartbeat fails: {exc}"
            finally:
                self.room.beat_started = None
