"""API keys for the scoring routes: `Authorization: Bearer KEY`, compared in constant time.

BOTSCORE_API_KEYS holds the keys (comma-separated) or the path of a file of them. Keys from a
file are re-read when the file changes (checked every housekeeping tick) and on SIGHUP, so a key
rotates without a restart: add the new key, move the clients, remove the old key. Each key is
known by its id, the first 12 hex digits of its SHA-256: the id is what metrics, the audit
record and the logs show, so a leaked key can be traced and revoked; the key itself is shown
nowhere.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path

log = logging.getLogger("botscore.auth")

KEY_ID_HEX_DIGITS = 12  # 48 bits: unique among any real set of keys, and says nothing usable of the key


def key_id(key: str) -> str:
    """The id a key is known by outside this module."""
    return hashlib.sha256(key.encode()).hexdigest()[:KEY_ID_HEX_DIGITS]


def _parse(text: str) -> list[str]:
    """Keys from a file: one per line or comma-separated; `#` starts a comment line."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [key.strip() for line in lines for key in line.split(",") if key.strip()]


class ApiKeys:
    """The accepted keys; none means the scoring routes are open. Empty keys are never accepted."""

    def __init__(self, keys: list[str], *, path: Path | None = None) -> None:
        self.path = path  # the file the keys came from, re-read by `refresh`
        self._seen: tuple[int, int, int] | None = None  # the file's (inode, size, mtime_ns) when read
        self._keys: list[tuple[bytes, str]] = []
        self.required = False  # a plain attribute: read on every request
        self._use(keys)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def ids(self) -> list[str]:
        return [kid for _, kid in self._keys]

    @classmethod
    def from_setting(cls, value: str | None) -> ApiKeys:
        """BOTSCORE_API_KEYS: comma-separated keys, or the path of a file of them."""
        if not value:
            return cls([])
        candidate = Path(value).expanduser()
        if "," not in value and candidate.is_file():
            keys = cls([], path=candidate)
            keys.refresh(force=True)
            return keys
        return cls([key.strip() for key in value.split(",")])

    def _use(self, keys: list[str]) -> None:
        pairs = [(key.encode(), key_id(key)) for key in dict.fromkeys(keys) if key]
        self._keys = pairs
        self.required = bool(pairs)

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the keys file if it changed (or when `force`); True if the keys changed.

        A file that cannot be read, or that holds no key, leaves the keys as they were: a rotation
        that writes the file in place must not open the service for a moment. (Write a new file
        and rename it over the old one; an empty file turns the keys off only at the next start.)
        """
        if self.path is None:
            return False
        try:
            info = os.stat(self.path)
            seen = (info.st_ino, info.st_size, info.st_mtime_ns)
            if seen == self._seen and not force:
                return False
            keys = _parse(self.path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            log.error(
                "cannot read the API keys file; keeping the keys", extra={"path": str(self.path), "reason": str(exc)}
            )
            return False
        self._seen = seen
        if not keys and self._keys:
            log.error("the API keys file holds no key; keeping the keys", extra={"path": str(self.path)})
            return False
        before = self.ids
        self._use(keys)
        if self.ids != before:
            log.info("API keys loaded", extra={"path": str(self.path), "key_ids": self.ids})
            return True
        return False

    def identify(self, authorization: bytes | None) -> str | None:
        """The id of the key the header carries, or None. Every key is compared, so the time
        taken does not tell which key, or how much of one, matched."""
        if authorization is None or authorization[:7].lower() != b"bearer ":
            return None
        offered = authorization[7:].strip()
        found = None
        for key, kid in self._keys:
            if hmac.compare_digest(offered, key):
                found = kid
        return found

    def allows(self, authorization: bytes | None) -> bool:
        """True if no key is required or the header carries one of the keys."""
        return not self.required or self.identify(authorization) is not None
