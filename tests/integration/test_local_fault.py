"""/healthz (the ALB health check on ECS) fails for a task whose own spool mount broke, and only then.

Two `botscore serve` hosts share one spool folder through two bindfs (FUSE) mounts, as two tasks
share EFS. A host that cannot write the spool while the other host's heartbeats advance in it
answers /healthz 503 (ECS replaces that task); when no host can write it (EFS down for everyone),
/healthz stays 200 on both (replacing tasks could not help) and only /readyz says 503.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from botscore.audit.health import LOCAL_FAULT_GRACE_SECONDS
from tests.support.servers import Service, wait_for

pytestmark = pytest.mark.slow

Mount = Callable[..., Path]


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Mount]:
    """bindfs mounts of one shared folder (`mount("a", "-o", "ro")`), unmounted after the test."""
    if shutil.which("bindfs") is None:
        pytest.fail("bindfs is missing: `make install-dev` installs it")
    shared = tmp_path / "shared"
    (shared / "spool").mkdir(parents=True)
    mounted: list[Path] = []

    def make(name: str, *options: str) -> Path:
        target = tmp_path / f"mount-{name}"
        target.mkdir()
        result = subprocess.run(["bindfs", *options, str(shared), str(target)], capture_output=True, check=False)
        if result.returncode != 0:
            pytest.skip(f"cannot mount bindfs here (needs /dev/fuse and root): {result.stderr.decode().strip()}")
        mounted.append(target)
        return target / "spool"

    try:
        yield make
    finally:
        for target in mounted:
            subprocess.run(["umount", "-l", str(target)], check=False)


def _host(tmp_path: Path, name: str, spool: Path) -> Service:
    (tmp_path / name).mkdir()
    return Service(tmp_path / name, audit_dir=spool, audit_host=f"host-{name}")


def _get(service: Service, path: str) -> httpx.Response:
    return httpx.get(service.url + path, timeout=5)


def test_a_host_whose_spool_mount_is_read_only_fails_its_health_check_while_the_host_beside_it_passes(
    tmp_path: Path, mount: Mount
) -> None:
    b = _host(tmp_path, "b", mount("b"))
    spool_a = mount("a", "-o", "ro")
    a = _host(tmp_path, "a", spool_a)
    b.start()
    a.start()
    try:
        started = time.monotonic()
        wait_for(lambda: _get(a, "/healthz").status_code == 503, LOCAL_FAULT_GRACE_SECONDS + 30, "A unhealthy")
        waited = time.monotonic() - started
        health_a, ready_a = _get(a, "/healthz"), _get(a, "/readyz")
        health_b, ready_b = _get(b, "/healthz"), _get(b, "/readyz")
        scored_b = httpx.post(b.url + "/bot-score", json={"x1": 0.1, "x2": 0.2}, timeout=5)
    finally:
        a.stop()
        b.stop()
    assert waited >= LOCAL_FAULT_GRACE_SECONDS / 2  # not at once: the grace runs from A's start-up
    assert health_a.status_code == 503
    error = health_a.json()["error"]
    assert error["code"] == "local_fault"
    named = f"this task cannot use the audit spool {spool_a.resolve()} while other workers write to it"
    assert named in error["message"]
    assert "Read-only file system" in error["message"]
    assert ready_a.status_code == 503
    assert (health_b.status_code, ready_b.status_code, scored_b.status_code) == (200, 200, 200)


def test_a_spool_that_no_host_can_write_keeps_every_health_check_200_and_readiness_503(
    tmp_path: Path, mount: Mount
) -> None:
    dead = tmp_path / "shared" / "spool" / "workers" / "1.dead"  # a host gone before the outage
    dead.mkdir(parents=True)
    (dead / "lock").write_text("host-c\nhost-c/1.dead\n")
    a = _host(tmp_path, "a", mount("a", "-o", "ro"))
    b = _host(tmp_path, "b", mount("b", "-o", "ro"))
    a.start()
    b.start()
    health: set[int] = set()
    try:
        until = time.monotonic() + LOCAL_FAULT_GRACE_SECONDS + 5
        while time.monotonic() < until:
            health |= {_get(a, "/healthz").status_code, _get(b, "/healthz").status_code}
            time.sleep(0.5)
        ready_a, ready_b = _get(a, "/readyz"), _get(b, "/readyz")
    finally:
        a.stop()
        b.stop()
    assert health == {200}
    for ready in (ready_a, ready_b):
        assert ready.status_code == 503
        assert "audit spool unavailable: cannot use" in ready.json()["error"]["message"]


@pytest.fixture
def own_mount(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A bindfs mount of the shared folder run in the foreground: its daemon's pid, to kill or stop."""
    shared, target = tmp_path / "shared", tmp_path / "mount-own"
    (shared / "spool").mkdir(parents=True, exist_ok=True)
    target.mkdir()
    daemon = subprocess.Popen(["bindfs", "-f", str(shared), str(target)], stderr=subprocess.PIPE)
    try:
        wait_for(lambda: os.path.ismount(target), 10, "the bindfs mount")
        yield target / "spool", daemon
    finally:
        daemon.send_signal(signal.SIGCONT)
        subprocess.run(["umount", "-l", str(target)], check=False)
        daemon.kill()
        daemon.wait(10)


def _inject(service: Service, *rules: str) -> subprocess.Popen[bytes]:
    assert service.process is not None
    argv = ["strace", "-f", "-qq", "-o", "/dev/null", "-p", str(service.process.pid)]
    for rule in rules:
        argv += ["-e", rule]
    strace = subprocess.Popen(argv)
    time.sleep(1)  # attached to every thread
    return strace


@pytest.mark.parametrize(("code", "text"), [("EIO", "Input/output error"), ("ESTALE", "Stale file handle")])
def test_a_host_whose_fsyncs_fail_fails_its_health_check_while_the_host_beside_it_passes(
    tmp_path: Path, mount: Mount, code: str, text: str
) -> None:
    b = _host(tmp_path, "b", mount("b"))
    (tmp_path / "a").mkdir()
    a = Service(tmp_path / "a", audit_dir=mount("a"), audit_host="host-a", audit_sync="always")
    b.start()
    a.start()
    strace = _inject(a, "trace=fsync", f"inject=fsync:error={code}")
    try:
        refused = httpx.post(a.url + "/bot-score", json={"x1": 0.1, "x2": 0.2}, timeout=10)
        wait_for(lambda: _get(a, "/healthz").status_code == 503, LOCAL_FAULT_GRACE_SECONDS + 30, "A unhealthy")
        health_a, health_b = _get(a, "/healthz"), _get(b, "/healthz")
    finally:
        strace.terminate()
        strace.wait(10)
        a.stop()
        b.stop()
    assert refused.status_code == 503
    assert health_a.json()["error"]["code"] == "local_fault"
    assert f"cannot sync the audit spool: {text}" in health_a.json()["error"]["message"]
    assert health_b.status_code == 200


def test_a_host_whose_mount_is_lost_fails_its_health_check(
    tmp_path: Path, own_mount: tuple[Path, subprocess.Popen[bytes]]
) -> None:
    spool, daemon = own_mount
    a = _host(tmp_path, "a", spool).start()
    try:
        daemon.kill()  # the FUSE daemon gone: every call on the mount fails with ENOTCONN
        wait_for(lambda: _get(a, "/healthz").status_code == 503, LOCAL_FAULT_GRACE_SECONDS + 30, "A unhealthy")
        health = _get(a, "/healthz")
    finally:
        a.stop()
    assert health.json()["error"]["code"] == "local_fault"
    assert f"this task cannot use the audit spool {spool} its mount is gone" in health.json()["error"]["message"]


def test_a_host_whose_mount_hangs_answers_health_at_once_and_is_not_replaced_for_what_it_cannot_tell(
    tmp_path: Path, own_mount: tuple[Path, subprocess.Popen[bytes]]
) -> None:
    spool, daemon = own_mount
    a = _host(tmp_path, "a", spool).start()
    latencies: list[float] = []
    statuses: set[int] = set()
    try:
        daemon.send_signal(signal.SIGSTOP)  # every call on the mount hangs, its scan of other workers too
        until = time.monotonic() + 2 * LOCAL_FAULT_GRACE_SECONDS + 5
        with httpx.Client(base_url=a.url, timeout=5) as client:  # one connection: only the service's time counts
            while time.monotonic() < until:
                started = time.monotonic()
                statuses.add(client.get("/healthz").status_code)
                latencies.append(time.monotonic() - started)
                time.sleep(0.2)
        ready = _get(a, "/readyz")
    finally:
        daemon.send_signal(signal.SIGCONT)
        a.stop()
    assert statuses == {200}  # a hang that this task cannot tell from everyone's (docs/operations.md)
    assert max(latencies) < 0.1, sorted(latencies)[-5:]
    assert ready.status_code == 503
