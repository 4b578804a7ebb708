"""A spool fault of this task alone (others keep writing the spool) versus one every task shares.

Only the first gets the task replaced (/healthz 503); the second must not cycle the fleet.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from botscore.audit.adoption import PeerWatch
from botscore.audit.health import is_local_fault
from botscore.audit.log import AuditLog
from botscore.audit.spool import SpoolDirectory
from botscore.audit.uploaders import LocalUploader
from tests.support.audit import audit_log
from tests.support.servers import wait_for

GRACE = 10.0
HOUR = 3600 * 10**9  # ns


@pytest.mark.parametrize(
    ("unusable_for", "peer_seen_ago", "local"),
    [
        (11.0, 1.0, True),  # unusable past the grace while another worker beats: this task's fault
        (9.0, 1.0, False),  # still within the grace
        (11.0, None, False),  # nobody else seen writing: the spool is down for all, or one host alone
        (11.0, 12.0, False),  # others stopped writing too: a fault everyone shares now
        (None, 1.0, False),  # the spool works
    ],
)
def test_a_fault_is_local_only_past_the_grace_while_another_worker_is_seen_writing(
    unusable_for: float | None, peer_seen_ago: float | None, local: bool
) -> None:
    now = 1000.0
    since = None if unusable_for is None else now - unusable_for
    seen = None if peer_seen_ago is None else now - peer_seen_ago
    assert is_local_fault(since, seen, now, GRACE) is local


def _open(root: Path, host: str) -> SpoolDirectory:
    spool = SpoolDirectory(root, host=host)
    spool.open()
    return spool


def _lock(spool: SpoolDirectory) -> Path:
    return spool.directory / "workers" / spool.worker / "lock"


def test_a_lock_that_changes_between_two_scans_proves_a_writer_whatever_the_file_servers_clock(
    tmp_path: Path,
) -> None:
    me, other = _open(tmp_path, "host-a"), _open(tmp_path, "host-b")
    behind = time.time_ns() - HOUR  # the file server's clock an hour behind this host's
    os.utime(_lock(other), ns=(behind, behind))
    watch = PeerWatch()
    assert not watch.observe(me.peer_heartbeats(), now=1.0)  # first sight proves nothing
    assert not watch.observe(me.peer_heartbeats(), now=2.0)  # an hour "old", unchanged: no writer seen
    os.utime(_lock(other), ns=(behind + 2 * 10**9, behind + 2 * 10**9))  # its next heartbeat
    assert watch.observe(me.peer_heartbeats(), now=3.0)
    assert watch.seen_within(GRACE, now=3.0 + GRACE)
    assert not watch.seen_within(GRACE, now=3.1 + GRACE)


def test_a_lock_in_the_future_that_does_not_change_is_no_writer_and_this_workers_own_beats_do_not_count(
    tmp_path: Path,
) -> None:
    me = _open(tmp_path, "host-a")
    dead = _open(tmp_path, "host-b")
    ahead = time.time_ns() + HOUR  # a dead worker's last beat, by a file server an hour ahead: "fresh"
    os.utime(_lock(dead), ns=(ahead, ahead))
    watch = PeerWatch()
    for now in range(5):
        time.sleep(0.01)
        me.heartbeat(15.0)
        assert not watch.observe(me.peer_heartbeats(), now=float(now))
    assert watch.advanced_at is None
    assert list(me.peer_heartbeats()) == [dead.worker]


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[SpoolDirectory]:
    """Another host's worker on the same spool, beating every 50 ms while the test runs."""
    other = _open(tmp_path / "spool", "host-b")
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(0.05):
            other.heartbeat(15.0)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    yield other
    stop.set()
    thread.join(5)


def _broken_audit_log(tmp_path: Path) -> AuditLog:
    """An audit log whose own folder can never be created (a file holds its name), while the
    spool's other folders are there to read: its mount broken, the file server fine."""
    spool = SpoolDirectory(tmp_path / "spool", host="host-a", worker="w-a")
    (tmp_path / "spool" / "workers").mkdir(parents=True, exist_ok=True)
    (tmp_path / "spool" / "workers" / ".new-w-a").write_text("in the way")
    return audit_log(spool, LocalUploader(tmp_path / "shipped"), tick=0.05, local_fault_grace=0.5)


def test_a_worker_that_cannot_use_the_spool_while_another_beats_in_it_reports_a_local_fault_naming_the_spool(
    tmp_path: Path, peer: SpoolDirectory
) -> None:
    audit = _broken_audit_log(tmp_path)
    started = time.monotonic()
    audit.start()
    try:
        wait_for(lambda: audit.local_fault is not None, 10, "a local fault")
        fault = audit.local_fault
        assert time.monotonic() - started >= 0.5  # not before the grace
    finally:
        audit.close()
    assert fault is not None
    assert f"this task cannot use the audit spool {tmp_path / 'spool'} while other workers write to it" in fault
    assert audit.readiness() is not None


def test_a_spool_nobody_else_writes_is_no_local_fault(tmp_path: Path) -> None:
    alone = _open(tmp_path / "spool", "host-b")  # a folder whose worker is gone: its lock never changes
    audit = _broken_audit_log(tmp_path)
    audit.start()
    try:
        time.sleep(2.0)  # four times the grace
        fault = audit.local_fault
        ready = audit.readiness()
    finally:
        audit.close()
        alone.close()
    assert fault is None
    assert ready is not None and "audit spool unavailable" in ready
