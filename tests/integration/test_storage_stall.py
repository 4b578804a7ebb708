"""A storage stall makes a worker unready, never unresponsive: with every file open of the service
delayed (strace fault injection), /healthz still answers at once while segments roll under load."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.load import Load
from tests.support.servers import Service

pytestmark = pytest.mark.slow

OPEN_DELAY_US = 2_000_000  # each openat(2) of the service waits 2 s: a file server that hangs


def _segments_opened(service: Service) -> int:
    return sum(1 for _ in service.audit_dir.rglob("*.jsonl")) + sum(
        1 for _ in (service.audit_dir / "shipped").rglob("*.gz")
    )


def test_health_answers_within_100_ms_while_opening_each_segment_hangs(tmp_path: Path) -> None:
    if shutil.which("strace") is None:
        pytest.fail("strace is missing (the Debian package)")
    # Small segments under load: one rolls (and the next is opened) every few dozen requests.
    service = Service(tmp_path, audit_segment_max_bytes=4096, audit_sync="none").start()
    assert service.process is not None
    load = Load(service.url, threads=2, max_seconds=120).start()
    latencies: list[float] = []
    try:
        load.wait_for(100)
        strace = subprocess.Popen(
            [
                "strace",
                "-f",
                "-qq",
                "-o",
                str(tmp_path / "strace.log"),
                "-e",
                "trace=openat",
                "-e",
                f"inject=openat:delay_enter={OPEN_DELAY_US}",
                "-p",
                str(service.process.pid),
            ],
        )
        try:
            time.sleep(1)  # attached to every thread
            with httpx.Client(base_url=service.url, timeout=10) as client:
                until = time.monotonic() + 8
                while time.monotonic() < until:
                    started = time.monotonic()
                    assert client.get("/healthz").status_code == 200
                    latencies.append(time.monotonic() - started)
                    time.sleep(0.02)
        finally:
            strace.terminate()
            strace.wait(10)
    finally:
        load.stop()
        service.stop()
    # Segments were opened (each open waiting 2 s) while /healthz was asked.
    opened = [line for line in (tmp_path / "strace.log").read_text().splitlines() if "/active/dt=" in line]
    assert len(opened) >= 2, opened
    assert max(latencies) < 0.1, sorted(latencies)[-5:]
