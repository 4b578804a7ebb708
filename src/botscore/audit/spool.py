"""The spool directory: each worker's folder, its lock, its sealed segments, and dead workers' leftovers.

This module owns the folder layout; nothing else computes a path in it:

    workers/<worker>/lock              flock held for the worker's lifetime
    workers/<worker>/active/<name>     the segment being appended to (at most one; see segment.py)
    workers/<worker>/sealed/<name>     closed segments waiting to be shipped

Invariants: a segment's name is fixed when it opens and encodes its object key, so a retried
upload overwrites the same object; a segment file is deleted only by `remove` (after the upload
was confirmed) or when it is empty.

Adoption. A live worker holds the flock on its `lock` (which names its host) and touches it
every few seconds (`heartbeat`). Another worker adopts a folder whose lock it can take: at once
when the folder is of its own host (the kernel frees a dead process's flock), and for another
host only once the heartbeat is also older than `adopt_after`, because on a network file system
(EFS, NFSv4) a lock is a lease that the server frees only some time after its client died.
Segments are adopted by renaming them into the adopter's own `sealed/`: the server does each
rename once, so exactly one adopter gets each segment, and a rename whose reply was lost (NFS
retries it and reports ENOENT) is recognised by the segment being found at the adopter's target.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SEGMENT_SUFFIX = ".jsonl"
OBJECT_SUFFIX = ".jsonl.gz"
STAGING_STALE_SECONDS = 60.0  # a worker folder being created takes milliseconds; one this old was abandoned

log = logging.getLogger("botscore.spool")


def object_key(prefix: str, opened_at: datetime, host: str, worker: str, seq: int) -> str:
    """The S3 key of a segment, fixed when it opens: Athena partition projection on dt and hour (UTC)."""
    return f"{prefix}dt={opened_at:%Y-%m-%d}/hour={opened_at:%H}/{host}-{worker}-{seq:06d}{OBJECT_SUFFIX}"


@dataclass
class Segment:
    """A sealed segment waiting to be shipped."""

    path: Path
    name: str  # the object key without prefix, '/' as '+', and SEGMENT_SUFFIX
    opened_at: float  # wall-clock seconds of its first record (mtime for claimed leftovers)
    claimed: bool  # left by an earlier process (or suspect): its lines are checked before shipping

    def key(self, prefix: str) -> str:
        """The object key this segment is uploaded under."""
        return prefix + self.name[: -len(SEGMENT_SUFFIX)].replace("+", "/") + OBJECT_SUFFIX


def _remove_quietly(remove: Callable[[], None]) -> None:
    with contextlib.suppress(FileNotFoundError):  # another claimer got there first
        remove()


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _safe_host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:63] or "host"


class SpoolDirectory:
    """One worker's folder in the spool, and the sealed segments in it (shared with the shipper thread)."""

    def __init__(self, directory: Path, *, host: str | None = None, worker: str | None = None) -> None:
        self.directory = Path(directory)
        self.host = host or _safe_host()
        self.worker = worker or f"{os.getpid()}.{secrets.token_hex(4)}"
        self._workers = self.directory / "workers"
        self._root = self._workers / self.worker
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._sealed: dict[str, Segment] = {}
        self._seq = 0

    # -- this worker's folder ----------------------------------------------------

    def open(self) -> None:
        """Create this worker's folder, whole under a temporary name, and lock it."""
        self._workers.mkdir(parents=True, exist_ok=True)
        staging = self._workers / f".new-{self.worker}"
        (staging / "active").mkdir(parents=True, exist_ok=True)
        (staging / "sealed").mkdir(exist_ok=True)
        fd = os.open(staging / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, self.host.encode())
            os.rename(staging, self._root)
        except OSError:
            os.close(fd)
            raise
        self._lock_fd = fd

    def heartbeat(self) -> None:
        """Tell other hosts this worker is alive: the lock file's mtime is the last beat."""
        if self._lock_fd is not None:
            os.utime(self._root / "lock")

    def probe(self) -> None:
        """Open the folder if needed and check that a file with data can be written in it; OSError if not."""
        if not self._root.is_dir():
            self.open()
        probe = self._root / "active" / ".probe"
        try:
            probe.write_bytes(b"{}\n" * 1024)
        finally:
            with contextlib.suppress(FileNotFoundError):
                probe.unlink()

    def close(self) -> None:
        """Release the lock; an emptied folder is removed, one with segments left is claimed by the next start."""
        if self._lock_fd is None:
            return
        if not self._sealed:
            for path in (self._root / "active", self._root / "sealed", self._root / "lock", self._root):
                try:
                    path.rmdir() if path.is_dir() else path.unlink()
                except OSError:
                    break  # not empty after all: leave it for the next start
        os.close(self._lock_fd)
        self._lock_fd = None

    # -- the active segment (for segment.SegmentWriter) ---------------------------------------

    def create_active(self, opened_at: float) -> tuple[str, int]:
        """A new active segment's name and an append-only fd to it; OSError if it cannot be created."""
        self._seq += 1
        when = datetime.fromtimestamp(opened_at, UTC)
        name = object_key("", when, self.host, self.worker, self._seq)[: -len(OBJECT_SUFFIX)].replace("/", "+")
        name += SEGMENT_SUFFIX
        fd = os.open(self._root / "active" / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        return name, fd

    def seal(self, name: str, opened_at: float, *, empty: bool, suspect: bool = False) -> None:
        """Move an active segment to sealed/ (rename first: on failure nothing changes); an empty one is deleted.

        A `suspect` segment may end in a torn line: it is shipped like a leftover, lines checked.
        """
        if empty:
            os.unlink(self._root / "active" / name)
            return
        target = self._root / "sealed" / name
        os.rename(self._root / "active" / name, target)
        with self._lock:
            self._sealed[name] = Segment(target, name, opened_at, claimed=suspect)

    def sync_sealed(self) -> None:
        """fsync the sealed folder, so that the renames into it survive the machine."""
        _fsync_folder(self._root / "sealed")

    # -- sealed segments (the shipper's side) ------------------------------------------

    def sealed(self) -> list[Segment]:
        """Sealed segments, oldest first."""
        with self._lock:
            return sorted(self._sealed.values(), key=lambda s: (s.opened_at, s.name))

    def remove(self, segment: Segment) -> None:
        """Delete a segment whose upload was confirmed (or forget one that is gone)."""
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        with self._lock:
            self._sealed.pop(segment.name, None)

    def oldest_sealed(self) -> float | None:
        """Wall-clock time of the oldest sealed segment's first record, or None."""
        with self._lock:
            return min((s.opened_at for s in self._sealed.values()), default=None)

    # -- other workers' folders ---------------------------------------------------------

    def claim_leftovers(self, adopt_after: float = 30.0) -> int:
        """Take over segments of dead workers (and of our own earlier lives); return how many.

        A worker of another host counts as dead only when its heartbeat is `adopt_after` seconds old too.
        """
        claimed = 0
        for other in sorted(self._workers.iterdir()) if self._workers.is_dir() else []:
            if other.name == self.worker:
                continue
            if other.name.startswith(".new-"):
                self._remove_stale_staging(other)
                continue
            try:
                claimed += self._claim_from(other, adopt_after)
            except OSError as exc:  # a stray file, a lock we may not open: skip it, never stop claiming
                log.warning("cannot adopt from a worker folder", extra={"folder": other.name, "reason": str(exc)})
        return claimed

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
            for path in (staging / "active", staging / "sealed", staging / "lock", staging):
                _remove_quietly(path.rmdir if path.is_dir() else path.unlink)
        except OSError:
            pass  # not empty: not ours to judge, leave it
        finally:
            os.close(fd)

    def _claim_from(self, other: Path, adopt_after: float) -> int:
        try:
            fd = os.open(other / "lock", os.O_RDWR)
        except FileNotFoundError:
            return 0  # being removed by another claimer
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    return 0  # its worker is alive
                raise
            info = os.fstat(fd)
            host = os.pread(fd, 256, 0).decode(errors="replace")
            # Another host's worker that beat recently: its free lock may be a lease not yet expired on a
            # network file system. (A lock naming no host is from before hosts shared spools: flock decides.)
            if host and host != self.host and time.time() - info.st_mtime < adopt_after:
                return 0
            claimed = 0
            for state in ("sealed", "active"):
                folder = other / state
                for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                    if path.name.startswith(".") or not path.name.endswith(SEGMENT_SUFFIX):
                        _remove_quietly(path.unlink)  # an older version's repair copy: the segment is whole
                        continue
                    target = self._root / "sealed" / path.name
                    try:
                        segment = path.stat()
                        os.rename(path, target)
                    except OSError:
                        if not target.exists():
                            continue  # another adopter's, or gone
                        segment = target.stat()  # renamed by us; the reply was lost and the retry failed
                    if segment.st_size == 0:
                        target.unlink()
                        continue
                    with self._lock:
                        self._sealed[path.name] = Segment(target, path.name, segment.st_mtime, claimed=True)
                    claimed += 1
                _remove_quietly(folder.rmdir)
            _remove_quietly((other / "lock").unlink)
            _remove_quietly(other.rmdir)
            return claimed
        finally:
            os.close(fd)

    def usage_bytes(self) -> int:
        """Bytes of every segment in the spool, all workers' together."""
        total = 0
        for dirpath, _, filenames in os.walk(self._workers):
            for filename in filenames:
                if filename.endswith(SEGMENT_SUFFIX):
                    with contextlib.suppress(FileNotFoundError):  # shipped meanwhile
                        total += os.stat(os.path.join(dirpath, filename)).st_size
        return total
