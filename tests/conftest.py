"""Fixtures that chain real objects: settings -> service -> app, spool in a temp dir; real S3; a real small disk."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from botscore.audit.uploaders import Uploader
from botscore.service import Service, build
from botscore.settings import load_settings
from tests.support.servers import Weed


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


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB filesystem (tmpfs) that fills up: writes past it fail with ENOSPC. Needs root, as CI has."""
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mountpoint)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
