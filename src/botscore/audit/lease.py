"""Ownership of a worker folder: the lease, and the fencing token in the folder's lock file.

The lock file holds "<host>\\n<holder>\\n"; the holder line is the fencing token. A worker owns its
folder while its lease runs. Each heartbeat (a thread, every lease / 4 at most 2 s) opens the lock
file anew (NFS revalidates a file on open: close-to-open consistency), finds its own holder line in
it, and touches it; the lease then runs for `adopt_after / 2` from the moment that beat *started*,
on CLOCK_BOOTTIME, which keeps counting through SIGSTOP, a frozen VM or a suspended machine. A
worker appends only while its lease runs. A heartbeat that finds another holder's line raises
FolderTaken: the worker answers 503, drops its segment unsealed and works from a new folder.

An adopter of another host's folder writes its own token first and renames the active segments
only `fence` = lease + FENCE_MARGIN_SECONDS after (adoption.py). Why no answered record is lost
when a paused owner wakes up: let x be the start of the owner's last heartbeat that read its own
line. It read before the adopter's write at y, so x < y. Under `interval` and `none` the owner
appends only before x + lease, and the adopter renames the file after y + fence > x + lease.

That argument trusts the owner's clock to count the pause. Under `always` the release does not:
each round of fsyncs re-reads the token once its fsyncs returned (`holder`), and an answer goes out
only if that read found the generation its record was written to still owned (sync.py states why
that keeps every released record whatever any clock says). The lease only stops appends early.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path

FENCE_MARGIN_SECONDS = 1.0  # added to the lease an adopter waits out: threads' scheduling, clock rates


def lease_seconds(adopt_after: float) -> float:
    """How long a worker answers after its last heartbeat that proved it owns its folder."""
    return adopt_after / 2


def fence_seconds(adopt_after: float) -> float:
    """How long after writing its token an adopter waits before it takes the active segments."""
    return lease_seconds(adopt_after) + FENCE_MARGIN_SECONDS


# Seconds that keep counting while the process is stopped or the machine suspended. A partial, not a
# def: every append reads it twice (before and after its write), and a partial runs no Python frame.
boot_clock: Callable[[], float] = functools.partial(time.clock_gettime, time.CLOCK_BOOTTIME)


class SpoolUnavailable(Exception):
    """The spool cannot take the record (disk full, folder unwritable); the message says why."""


class LeaseLapsed(SpoolUnavailable):
    """No heartbeat proved the folder this worker's within its lease: records are refused, not lost."""


class FolderTaken(SpoolUnavailable):
    """Another worker adopted this worker's folder (it took this one for dead): answer 503, move out."""


def lock_content(host: str, holder: str) -> bytes:
    return f"{host}\n{holder}\n".encode()


def read_lock(fd: int) -> tuple[str, str]:
    """The writer's host and the holder's token; a lock from before tokens holds the host alone."""
    host, _, rest = os.pread(fd, 512, 0).decode(errors="replace").partition("\n")
    return host.strip(), rest.strip()


def write_token(fd: int, host: str, holder: str) -> None:
    """Write `holder` as the lock's token, durably: from then on the old holder's heartbeats fail."""
    content = lock_content(host, holder)
    os.pwrite(fd, content, 0)
    os.ftruncate(fd, len(content))
    os.fsync(fd)


def holder(lock: str | Path) -> str:
    """The token in `lock`, read through a new open (NFS asks the server: close-to-open); OSError if
    it cannot be read."""
    fd = os.open(lock, os.O_RDONLY)
    try:
        return read_lock(fd)[1]
    finally:
        os.close(fd)


class Lease:
    """Until when this worker may append to its folder, and whether it knows the folder taken."""

    def __init__(self, clock: Callable[[], float] = boot_clock) -> None:
        self.clock = clock  # passed in so that a test can stop it or set it back
        self.until = 0.0  # clock() time the lease runs out (an append compares it inline: `problem` says why)
        self.taken: str | None = None  # why the folder is no longer this worker's

    def renew(self, started: float, lease: float) -> None:
        """A heartbeat that started at `started` (this clock) proved the folder ours."""
        self.until = started + lease

    def start(self, started: float, lease: float) -> None:
        """A new folder: not taken, the lease running from `started`."""
        self.taken = None
        self.renew(started, lease)

    def lose(self, worker: str, why: str) -> FolderTaken:
        self.taken = f"this worker's spool folder {worker} was adopted by another worker ({why})"
        return FolderTaken(self.taken)

    def problem(self) -> SpoolUnavailable | None:
        """None while this worker provably owns its folder; else why not (FolderTaken once known taken)."""
        if self.taken is not None:
            return FolderTaken(self.taken)
        late = self.clock() - self.until
        if late > 0:
            return LeaseLapsed(
                f"cannot confirm that this worker still owns its spool folder (lease ran out {late:.1f} s ago)"
            )
        return None
