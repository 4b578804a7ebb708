"""The spool directory: each worker's folder, its lock, its sealed segments, and dead workers' leftovers.

This module owns the folder layout; nothing else computes a path in it:

    workers/<worker>/lock              flock held for the worker's lifetime; "<host>\\n<holder>\\n"
    workers/<worker>/active/<name>     the segment being appended to (see segment.py)
    workers/<worker>/sealed/<name>     closed segments waiting to be shipped
    workers/.gone-<worker>/            an adopted folder that a network file system's leftovers
                                       (.nfs*, .fuse_hidden*) keep from being removed yet

Invariants: a segment's name is fixed when it opens and encodes its object key, so a retried
upload overwrites the same object; a segment file is deleted only by `remove` (after the upload
was confirmed) or when it is empty.

Ownership is a lease, and the lock file holds a fencing token. A worker owns its folder while
its lease runs. Each heartbeat (a thread, every lease / 4 at most 2 s) opens the lock file anew
(NFS revalidates a file on open: close-to-open consistency), finds its own holder line in it,
and touches it; the lease then runs for `adopt_after / 2` from the moment that beat *started*,
on CLOCK_BOOTTIME, which keeps counting through SIGSTOP, a frozen VM or a suspended machine. A
worker appends only while its lease runs (`SegmentWriter.append`), and under `always` releases
an answer only if its lease still runs once the fsync covering the record has returned
(`Syncer.commit`). A heartbeat that finds another holder's line raises FolderTaken: the worker
answers 503, drops its segment unsealed and works from a new folder (`reopen`).

Adoption. A folder of this host whose flock is free is adopted at once: the kernel (or the NFS
client, for a process of its own) frees a dead process's flock, so a free lock proves its writer
dead. For another host's folder a free flock proves nothing (an NFS lock is a lease the server
frees some time after its client went silent; two mounts may not share locks at all; a paused
process holds nothing), so adoption takes three steps: (1) the lock is free and its heartbeat is
`adopt_after` old; (2) the adopter writes its own holder line into the lock file and fsyncs it:
the fencing token, after which every heartbeat of the old owner fails; (3) the sealed segments
are renamed into the adopter's `sealed/` at once (nothing is appended to a sealed segment), the
active ones only `fence` = lease + FENCE_MARGIN_SECONDS after the token was written.

Why no answered record is lost when a paused owner wakes up: let x be the start of the owner's
last heartbeat that read its own line. It read before the adopter's write at y, so x < y. The
owner releases an answer only before x + lease, and only after the fsync that put its record in
the file on the server. The adopter renames that file after y + fence > x + lease, so the file it
ships holds every record the owner released. What the owner appends later is never released
(its answer is a 503; its 200 row may still reach S3 through the adopter: docs/audit-log.md states the
reader's rule). Each rename is done once by the file server, so exactly one adopter gets each
segment, and a rename whose reply was lost (NFS retries it and reports ENOENT) is recognised by
the segment being found at the adopter's target. Under `interval` and `none` the records of the
last sync window before a lost lease may be lost, as when the host is lost.

A hung file server never freezes a worker: this module's calls run in the heartbeat, housekeeping,
seal and shipper threads. A heartbeat that hangs lets the lease run out, so the worker refuses
(503) from then on, and /readyz says so; what is on the loop is the append's write() to the page
cache and opening a new segment, which a hung NFS server blocks only once the client's dirty-page
limit is reached or a lookup must go to the server.

The same lock mtimes tell a worker whose spool fails whether other workers are still writing it
(`peer_heartbeats`, `PeerWatch`): if they are, the fault is its own mount's or process's, and
/healthz asks for the task to be replaced (log.py); if nobody is, it is everyone's, and it does not.
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
FENCE_MARGIN_SECONDS = 1.0  # added to the lease an adopter waits out: threads' scheduling, clock rates
GONE_PREFIX = ".gone-"
# What network file systems leave in a folder while a removed file is still open somewhere.
NETWORK_LEFTOVERS = (".nfs", ".fuse_hidden")

log = logging.getLogger("botscore.spool")


def object_key(prefix: str, opened_at: datetime, host: str, worker: str, seq: int) -> str:
    """The S3 key of a segment, fixed when it opens: Athena partition projection on dt and hour (UTC)."""
    return f"{prefix}dt={opened_at:%Y-%m-%d}/hour={opened_at:%H}/{host}-{worker}-{seq:06d}{OBJECT_SUFFIX}"


def lease_seconds(adopt_after: float) -> float:
    """How long a worker answers after its last heartbeat that proved it owns its folder."""
    return adopt_after / 2


def _clock() -> float:
    """Seconds that keep counting while the process is stopped or the machine suspended."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class SpoolUnavailable(Exception):
    """The spool cannot take the record (disk full, folder unwritable); the message says why."""


class FolderTaken(SpoolUnavailable):
    """Another worker adopted this worker's folder (it took this one for dead): answer 503, move out."""


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


def _lock_content(host: str, holder: str) -> bytes:
    return f"{host}\n{holder}\n".encode()


def _read_lock(fd: int) -> tuple[str, str]:
    """The writer's host and the holder's token; a lock from before tokens holds the host alone."""
    host, _, rest = os.pread(fd, 512, 0).decode(errors="replace").partition("\n")
    return host.strip(), rest.strip()


def _tidy(folder: Path, names: tuple[str, ...]) -> bool:
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


@dataclass(frozen=True)
class _Home:
    """This worker's current folder: replaced whole (never edited) when the worker moves out."""

    worker: str
    root: Path
    generation: int

    def token(self, host: str) -> str:
        return f"{host}/{self.worker}"


class SpoolDirectory:
    """One worker's folder in the spool, and the sealed segments in it (shared with the shipper thread)."""

    def __init__(
        self,
        directory: Path,
        *,
        host: str | None = None,
        worker: str | None = None,
        clock: Callable[[], float] = _clock,
    ) -> None:
        self.directory = Path(directory)
        self._clock = clock  # the lease's clock; passed in so a test can stop it or set it back
        self.host = host or _safe_host()
        self._workers = self.directory / "workers"
        worker = worker or self._new_worker()
        self._home = _Home(worker, self._workers / worker, 0)
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._sealed: dict[str, Segment] = {}
        self._seq = 0
        self._owned_until = 0.0  # _clock() time the lease runs out
        self._taken: str | None = None  # why this folder is no longer ours
        self._claims: dict[str, tuple[int, float]] = {}  # other folders we hold a token in: fd, when written

    @staticmethod
    def _new_worker() -> str:
        return f"{os.getpid()}.{secrets.token_hex(4)}"

    @property
    def worker(self) -> str:
        return self._home.worker

    @property
    def generation(self) -> int:
        """Bumped each time the worker moves to a new folder; a segment of an older one is not ours."""
        return self._home.generation

    @property
    def _root(self) -> Path:
        return self._home.root

    # -- this worker's folder ----------------------------------------------------

    def open(self, lease: float = 15.0) -> None:
        """Create this worker's folder, whole under a temporary name, and lock it; the lease starts."""
        started = self._clock()
        home = self._home
        self._workers.mkdir(parents=True, exist_ok=True)
        # A folder kept by an earlier start of this object (segments were left) is locked again in place.
        staging = home.root if home.root.is_dir() else self._workers / f".new-{home.worker}"
        (staging / "active").mkdir(parents=True, exist_ok=True)
        (staging / "sealed").mkdir(exist_ok=True)
        fd = os.open(staging / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            content = _lock_content(self.host, home.token(self.host))
            os.pwrite(fd, content, 0)
            os.ftruncate(fd, len(content))
            os.fsync(fd)
            if staging != home.root:
                os.rename(staging, home.root)
        except OSError:
            os.close(fd)
            raise
        self._lock_fd = fd
        self._taken = None
        self._owned_until = started + lease

    def reopen(self, lease: float) -> None:
        """Move to a new folder after this one was taken: its segments are the adopter's now."""
        old, old_fd = self._home, self._lock_fd
        self._lock_fd = None
        worker = self._new_worker()
        self._home = _Home(worker, self._workers / worker, old.generation + 1)
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
        started = self._clock()
        lock = home.root / "lock"
        try:
            fd = os.open(lock, os.O_RDONLY)  # anew each time: an open revalidates NFS's cached copy
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ESTALE):
                self._lost(home, "its lock file is gone")
            raise
        try:
            _, holder = _read_lock(fd)
        finally:
            os.close(fd)
        if holder and holder != home.token(self.host):
            self._lost(home, f"the lock holds {holder}")
        os.utime(lock)
        if self._home is home:
            self._owned_until = started + lease

    def _lost(self, home: _Home, why: str) -> None:
        self._taken = f"this worker's spool folder {home.worker} was adopted by another worker ({why})"
        raise FolderTaken(self._taken)

    def owned_generation(self) -> int | None:
        """The generation of this worker's folder if its lock still holds this worker's token, read anew
        from the file server (no clock involved), else None; a lock holding another token marks the
        folder taken. One open and one read: the Syncer calls it once per round of fsyncs."""
        home = self._home
        try:
            fd = os.open(home.root / "lock", os.O_RDONLY)  # anew: an open revalidates NFS's cached copy
            try:
                _, holder = _read_lock(fd)
            finally:
                os.close(fd)
        except OSError:
            return None  # gone, or the server cannot say: nothing is proven
        if holder and holder != home.token(self.host):
            if self._home is home and self._taken is None:
                self._taken = f"this worker's spool folder {home.worker} was adopted by another worker ({holder})"
            return None
        return home.generation

    @property
    def taken(self) -> bool:
        """True once a heartbeat found this folder adopted by another worker (until `reopen`)."""
        return self._taken is not None

    def ownership_problem(self) -> SpoolUnavailable | None:
        """None while this worker provably owns its folder; else why not (FolderTaken once known taken)."""
        if self._taken is not None:
            return FolderTaken(self._taken)
        late = self._clock() - self._owned_until
        if late > 0:
            return SpoolUnavailable(
                f"cannot confirm that this worker still owns its spool folder (lease ran out {late:.1f} s ago)"
            )
        return None

    def probe(self, lease: float = 15.0) -> None:
        """Open the folder if needed (a new one if this one was taken) and check that a file with data
        can be written in it; OSError if not."""
        if self._taken is not None or (self._lock_fd is not None and not self._root.is_dir()):
            self.reopen(lease)  # taken, or removed behind our back: a new folder, never the old name again
        elif self._lock_fd is None:
            self.open(lease)
        probe = self._root / "active" / ".probe"
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
        for fd, _ in self._claims.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._claims.clear()
        if self._lock_fd is None:
            return
        fd, self._lock_fd = self._lock_fd, None
        if self._taken is None and not self._sealed:
            for folder in ("active", "sealed"):
                with contextlib.suppress(OSError):
                    (self._root / folder).rmdir()
            os.close(fd)
            if not any(self._root.glob("*/*")):
                _tidy(self._root, ("lock",))
        else:
            os.close(fd)

    # -- the active segment (for segment.SegmentWriter) ---------------------------------------

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
        root = self._root
        if empty:
            os.unlink(root / "active" / name)
            return
        target = root / "sealed" / name
        os.rename(root / "active" / name, target)
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

        A worker of another host counts as dead only when its heartbeat is `adopt_after` seconds old
        too, and its active segments are taken only once the fence after our token has passed.
        """
        claimed = 0
        for other in sorted(self._workers.iterdir()) if self._workers.is_dir() else []:
            if other.name == self.worker:
                continue
            if other.name.startswith(".new-"):
                self._remove_stale_staging(other)
                continue
            if other.name.startswith(GONE_PREFIX):
                _tidy(other, ("active", "sealed"))
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
            for path in (staging / "active", staging / "sealed"):
                _remove_quietly(path.rmdir)
        except OSError:
            os.close(fd)
            return  # not empty: not ours to judge, leave it
        os.close(fd)  # before the lock file goes, so no hidden copy keeps the folder
        _tidy(staging, ("lock",))

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
        try:
            host, holder = _read_lock(fd)
            mine = f"{self.host}/{self.worker}"
            if not host or host == self.host:
                fenced = True  # a lock of this host (or from before hosts shared spools): flock decided
            elif token_at is not None and holder == mine:
                fenced = self._clock() - token_at >= lease_seconds(adopt_after) + FENCE_MARGIN_SECONDS
            else:
                if time.time() - os.fstat(fd).st_mtime < adopt_after:
                    return 0  # its worker beat recently, or another adopter wrote its token recently
                # The fencing token: from now on every heartbeat of the folder's owner fails.
                os.pwrite(fd, _lock_content(host, mine), 0)
                os.ftruncate(fd, len(_lock_content(host, mine)))
                os.fsync(fd)
                token_at, fenced = self._clock(), False
            claimed = self._take(other, ("sealed", "active") if fenced else ("sealed",))
            if not fenced and token_at is not None:
                keep = True
                self._claims[other.name] = (fd, token_at)  # flock kept: this host's others leave it to us
                return claimed
        finally:
            if not keep:
                os.close(fd)  # before the lock file is removed (below), so no hidden copy keeps the folder
        if not _tidy(other, ("active", "sealed", "lock")) and all(
            path.is_dir() or path.name.startswith(NETWORK_LEFTOVERS) for path in other.rglob("*")
        ):
            # Only hidden leftovers keep it: out of the way of every scan, removed once they are gone.
            with contextlib.suppress(OSError):
                os.rename(other, self._workers / f"{GONE_PREFIX}{other.name}")
        return claimed

    def _take(self, other: Path, states: tuple[str, ...]) -> int:
        """Rename the other folder's segments in `states` into our sealed/; how many we got."""
        claimed = 0
        for state in states:
            folder = other / state
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                if path.name.startswith(".") or not path.name.endswith(SEGMENT_SUFFIX):
                    with contextlib.suppress(OSError):  # an older version's repair copy, a probe: no records
                        path.unlink()
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
                    _remove_quietly(target.unlink)
                    continue
                with self._lock:
                    self._sealed[path.name] = Segment(target, path.name, segment.st_mtime, claimed=True)
                claimed += 1
        return claimed

    def peer_heartbeats(self) -> dict[str, int]:
        """The mtimes (ns) of the other workers' lock files, by folder name; OSError if the spool
        cannot be listed. Each lock is opened anew, so an NFS client asks the server (close-to-open),
        not its attribute cache. Called from the housekeeping thread, never from the event loop."""
        found: dict[str, int] = {}
        mine = self._home.root.name
        for other in sorted(self._workers.iterdir()) if self._workers.is_dir() else []:
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

    def usage_bytes(self) -> int:
        """Bytes of every segment in the spool, all workers' together."""
        total = 0
        for dirpath, _, filenames in os.walk(self._workers):
            for filename in filenames:
                if filename.endswith(SEGMENT_SUFFIX):
                    with contextlib.suppress(FileNotFoundError):  # shipped meanwhile
                        total += os.stat(os.path.join(dirpath, filename)).st_size
        return total


class PeerWatch:
    """Whether another worker is writing to the spool, judged from this worker's scans alone.

    Every heartbeat touches its worker's lock file (`SpoolDirectory.heartbeat`); on NFS the mtime is
    the file server's clock, which may be minutes off this host's. So an mtime is never compared with
    this host's time, only with the same file's mtime at the previous scan: one that changed between
    two scans proves a live writer in between (whatever either clock says). When that was seen is
    kept on this host's monotonic clock.
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
