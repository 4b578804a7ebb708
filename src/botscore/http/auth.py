"""API keys for the scoring routes: `Authorization: Bearer KEY`, compared in constant time.

The keys come from BOTSCORE_API_KEYS (the keys, comma-separated) or BOTSCORE_API_KEYS_FILE (a file
of them); the settings decide which, so nothing here guesses whether a value is a path. A keys
file is re-read when it changes and on SIGHUP, so a key rotates without a restart: add the new
key, move the clients, remove the old key. The file is only ever read off the event loop (a
thread of its own, and a bounded wait at start-up): a FIFO or a hung NFS mount at its path must
not stop a worker from answering. Each key is known by its id, the first 12 hex digits of its
SHA-256: the id is what metrics, the audit record and the logs show, so a leaked key can be
traced and revoked; the key itself is shown nowhere.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from botscore.ops.threads import daemon

log = logging.getLogger("botscore.auth")

KEY_ID_HEX_DIGITS = 12  # 48 bits: unique among any real set of keys, and says nothing usable of the key
READ_TIMEOUT_SECONDS = 5.0  # start-up waits this long for the keys file before giving up
MAX_FILE_BYTES = 1024 * 1024  # a keys file is a few lines; anything larger is the wrong file

Stamp = tuple[int, int, int]  # a file's (inode, size, mtime_ns): a new one means the file changed


class KeysFileError(Exception):
    """The keys file cannot be used; the message says why (never what it holds)."""


def key_id(key: str) -> str:
    """The id a key is known by outside this module."""
    return hashlib.sha256(key.encode()).hexdigest()[:KEY_ID_HEX_DIGITS]


def _parse(text: str) -> list[str]:
    """Keys from a file: one per line or comma-separated; `#` starts a comment line."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [key.strip() for line in lines for key in line.split(",") if key.strip()]


def stamp(path: Path) -> Stamp:
    """The file's identity and version, to tell whether it changed since it was read."""
    info = os.stat(path)
    return info.st_ino, info.st_size, info.st_mtime_ns


def read_keys_file(path: Path) -> tuple[list[str], Stamp]:
    """The keys in `path`, and its stamp as read; KeysFileError unless it is a readable regular file.

    Opened without blocking, so a FIFO is found to be one at once instead of waiting for a writer.
    A UTF-8 byte-order mark (Windows editors write one) is not part of the first key.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise KeysFileError(exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeysFileError("not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise KeysFileError(f"larger than {MAX_FILE_BYTES} bytes: not a keys file")
        raw = b""
        while chunk := os.read(fd, MAX_FILE_BYTES + 1 - len(raw)):  # a network file may come in parts
            raw += chunk
    except OSError as exc:
        raise KeysFileError(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise KeysFileError("not UTF-8 text") from None
    return _parse(text), (info.st_ino, info.st_size, info.st_mtime_ns)


class ApiKeys:
    """The accepted keys; none means the scoring routes are open. Empty keys are never accepted."""

    def __init__(self, keys: list[str], *, path: Path | None = None) -> None:
        self.path = path  # the file the keys came from, re-read by `refresh`
        self._seen: Stamp | None = None  # the file's stamp when last read
        self._problem: tuple[Stamp | None, str] | None = None  # the file's last problem, already logged
        self._keys: tuple[tuple[bytes, str], ...] = ()
        self.required = False  # a plain attribute: read on every request
        self._use(keys)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def ids(self) -> list[str]:
        return [kid for _, kid in self._keys]

    @classmethod
    def load(cls, keys: str | None, path: Path | None, *, timeout: float = READ_TIMEOUT_SECONDS) -> ApiKeys:
        """The keys of BOTSCORE_API_KEYS (`keys`) or of BOTSCORE_API_KEYS_FILE (`path`); neither: open.

        The file is read in a thread and waited for at most `timeout`: KeysFileError if it is not
        a readable regular file, or did not answer in time (a hung mount must not hang start-up).
        """
        if path is None:
            loaded = cls([key.strip() for key in (keys or "").split(",")])
            if loaded.required:
                log.info("API keys loaded", extra={"source": "BOTSCORE_API_KEYS", "key_ids": loaded.ids})
            return loaded
        loaded = cls([], path=path)
        found: list[tuple[list[str], Stamp] | KeysFileError] = []
        daemon(lambda: found.append(_try(read_keys_file, path)), "botscore-keys-read").join(timeout)
        if not found:
            raise KeysFileError(f"not read within {timeout:g} s (a hung network mount?)")
        result = found[0]
        if isinstance(result, KeysFileError):
            raise result
        loaded._take(*result)
        return loaded

    def watch(self, every: float) -> KeysWatcher | None:
        """Start re-reading the keys file every `every` seconds in a thread of its own; None without a file."""
        if self.path is None:
            return None
        watcher = KeysWatcher(self, every)
        watcher.start()
        return watcher

    def _use(self, keys: list[str]) -> None:
        # One assignment of a tuple: a request on the event loop sees the old keys or the new, whole.
        pairs = tuple((key.encode(), key_id(key)) for key in dict.fromkeys(keys) if key)
        self._keys = pairs
        self.required = bool(pairs)  # never turned off by a re-read (see refresh), so the order is safe

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the keys file if it changed (or when `force`); True if the keys changed. Blocks on
        the file: call it from the watcher's thread, never from the event loop.

        A file that cannot be read, or that holds no key, leaves the keys as they were: a rotation
        that writes the file in place must not open the service for a moment. (Write a new file
        and rename it over the old one; an empty file never turns the keys off: it stops the next start.)
        The problem is logged once, and again only when it, or the file, changes.
        """
        if self.path is None:
            return False
        seen: Stamp | None = None
        try:
            seen = stamp(self.path)
            if seen == self._seen and not force:
                return False
            keys, seen = read_keys_file(self.path)
        except (OSError, KeysFileError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._report(seen, "cannot read the API keys file; keeping the keys", reason)
            return False
        return self._take(keys, seen)

    def _take(self, keys: list[str], seen: Stamp) -> bool:
        self._seen = seen
        if not keys and self._keys:
            self._report(seen, "the API keys file holds no key; keeping the keys", "no key")
            return False
        self._problem = None
        before = self.ids
        self._use(keys)
        if self.ids != before:
            log.info("API keys loaded", extra={"path": str(self.path), "key_ids": self.ids})
            return True
        return False

    def _report(self, seen: Stamp | None, message: str, reason: str) -> None:
        """Log a problem with the file once: every worker polls it four times a second."""
        if (seen, reason) != self._problem:
            self._problem = (seen, reason)
            log.error(message, extra={"path": str(self.path), "reason": reason})

    def identify(self, authorization: bytes | None) -> str | None:
        """The id of the key the header carries, or None. Every key is compared, so the time
        taken does not tell which key, or how much of one, matched."""
        if authorization is None or authorization[:7].lower() != b"bearer ":
            return None
        offered = authorization[7:].strip()
        found = None
        for key, kid in self._keys:  # one read of the attribute: the watcher may replace it meanwhile
            if hmac.compare_digest(offered, key):
                found = kid
        return found

    def allows(self, authorization: bytes | None) -> bool:
        """True if no key is required or the header carries one of the keys."""
        return not self.required or self.identify(authorization) is not None


class KeysWatcher(threading.Thread):
    """Re-reads the keys file every `every` seconds, and at once when poked (SIGHUP), off the event loop.

    One thread per worker, so a read stuck on a hung mount holds this thread alone and never piles
    up others; the keys already loaded keep serving meanwhile.
    """

    def __init__(self, keys: ApiKeys, every: float) -> None:
        super().__init__(name="botscore-keys", daemon=True)
        self.keys = keys
        self.every = every
        self._wake = threading.Event()
        self._forced = False
        self._stopping = False

    def run(self) -> None:
        while True:
            self._wake.wait(self.every)
            self._wake.clear()
            if self._stopping:
                return
            forced, self._forced = self._forced, False
            try:
                self.keys.refresh(force=forced)
            except Exception:  # the thread must outlive any surprise; the keys stay as they were
                log.exception("re-reading the API keys file failed; keeping the keys")

    def poke(self) -> None:
        """Read the file now, changed or not (SIGHUP); returns at once, safe on the event loop."""
        self._forced = True
        self._wake.set()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop polling; a read stuck on a hung mount is left behind (a daemon thread), not waited for."""
        self._stopping = True
        self._wake.set()
        self.join(timeout)


def _try(read: Callable[[Path], tuple[list[str], Stamp]], path: Path) -> tuple[list[str], Stamp] | KeysFileError:
    try:
        return read(path)
    except KeysFileError as exc:
        return exc
    except OSError as exc:
        return KeysFileError(exc.strerror or str(exc))
