"""Write docs/openapi.json: the OpenAPI document the service serves at /openapi.json, completed with every
route the service answers, committed so that clients can be generated from it without running the service.
`make openapi`; a test fails when the committed copy and `complete(served)` differ, and another when a route
the service answers is missing from it.

Completed: the served document leaves out `POST /v2/models/bot-score/versions/{model_version}/infer`, the
Open Inference Protocol's versioned infer route, which the service answers (the version serving now scores
as the unversioned route; any other is a 404). `complete` adds it, and does nothing once the served
document has it."""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from botscore.service import build
from botscore.settings import load_settings

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


INFER = "/v2/models/bot-score/infer"
VERSIONED_INFER = "/v2/models/bot-score/versions/{model_version}/infer"
VERSION_METADATA = "/v2/models/bot-score/versions/{model_version}"


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """The served document with the versioned infer route: the infer operation, under the version's path."""
    paths = schema["paths"]
    if VERSIONED_INFER in paths:
        return schema
    operation = copy.deepcopy(paths[INFER]["post"])
    metadata = paths[VERSION_METADATA]["get"]
    operation["summary"] = operation["summary"].replace("Infer:", "Infer, of a version (the one serving now):")
    operation["operationId"] = "infer_version"
    operation["parameters"] = copy.deepcopy(metadata["parameters"])
    operation["responses"]["404"] = copy.deepcopy(metadata["responses"]["404"])
    operation["responses"] = dict(sorted(operation["responses"].items()))
    items = list(paths.items())
    at = list(paths).index(VERSION_METADATA + "/ready") + 1  # after the version's other routes
    return {**schema, "paths": {**dict(items[:at]), VERSIONED_INFER: {"post": operation}, **dict(items[at:])}}


def served() -> dict[str, Any]:
    """The document the service serves at /openapi.json."""
    from starlette.testclient import TestClient  # in-process, no port: the route itself answers

    with tempfile.TemporaryDirectory() as spool, TestClient(build(load_settings(audit_dir=spool)).app) as client:
        schema: dict[str, Any] = client.get("/openapi.json").json()
    return schema


def document() -> str:
    """The completed document, as committed: indented, keys in the served order, one newline at the end."""
    return json.dumps(complete(served()), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(document())
    print(f"wrote {OUTPUT}", file=sys.stderr)
