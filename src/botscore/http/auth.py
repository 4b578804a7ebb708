"""API keys for the scoring routes: `Authorization: Bearer KEY`, compared in constant time."""

from __future__ import annotations

import hmac
from pathlib import Path


class ApiKeys:
    """The accepted keys; none means the scoring routes are open. Empty keys are never accepted."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [key.encode() for key in keys if key]
        self.required = bool(self._keys)  # a plain attribute: read on every request

    def __len__(self) -> int:
        return len(self._keys)

    @classmethod
    def from_setting(cls, value: str | None) -> ApiKeys:
        """BOTSCORE_API_KEYS: comma-separated keys, or the path of a file with one key per line (# comments)."""
        if not value:
            return cls([])
        candidate = Path(value)
        if "," not in value and candidate.is_file():
            lines = candidate.read_text().splitlines()
            return cls([line.strip() for line in lines if not line.lstrip().startswith("#")])
        return cls([key.strip() for key in value.split(",")])

    def allows(self, authorization: bytes | None) -> bool:
        """True if the header carries one of the keys. Every key is compared, so the time
        taken does not tell which key, or how much of one, matched."""
        if not self.required:
            return True
        if authorization is None or authorization[:7].lower() != b"bearer ":
            return False
        offered = authorization[7:].strip()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(offered, key)
        return matched
