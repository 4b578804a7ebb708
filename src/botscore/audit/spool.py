"""The spool directory: each worker's folder, its lock, and its sealed segments.

This module owns the folder layout; nothing else computes a path in it:

    workers/<worker>/lock              flock held for the worker's lifetime; "<host>\\n<holder>\\n"
    workers/<worker>/active/<name>     the segment being appended to (see segment.py)
    workers/<worker>/sealed/<name>     closed segments waiting to be shipped
    workers/.gone-<worker>/            an adopted folder that a network file system's leftovers
                                       (.nfs*, .fuse_hidden*) keep from being removed yet

Invariants: a segment's name is fixed when it opens and encodes its object key, so a retried
upload overwrites the same object; a segment file is deleted only by `remove` (after the upload
was confirmed) or when it is empty. Who owns a folder is lease.py's business, taking over a dead
worker's is adoption.py's. None of this module's calls runs on the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from botscore.audit.adoption import Adoption, peer_heartbeats, tidy
from botscore.audit.lease import Lease, SpoolUnavailable, boot_clock, holder, write_token

SEGMENT_SUFFIX = ".jsonl"
OBJECT_SUFFIX = ".jsonl.gz"


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


def _safe_host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:63] or "host"


@dataclass(frozen=True)
class _Home:
    """This worker's current folder: replaced whole (never edited) when the worker moves out."""

    worker: str
    root: Path
    generation: int

    @functools.cached_property
    def lock(self) -> str:
        """Its lock file's path, made once: the Syncer opens it every round."""
        return os.path.join(self.root, "lock")

    def token(self, host: str) -> str:
        return f"{host}/{self.worker}"


class SpoolDirectory:
    """One worker's folder in the spool, and the sealed segments in it (shared with the shipper thread)."""

    SUFFIX = SEGMENT_SUFFIX

    def __init__(
        self,
        directory: Path,
        *,
        host: str | None = None,
        worker: str | None = None,
        clock: Callable[[], float] = boot_clock,
    ) -> None:
        self.directory = Path(directory)
        self.lease = Lease(clock)
        self.host = host or _safe_host()
        self.workers = self.directory / "workers"
        worker = worker or self._new_worker()
        self._home = _Home(worker, self.workers / worker, 0)
        # Bumped each time the worker moves to a new folder (a segment of an older one is not ours): its
        # home's, kept as a plain attribute, for every append reads it twice.
        self.generation = 0
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._sealed: dict[str, Segment] = {}
        self._seq = 0
        self._adoption = Adoption(self)

    @staticmethod
    def _new_worker() -> str:
        return f"{os.getpid()}.{secrets.token_hex(4)}"

    @property
    def worker(self) -> str:
        return self._home.worker

    @property
    def sealed_folder(self) -> Path:
        return self._home.root / "sealed"

    def open(self, lease: float = 15.0) -> None:
        """Create this worker's folder, whole under a temporary name, and lock it; the lease starts."""
        started = self.lease.clock()
        home = self._home
        self.workers.mkdir(parents=True, exist_ok=True)
        # A folder kept by an earlier start of this object (segments were left) is locked again in place.
        staging = home.root if home.root.is_dir() else self.workers / f".new-{home.worker}"
        (staging / "active").mkdir(parents=True, exist_ok=True)
        (staging / "sealed").mkdir(exist_ok=True)
        fd = os.open(staging / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            write_token(fd, self.host, home.token(self.host))
            if staging != home.root:
                os.rename(staging, home.root)
        except OSError:
            os.close(fd)
            raise
        self._lock_fd = fd
        self.lease.start(started, lease)

    def reopen(self, lease: float) -> None:
        """Move to a new folder after this one was taken: its segments are the adopter's now."""
        old, old_fd = self._home, self._lock_fd
        self._lock_fd = None
        worker = self._new_worker()
        self._home = _Home(worker, self.workers / worker, old.generation + 1)
        # Between these two stores an append still sees the old generation: it goes to the old folder, as
        # one a moment earlier would, which is taken (refused by the lease) or was removed from outside
        # (lost either way; under `always` the round's lock read refuses its answer).
        self.generation = self._home.generation
        with self._lock:
            self._sealed = {name: s for name, s in self._sealed.items() if old.root not in s.path.parents}
        if old_fd is not None:
            with contextlib.suppress(OSError):
                os.close(old_fd)
        self.open(lease)

    def heartbeat(self, lease: float) -> None:
        """Prove this worker still owns its folder and tell other hosts it is alive (the lock's mtime);
        renews the lease. FolderTaken if another worker's token is in the lock; OSError if unknown."""
        home = self._home
        if self._lock_fd is None:
            return
        started = self.lease.clock()
        lock = home.lock
        try:
            token = holder(lock)  # opened anew each time: an open revalidates NFS's cached copy
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ESTALE):
                raise self.lease.lose(home.worker, "its lock file is gone") from None
            raise
        if token and token != home.token(self.host):
            raise self.lease.lose(home.worker, f"the lock holds {token}")
        os.utime(lock)
        if self._home is home:
            self.lease.renew(started, lease)

    def owned_generation(self) -> int | None:
        """The generation of this worker's folder if its lock still holds this worker's token, read anew
        from the file server (no clock involved), else None; a lock holding another token marks the
        folder taken. One open and one read: the Syncer calls it once per round of fsyncs."""
        home = self._home
        try:
            token = holder(home.lock)
        except OSError:
            return None  # gone, or the server cannot say: nothing is proven
        if token and token != home.token(self.host):
            if self._home is home and self.lease.taken is None:
                self.lease.lose(home.worker, token)
            return None
        return home.generation

    @property
    def taken(self) -> bool:
        """True once a heartbeat found this folder adopted by another worker (until `reopen`)."""
        return self.lease.taken is not None

    def ownership_problem(self) -> SpoolUnavailable | None:
        """None while this worker provably owns its folder; else why not (FolderTaken once known taken)."""
        return self.lease.problem()

    def probe(self, lease: float = 15.0) -> None:
        """Open the folder if needed (a new one if this one was taken) and check that a file with data
        can be written in it; OSError if not."""
        if self.taken or (self._lock_fd is not None and not self._home.root.is_dir()):
            self.reopen(lease)  # taken, or removed behind our back: a new folder, never the old name again
        elif self._lock_fd is None:
            self.open(lease)
        probe = self._home.root / "active" / ".probe"
        try:
            probe.write_bytes(b"{}\n" * 1024)
        finally:
            with contextlib.suppress(FileNotFoundError):
                probe.unlink()

    def close(self) -> None:
        """Release the lock; an emptied folder is removed, one with segments left is claimed by the next start.

        The lock file is closed before it is removed: a network file system keeps a removed file that
        is still open as a hidden one (.nfs*, .fuse_hidden*), and the folder could not go.
        """
        self._adoption.close()
        if self._lock_fd is None:
            return
        fd, self._lock_fd = self._lock_fd, None
        root = self._home.root
        if not self.taken and not self._sealed:
            for folder in ("active", "sealed"):
                with contextlib.suppress(OSError):
                    (root / folder).rmdir()
            os.close(fd)
            if not any(root.glob("*/*")):
                tidy(root, ("lock",))
        else:
            os.close(fd)

    def create_active(self, opened_at: float) -> tuple[str, int, int]:
        """A new active segment's name, an append-only fd to it and the folder's generation; OSError
        if it cannot be created."""
        home = self._home
        self._seq += 1
        when = datetime.fromtimestamp(opened_at, UTC)
        name = object_key("", when, self.host, home.worker, self._seq)[: -len(OBJECT_SUFFIX)].replace("/", "+")
        name += SEGMENT_SUFFIX
        fd = os.open(home.root / "active" / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        return name, fd, home.generation

    def seal(self, name: str, opened_at: float, *, empty: bool, suspect: bool = False) -> None:
        """Move an active segment to sealed/ (rename first: on failure nothing changes); an empty one is deleted.

        A `suspect` segment may end in a torn line: it is shipped like a leftover, lines checked.
        """
        root = self._home.root
        if empty:
            os.unlink(root / "active" / name)
            return
        target = root / "sealed" / name
        os.rename(root / "active" / name, target)
        with self._lock:
            self._sealed[name] = Segment(target, name, opened_at, claimed=suspect)

    def sync_sealed(self) -> None:
        """fsync the sealed folder, so that the renames into it survive the machine."""
        fd = os.open(self._home.root / "sealed", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def sealed(self) -> list[Segment]:
        """Sealed segments, oldest first."""
        with self._lock:
            return sorted(self._sealed.values(), key=lambda s: (s.opened_at, s.name))

    def adopted(self, path: Path, opened_at: float) -> None:
        """A segment adoption.py renamed into our sealed/: shipped like a leftover, lines checked."""
        with self._lock:
            self._sealed[path.name] = Segment(path, path.name, opened_at, claimed=True)

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

    def claim_leftovers(self, adopt_after: float = 30.0) -> int:
        """Take over segments of dead workers (and of our own earlier lives); how many (adoption.py)."""
        return self._adoption.claim_leftovers(adopt_after)

    def peer_heartbeats(self) -> dict[str, int]:
        """The other workers' lock mtimes (ns) by folder name (adoption.py); OSError if unlistable."""
        return peer_heartbeats(self.workers, self._home.root.name)

    def usage_bytes(self) -> int:
        """Bytes of every segment in the spool, all workers' together."""
        return self.usage()[0]

    def usage(self) -> tuple[int, float | None]:
        """Bytes of every segment in the spool, all workers' together, and the oldest last write (mtime)
        among them, or None: a lower bound of the oldest unshipped record's time in the whole spool (a
        segment's first record is at most its maximum age older than its last)."""
        total, oldest = 0, None
        for dirpath, _, filenames in os.walk(self.workers):
            for filename in filenames:
                if filename.endswith(SEGMENT_SUFFIX):
                    try:
                        stat = os.stat(os.path.join(dirpath, filename))
                    except FileNotFoundError:  # shipped meanwhile
                        continue
                    total += stat.st_size
                    oldest = stat.st_mtime if oldest is None else min(oldest, stat.st_mtime)
        return total, oldest
