"""Model artifacts for tests: the shipped one, a sealed variant of it, and reading a service's reload log."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from botscore.model import artifact
from botscore.settings import SHIPPED_MODEL
from tests.support.servers import Service, wait_for

SHIPPED = json.loads(SHIPPED_MODEL.read_text())
OLD = SHIPPED["version"]
NEW_DOCUMENT = artifact.seal({**SHIPPED, "intercept": SHIPPED["intercept"] - 0.5})
NEW = NEW_DOCUMENT["version"]
FAILED = "model reload failed; still serving the old model"


def shadow_as_recorded(score: float) -> float:
    """A shadow score as the audit row keeps it: 12 significant digits."""
    return float(f"{score:.12g}")


def replace(path: Path, content: bytes | dict[str, Any]) -> None:
    """Replace the artifact the way an operator should: write aside, then rename over it."""
    aside = path.with_suffix(".tmp")
    aside.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    os.replace(aside, path)


def reload_log(service: Service) -> list[dict[str, Any]]:
    entries = []
    for line in service.log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry["logger"] == "botscore.reload":
                entries.append(entry)
    return entries


def wait_for_log(service: Service, message: str, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    """The reload log entries with `message`, once there are `count` of them."""

    def matching() -> list[dict[str, Any]]:
        return [e for e in reload_log(service) if e["message"] == message]

    wait_for(lambda: len(matching()) >= count, timeout, f"{count} x {message!r}")
    return matching()
