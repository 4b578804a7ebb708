"""Fixtures that chain real objects: settings -> service -> app, spool in a temp dir."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.service import Service, build
from app.settings import load_settings
from app.uploaders import Uploader
from tests.servers import Weed


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weed]:
    """One real S3 server (SeaweedFS) for the session, on 127.0.0.1; stopped by its pid."""
    server = Weed(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


@pytest.fixture
def bucket(weed: Weed) -> str:
    """A new, empty bucket for one test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    weed.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Build the whole service in-process with settings overrides; audit spool under tmp_path."""

    def make(uploader: Uploader | None = None, **overrides: Any) -> Service:
        overrides.setdefault("audit_dir", tmp_path / "audit")
        return build(load_settings(**overrides), uploader=uploader)

    yield make


@pytest.fixture
def client(make_service: Callable[..., Service]) -> Iterator[TestClient]:
    """A client of the real app, lifespan included (the audit log starts and stops with it)."""
    with TestClient(make_service().app) as test_client:
        yield test_client


def shipped_records(audit_dir: Path) -> list[dict[str, Any]]:
    """Every record in the local 'shipped' folder (the embedded default destination)."""
    import gzip

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
