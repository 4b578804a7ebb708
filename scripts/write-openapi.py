"""Write docs/openapi.json: the OpenAPI document the service serves at /openapi.json, as served, committed
so that clients can be generated from it without running the service. `make openapi`; a test fails when
the committed copy and the served document differ, and another when a route the service answers is
missing from it."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from botscore.service import build
from botscore.settings import load_settings

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def served() -> dict[str, Any]:
    """The document the service serves at /openapi.json."""
    from starlette.testclient import TestClient  # in-process, no port: the route itself answers

    with tempfile.TemporaryDirectory() as spool, TestClient(build(load_settings(audit_dir=spool)).app) as client:
        schema: dict[str, Any] = client.get("/openapi.json").json()
    return schema


def document() -> str:
    """The served document, as committed: indented, keys in the served order, one newline at the end."""
    return json.dumps(served(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(document())
    print(f"wrote {OUTPUT}", file=sys.stderr)
