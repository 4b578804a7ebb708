"""The EFS latency model reaches a task's Python processes: every os.fsync waits the floor at least."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import efs

_TIMED_FSYNCS = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
took = []
for _ in range(20):
    os.write(fd, b"x")
    started = time.perf_counter()
    os.fsync(fd)
    took.append(time.perf_counter() - started)
print(min(took) * 1000, sum(took) / len(took) * 1000)
"""


def _fsync_ms(tmp_path: Path, env: dict[str, str]) -> tuple[float, float]:
    argv = [sys.executable, "-c", _TIMED_FSYNCS, str(tmp_path / "segment")]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    low, mean = (float(v) for v in out.stdout.split())
    return low, mean


def test_a_tasks_fsync_waits_the_floor_at_least_and_floor_plus_tail_on_average(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(efs.FLOOR_VARIABLE, "20")
    monkeypatch.setenv(efs.TAIL_VARIABLE, "10")
    low, mean = _fsync_ms(tmp_path, efs.task_env({"PATH": "/usr/bin:/bin"}))
    assert low >= 20
    assert 22 < mean < 60  # 30 ms expected: an exponential tail's mean over 20 draws, on a shared host


def test_without_the_model_fsync_is_the_local_disks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(efs.FLOOR_VARIABLE, "0")
    monkeypatch.setenv(efs.TAIL_VARIABLE, "0")
    assert efs.task_env({"PATH": "/usr/bin:/bin"}) == {"PATH": "/usr/bin:/bin"}
    low, _ = _fsync_ms(tmp_path, {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(efs.SITE)})  # the hook, unset
    assert low < 20


def test_the_default_floor_is_awss_published_regional_efs_write_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(efs.FLOOR_VARIABLE, raising=False)
    monkeypatch.delenv(efs.TAIL_VARIABLE, raising=False)
    assert efs.model() == (2.7, 2.3)
    assert efs.task_env({})[efs.FLOOR_VARIABLE] == "2.7"
