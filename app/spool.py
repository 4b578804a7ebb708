"""The audit spool: append-only JSON-lines segment files on local disk, one set per worker.

Layout under the spool directory:

    workers/<worker>/lock              flock held for the worker's lifetime
    workers/<worker>/active/<name>     the segment being appended to (at most one)
    workers/<worker>/sealed/<name>     closed segments waiting to be shipped

A segment's name is fixed when it opens and encodes its object key (`object_key`), so a
retried upload overwrites the same object. A worker that died leaves its directory with
an unlocked `lock`; another worker claims its segments by renaming them into its own
`sealed/` (atomic, so exactly one claimer wins) and ships them.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SEGMENT_SUFFIX = ".jsonl"

log = logging.getLogger("botscore.spool")


def object_key(prefix: str, opened_at: datetime, host: str, worker: str, seq: int) -> str:
    """The S3 key of a segment, fixed when it opens: Athena partition projection on dt and hour (UTC)."""
    return f"{prefix}dt={opened_at:%Y-%m-%d}/hour={opened_at:%H}/{host}-{worker}-{seq:06d}.jsonl.gz"


def key_for(prefix: str, segment_name: str) -> str:
    """The object key of a segment file name (the name is the key without prefix, '/' as '+')."""
    return prefix + segment_name[: -len(SEGMENT_SUFFIX)].replace("+", "/") + ".jsonl.gz"


def _segment_name(opened_at: datetime, host: str, worker: str, seq: int) -> str:
    return object_key("", opened_at, host, worker, seq)[: -len(".jsonl.gz")].replace("/", "+") + SEGMENT_SUFFIX


def _remove_quietly(remove) -> None:  # type: ignore[no-untyped-def]
    try:
        remove()
    except FileNotFoundError:
        pass  # another claimer got there first


def _safe_host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:63] or "host"


@dataclass
class Segment:
    """A sealed segment waiting to be shipped."""

    path: Path
    name: str
    opened_at: float  # wall-clock seconds of its first record (mtime for claimed leftovers)
    claimed: bool  # left by an earlier process: its lines are checked before shipping


class SpoolUnavailable(Exception):
    """The spool cannot take the record (disk full, directory unwritable); the message says why."""


class Spool:
    """One worker's segments. The active segment belongs to the event-loop thread (`append`,
    `seal_if_due`); the sealed ones are shared with the shipper thread under a lock."""

    def __init__(
        self,
        directory: Path,
        *,
        segment_max_bytes: int,
        segment_max_age: float,
        host: str | None = None,
        worker: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_age = segment_max_age
        self.host = host or _safe_host()
        self.worker = worker or f"{os.getpid()}.{secrets.token_hex(4)}"
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._active_name: str | None = None
        self._active_opened = 0.0
        self._active_bytes = 0
        self._seq = 0
        self._lock_fd: int | None = None
        self._sealed: dict[str, Segment] = {}
        self.records_written = 0
        self.bytes_appended = 0  # only ever grows; the audit log's usage estimate reads it

    # -- set-up ---------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self.directory / "workers" / self.worker

    def open(self) -> None:
        """Create this worker's directory, created whole under a temporary name, and lock it."""
        workers = self.directory / "workers"
        workers.mkdir(parents=True, exist_ok=True)
        staging = workers / f".new-{self.worker}"
        (staging / "active").mkdir(parents=True, exist_ok=True)
        (staging / "sealed").mkdir(exist_ok=True)
        fd = os.open(staging / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(staging, self.root)
        except OSError:
            os.close(fd)
            raise
        self._lock_fd = fd

    def close(self) -> None:
        """Seal what is active and release the worker lock; sealed files stay for the next start.

        An emptied worker directory is removed; one with segments left is claimed by the next start.
        """
        self.seal()
        if self._lock_fd is None:
            return
        if not self._sealed:
            for path in (self.root / "active", self.root / "sealed", self.root / "lock", self.root):
                try:
                    path.rmdir() if path.is_dir() else path.unlink()
                except OSError:
                    break  # not empty after all: leave it for the next start
        os.close(self._lock_fd)
        self._lock_fd = None

    # -- the request path -------------------------------------------------------

    def append(self, line: bytes) -> None:
        """Append one record line with one write; raise SpoolUnavailable if the disk refuses it.

        Takes no lock: the active segment is only touched from the event-loop thread (appends and
        `seal_if_due`), and by `seal` at shutdown, when no request runs any more.
        """
        fd = self._fd
        if fd is None:
            fd = self._open_segment()
        try:
            written = os.write(fd, line)
        except OSError as exc:
            raise SpoolUnavailable(f"cannot write {self._active_name}: {exc.strerror}") from None
        if written != len(line):
            # A short write (disk full) would leave a torn line in the middle; cut it off.
            try:
                os.ftruncate(fd, self._active_bytes)
            except OSError:
                self._abandon_active()  # the torn line stays; the segment is repaired when claimed
            raise SpoolUnavailable(f"cannot write {self._active_name}: short write, disk full")
        self._active_bytes += written
        self.bytes_appended += written
        self.records_written += 1
        if self._active_bytes >= self.segment_max_bytes:
            try:
                self._seal_active()
            except OSError as exc:  # the record is written; sealing is retried at the next tick
                log.error("cannot seal a full segment", extra={"segment": self._active_name, "reason": str(exc)})

    def _open_segment(self) -> int:
        self._seq += 1
        now = time.time()
        name = _segment_name(datetime.fromtimestamp(now, timezone.utc), self.host, self.worker, self._seq)
        path = self.root / "active" / name
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise SpoolUnavailable(f"cannot create segment in {path.parent}: {exc.strerror}") from None

        self._active_name = name
        self._active_opened = now
        self._active_bytes = 0
        return self._fd

    # -- sealing ----------------------------------------------------------------

    @property
    def active_bytes(self) -> int:
        """Bytes in the active segment (0 when none is open)."""
        return self._active_bytes if self._fd is not None else 0

    def seal_if_due(self, now: float | None = None) -> None:
        """Seal the active segment once it is older than the age bound (event-loop thread)."""
        now = time.time() if now is None else now
        if self._fd is not None and now - self._active_opened >= self.segment_max_age:
            self._seal_active()

    def seal(self) -> None:
        """Seal the active segment now (at shutdown, or from the event-loop thread)."""
        self._seal_active()

    def _seal_active(self, *, suspect: bool = False) -> None:
        """Move the active segment to sealed/ (rename first: on failure nothing changes, retry later).

        A `suspect` segment may end in a torn line: it is shipped like a leftover, lines checked.
        """
        if self._fd is None or self._active_name is None:
            return
        name = self._active_name
        if self._active_bytes == 0:
            os.unlink(self.root / "active" / name)
        else:
            target = self.root / "sealed" / name
            os.rename(self.root / "active" / name, target)
            with self._lock:  # the sealed set is shared with the shipper thread
                self._sealed[name] = Segment(target, name, self._active_opened, claimed=suspect)
        self._close_active()

    def _close_active(self) -> None:
        os.close(self._fd)  # type: ignore[arg-type]
        self._fd = None
        self._active_name = None

    def _abandon_active(self) -> None:
        """Stop writing to a segment that may end in a torn line; a new one opens at the next append."""
        try:
            self._seal_active(suspect=True)
        except OSError:
            self._close_active()  # it stays in active/: the next start claims it, and checks its lines

    # -- shipping side ------------------------------------------------------------

    def sealed(self) -> list[Segment]:
        """Sealed segments, oldest first."""
        with self._lock:
            return sorted(self._sealed.values(), key=lambda s: (s.opened_at, s.name))

    def remove(self, segment: Segment) -> None:
        """Delete a segment that S3 (or the local folder) has accepted."""
        segment.path.unlink()
        with self._lock:
            self._sealed.pop(segment.name, None)

    def oldest_unshipped(self) -> float | None:
        """Wall-clock time of the oldest record not yet shipped, or None."""
        with self._lock:
            times = [s.opened_at for s in self._sealed.values()]
            if self._fd is not None and self._active_bytes:
                times.append(self._active_opened)
        return min(times) if times else None

    def claim_leftovers(self) -> int:
        """Take over segments of dead workers (and of our own earlier lives); return how many."""
        claimed = 0
        workers = self.directory / "workers"
        for other in sorted(workers.iterdir()) if workers.is_dir() else []:
            if other.name == self.worker:
                continue
            if other.name.startswith(".new-"):
                self._remove_stale_staging(other)
                continue
            claimed += self._claim_from(other)
        return claimed

    def _remove_stale_staging(self, staging: Path) -> None:
        """A worker died while creating its directory: nothing was written there yet."""
        try:
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

    def _claim_from(self, other: Path) -> int:
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
            claimed = 0
            for state in ("sealed", "active"):
                folder = other / state
                for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                    if path.name.startswith(".") or not path.name.endswith(SEGMENT_SUFFIX):
                        _remove_quietly(path.unlink)  # a repair's temporary copy: the segment is whole
                        continue
                    target = self.root / "sealed" / path.name
                    try:
                        info = path.stat()
                        os.rename(path, target)
                    except FileNotFoundError:
                        continue
                    if info.st_size == 0:
                        target.unlink()
                        continue
                    with self._lock:
                        self._sealed[path.name] = Segment(target, path.name, info.st_mtime, claimed=True)
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
        workers = self.directory / "workers"
        for dirpath, _, filenames in os.walk(workers):
            for filename in filenames:
                if filename.endswith(SEGMENT_SUFFIX):
                    try:
                        total += os.stat(os.path.join(dirpath, filename)).st_size
                    except FileNotFoundError:
                        pass
        return total
