"""Audit records as a test finds them on disk: shipped to the local folder, or still in the spool."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any


def shipped_records(audit_dir: Path) -> list[dict[str, Any]]:
    """Every record in the local 'shipped' folder (the embedded default destination)."""
    found = []
    for path in sorted((audit_dir / "shipped").rglob("*.jsonl.gz")):
        found.extend(json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines())
    return found


def spooled_records(audit_dir: Path) -> list[dict[str, Any]]:
    """Every record still in the spool (active or sealed segments of any worker)."""
    found = []
    for path in sorted((audit_dir / "workers").rglob("*.jsonl")):
        found.extend(json.loads(line) for line in path.read_bytes().splitlines() if line)
    return found
