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
    weed.create_bucket(name)
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
def make_small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Real small filesystems (tmpfs, e.g. "3m") that fill up: writes past them fail with ENOSPC.
    Mounting needs root, as CI has; elsewhere the test is skipped."""
    mounted: list[Path] = []

    def make(size: str) -> Path:
        mountpoint = tmp_path / f"disk-{len(mounted)}"
        mountpoint.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)], capture_output=True, check=False
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
        mounted.append(mountpoint)
        return mountpoint

    yield make
    for mountpoint in mounted:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@pytest.fixture
def small_disk(make_small_disk: Callable[[str], Path]) -> Path:
    """A real 256 KiB filesystem that fills up."""
    return make_small_disk("256k")
