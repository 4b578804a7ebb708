"""Adoption of dead workers' folders, and the watch on live ones' heartbeats.

A folder of this host whose flock is free is adopted at once: the kernel (or the NFS client, for a
process of its own) frees a dead process's flock, so a free lock proves its writer dead. For
another host's folder a free flock proves nothing (an NFS lock is a lease the server frees some
time after its client went silent; two mounts may not share locks at all; a paused process holds
nothing), so adoption takes three steps: (1) the lock is free and its heartbeat is `adopt_after`
old; (2) the adopter writes its own holder line into the lock file and fsyncs it: the fencing
token, after which every heartbeat of the old owner fails (lease.py); (3) the sealed segments are
renamed into the adopter's `sealed/` at once (nothing is appended to a sealed segment), the active
ones only `fence_seconds` after the token was written. Each rename is done once by the file server,
so exactly one adopter gets each segment, and a rename whose reply was lost (NFS retries it and
reports ENOENT) is recognised by the segment being found at the adopter's target.

The same lock mtimes tell a worker whose spool fails whether other workers are still writing it
(`peer_heartbeats`, `PeerWatch`; health.py judges).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from botscore.audit.lease import Lease, fence_seconds, read_lock, write_token

STAGING_STALE_SECONDS = 60.0  # a worker folder being created takes milliseconds; one this old was abandoned
GONE_PREFIX = ".gone-"
# What network file systems leave in a folder while a removed file is still open somewhere.
NETWORK_LEFTOVERS = (".nfs", ".fuse_hidden")

log = logging.getLogger("botscore.spool")


def _remove_quietly(remove: Callable[[], None]) -> None:
    with contextlib.suppress(FileNotFoundError):  # another claimer got there first
        remove()


def tidy(folder: Path, names: tuple[str, ...]) -> bool:
    """Remove `names` (emptied sub-folders, then files) and `folder`, tolerating the hidden files a
    network file system keeps while a removed file is still open; True if the folder is gone."""
    for name in names:
        path = folder / name
        if path.is_dir():
            for leftover in path.iterdir():
                if leftover.name.startswith(NETWORK_LEFTOVERS):
                    with contextlib.suppress(OSError):  # EBUSY while still open: it goes when closed
                        leftover.unlink()
            with contextlib.suppress(OSError):
                path.rmdir()
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    try:
        folder.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


class Adopter(Protocol):
    """What adoption needs of the adopting worker's spool (spool.SpoolDirectory)."""

    workers: Path
    host: str
    lease: Lease

    @property
    def SUFFIX(self) -> str: ...  # the spool's constant

    @property
    def worker(self) -> str: ...

    @property
    def sealed_folder(self) -> Path: ...

    def adopted(self, path: Path, opened_at: float) -> None: ...


class Adoption:
    """Takes over the segments of dead workers for one SpoolDirectory (from its shipper thread)."""

    def __init__(self, spool: Adopter) -> None:
        self.spool = spool
        self._claims: dict[str, tuple[int, float]] = {}  # other folders we hold a token in: fd, when written

    def claim_leftovers(self, adopt_after: float = 30.0) -> int:
        """Take over segments of dead workers (and of our own earlier lives); return how many.

        A worker of another host counts as dead only when its heartbeat is `adopt_after` seconds old
        too, and its active segments are taken only once the fence after our token has passed.
        """
        workers = self.spool.workers
        claimed = 0
        for other in sorted(workers.iterdir()) if workers.is_dir() else []:
            if other.name == self.spool.worker:
                continue
            if other.name.startswith(".new-"):
                self._remove_stale_staging(other)
                continue
            if other.name.startswith(GONE_PREFIX):
                tidy(other, ("active", "sealed"))
                continue
            try:
                claimed += self._claim_from(other, adopt_after)
            except OSError as exc:  # a stray file, a lock we may not open: skip it, never stop claiming
                log.warning("cannot adopt from a worker folder", extra={"folder": other.name, "reason": str(exc)})
        return claimed

    def close(self) -> None:
        for fd, _ in self._claims.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._claims.clear()

    def _remove_stale_staging(self, staging: Path) -> None:
        """A worker died while creating its folder: nothing was written there yet.

        Only a folder left alone for STAGING_STALE_SECONDS counts: a worker starting right now has
        created its lock file but may not hold the lock yet, and must not lose its folder.
        """
        try:
            if time.time() - staging.stat().st_mtime < STAGING_STALE_SECONDS:
                return
            fd = os.open(staging / "lock", os.O_RDWR)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return  # being created right now
        try:
            for path in (staging / "active", staging / "sealed"):
                _remove_quietly(path.rmdir)
        except OSError:
            os.close(fd)
            return  # not empty: not ours to judge, leave it
        os.close(fd)  # before the lock file goes, so no hidden copy keeps the folder
        tidy(staging, ("lock",))

    def _claim_from(self, other: Path, adopt_after: float) -> int:
        held = self._claims.pop(other.name, None)
        token_at: float | None = None
        if held is not None:
            fd, token_at = held
        else:
            try:
                fd = os.open(other / "lock", os.O_RDWR)
            except FileNotFoundError:
                return 0  # being removed by another claimer
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    return 0  # its worker is alive
                raise
        keep = False
        clock = self.spool.lease.clock
        try:
            host, holder = read_lock(fd)
            mine = f"{self.spool.host}/{self.spool.worker}"
            if not host or host == self.spool.host:
                fenced = True  # a lock of this host (or from before hosts shared spools): flock decided
            elif token_at is not None and holder == mine:
                fenced = clock() - token_at >= fence_seconds(adopt_after)
            else:
                if time.time() - os.fstat(fd).st_mtime < adopt_after:
                    return 0  # its worker beat recently, or another adopter wrote its token recently
                write_token(fd, host, mine)  # from now on every heartbeat of the folder's owner fails
                token_at, fenced = clock(), False
            claimed = self._take(other, ("sealed", "active") if fenced else ("sealed",))
            if not fenced and token_at is not None:
                keep = True
                self._claims[other.name] = (fd, token_at)  # flock kept: this host's others leave it to us
                return claimed
        finally:
            if not keep:
                os.close(fd)  # before the lock file is removed (below), so no hidden copy keeps the folder
        if not tidy(other, ("active", "sealed", "lock")) and all(
            path.is_dir() or path.name.startswith(NETWORK_LEFTOVERS) for path in other.rglob("*")
        ):
            # Only hidden leftovers keep it: out of the way of every scan, removed once they are gone.
            with contextlib.suppress(OSError):
                os.rename(other, self.spool.workers / f"{GONE_PREFIX}{other.name}")
        return claimed

    def _take(self, other: Path, states: tuple[str, ...]) -> int:
        """Rename the other folder's segments in `states` into our sealed/; how many we got."""
        claimed = 0
        for state in states:
            folder = other / state
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                if path.name.startswith(".") or not path.name.endswith(self.spool.SUFFIX):
                    with contextlib.suppress(OSError):  # an older version's repair copy, a probe: no records
                        path.unlink()
                    continue
                target = self.spool.sealed_folder / path.name
                try:
                    segment = path.stat()
                    os.rename(path, target)
                except OSError:
                    if not target.exists():
                        continue  # another adopter's, or gone
                    segment = target.stat()  # renamed by us; the reply was lost and the retry failed
                if segment.st_size == 0:
                    _remove_quietly(target.unlink)
                    continue
                self.spool.adopted(target, segment.st_mtime)
                claimed += 1
        return claimed


def peer_heartbeats(workers: Path, mine: str) -> dict[str, int]:
    """The mtimes (ns) of the lock files of the workers other than `mine`, by folder name; OSError if
    the spool cannot be listed. Each lock is opened anew, so an NFS client asks the server (close-to-
    open), not its attribute cache. Called from a thread, never from the event loop."""
    found: dict[str, int] = {}
    for other in sorted(workers.iterdir()) if workers.is_dir() else []:
        if other.name == mine or other.name.startswith((".new-", GONE_PREFIX)):
            continue
        try:
            fd = os.open(other / "lock", os.O_RDONLY)
        except OSError:
            continue  # adopted and removed meanwhile, or a stray file
        try:
            found[other.name] = os.fstat(fd).st_mtime_ns
        finally:
            os.close(fd)
    return found


class PeerWatch:
    """Whether another worker is writing to the spool, judged from this worker's scans alone.

    Every heartbeat touches its worker's lock file; on NFS the mtime is the file server's clock, which
    may be minutes off this host's. So an mtime is never compared with this host's time, only with the
    same file's mtime at the previous scan: one that changed between two scans proves a live writer in
    between (whatever either clock says). When that was seen is kept on this host's monotonic clock.
    """

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self.advanced_at: float | None = None  # monotonic time of the last scan that saw a lock change

    def observe(self, mtimes: dict[str, int], now: float) -> bool:
        """Record a scan (`peer_heartbeats`) made at `now`; True if a lock changed since the last scan.
        A folder seen for the first time proves nothing yet: it may be a dead worker's leftover."""
        advanced = any(name in self._last and mtime != self._last[name] for name, mtime in mtimes.items())
        self._last = dict(mtimes)
        if advanced:
            self.advanced_at = now
        return advanced

    def forget(self) -> None:
        """Drop the last scan (it can no longer be compared with); what was seen advancing is kept."""
        self._last = {}

    def seen_within(self, seconds: float, now: float) -> bool:
        """True if a scan within the last `seconds` saw another worker's lock change."""
        return self.advanced_at is not None and now - self.advanced_at <= seconds
