"""Fault judgement: whether a spool fault is this task's own (replace the task: /healthz 503) or one
every task shares (replacing tasks cannot help, and doing it everywhere would cycle the fleet).

    class          how it shows                                   judged
    EIO            write, fsync or heartbeat fails with EIO        own while another worker is seen
                                                                   writing the spool, else shared
    ESTALE         the same with ESTALE (a stale NFS handle)       as EIO
    lost mount     ENOTCONN (a FUSE daemon gone) from the scan     own: a mount that is gone is this
                                                                   task's; a new task mounts anew
    hang           a storage call running past 2 x the grace       own only while another worker is seen
                                                                   writing through a scan that returns;
                                                                   a scan that hangs too proves nothing:
                                                                   shared (unready, 503s; /healthz 200)

"Seen writing": another worker's lock file changed between two of this worker's scans (`PeerWatch`),
for 10 s (`LOCAL_FAULT_GRACE_SECONDS`) while this worker's spool was unusable. The scans run in a
thread of their own with a time bound, so a hung mount never holds the housekeeping thread, and
/healthz only reads the `local_fault` flag.
"""

from __future__ import annotations

import concurrent.futures
import errno
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from botscore.audit.adoption import PeerWatch

log = logging.getLogger("botscore.audit")

# A spool unusable for this long (5 heartbeats) while another worker's heartbeat is seen advancing
# in it is this worker's own fault (its mount, its process): /healthz turns 503 so the task is replaced.
LOCAL_FAULT_GRACE_SECONDS = 10.0
SCAN_WAIT_SECONDS = 1.0  # a scan of the other workers' locks that takes longer is left running: no evidence


class _Spool(Protocol):
    directory: Path

    def peer_heartbeats(self) -> dict[str, int]: ...


def is_local_fault(
    unusable_since: float | None, peer_advanced_at: float | None, now: float, grace: float = LOCAL_FAULT_GRACE_SECONDS
) -> bool:
    """True when this worker's spool has been unusable for longer than `grace` while another worker
    was seen writing to the same spool within the last `grace` (monotonic seconds). A spool nobody
    writes to (the file server down for everyone, or a single host) is never a local fault."""
    return (
        unusable_since is not None
        and now - unusable_since > grace
        and peer_advanced_at is not None
        and now - peer_advanced_at <= grace
    )


class FaultJudge:
    """Sets `local_fault` (read by /healthz) from the housekeeping thread, per the table above."""

    def __init__(self, spool: _Spool, grace: float = LOCAL_FAULT_GRACE_SECONDS) -> None:
        self.spool = spool
        self.grace = grace
        self.local_fault: str | None = None
        self._peers = PeerWatch()
        self._unusable_since: float | None = None  # monotonic time the spool became unusable
        self._scan: Future[dict[str, int]] | None = None  # a scan still running (a hung mount's)
        self._scanner = ThreadPoolExecutor(1, thread_name_prefix="botscore-peers")

    def judge(self, problem: str | None, now: float) -> None:
        """Judge this worker's spool `problem` (None: it works); other workers' locks are scanned only
        while it does not, so a healthy spool costs nothing here."""
        if problem is None:
            self._unusable_since = None
            self._peers.forget()
            self.local_fault = None
            return
        if self._unusable_since is None:
            self._unusable_since = now
        lost = self._look(now)
        overdue = now - self._unusable_since > self.grace
        if not (lost and overdue) and not is_local_fault(
            self._unusable_since, self._peers.advanced_at, now, self.grace
        ):
            if self.local_fault is not None:
                log.warning("other workers no longer seen writing to the audit spool: not a fault of this task")
            self.local_fault = None
            return
        why = "its mount is gone" if lost else "while other workers write to it"
        fault = (
            f"this task cannot use the audit spool {self.spool.directory} {why} "
            f"(for {now - self._unusable_since:.0f} s: {problem})"
        )
        if self.local_fault is None:
            log.error("audit spool fault of this task alone: /healthz answers 503", extra={"reason": fault})
        self.local_fault = fault

    def _look(self, now: float) -> bool:
        """Scan the other workers' locks (in the scanner thread, waited for a bounded time); True if the
        mount itself is gone (ENOTCONN)."""
        if self._scan is None:
            self._scan = self._scanner.submit(self.spool.peer_heartbeats)
        try:
            mtimes = self._scan.result(timeout=SCAN_WAIT_SECONDS)
        except concurrent.futures.TimeoutError:
            self._peers.forget()  # hung: no evidence either way; the same scan is waited for next time
            return False
        except OSError as exc:
            self._scan = None
            self._peers.forget()
            return exc.errno == errno.ENOTCONN
        self._scan = None
        self._peers.observe(mtimes, now)
        return False

    def close(self) -> None:
        self._scanner.shutdown(wait=False, cancel_futures=True)
