"""Two hosts whose locks are not shared: a paused host never answers from a folder that was adopted.

Two bindfs (FUSE) mounts of one folder are two lock domains, as two NFS clients with
`local_lock=flock` are, or any host whose lock lease ran out while its process lived: an flock
taken through one mount is free through the other. Host A (`botscore serve`, spool on mount A)
and host B (mount B) share the spool under BOTSCORE_AUDIT_SYNC=always; every answer is counted by
id in SeaweedFS.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.load import Load
from tests.support.s3 import assert_exactly_once, wait_in_s3
from tests.support.servers import Service, Weed, wait_for

pytestmark = pytest.mark.slow

ADOPT_AFTER = 3.0
TAKEN = "this worker's spool folder was adopted by another worker"


@pytest.fixture
def two_mounts(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Two FUSE mounts (bindfs) of one folder: the same files, two lock domains."""
    if shutil.which("bindfs") is None:
        pytest.fail("bindfs is missing: `make install-dev` installs it")
    shared = tmp_path / "shared"
    shared.mkdir()
    mounts = [tmp_path / "mount-a", tmp_path / "mount-b"]
    mounted: list[Path] = []
    try:
        for mount in mounts:
            mount.mkdir()
            result = subprocess.run(["bindfs", str(shared), str(mount)], capture_output=True, check=False)
            if result.returncode != 0:
                pytest.skip(f"cannot mount bindfs here (needs /dev/fuse and root): {result.stderr.decode().strip()}")
            mounted.append(mount)
        yield mounts[0], mounts[1]
    finally:
        for mount in mounted:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def _host(tmp_path: Path, name: str, spool: Path, weed: Weed, bucket: str, **settings: object) -> Service:
    (tmp_path / name).mkdir()
    return Service(
        tmp_path / name,
        audit_dir=spool,
        audit_host=f"host-{name}",
        audit_bucket=bucket,
        audit_sync="always",
        audit_segment_max_age_seconds=3600,  # records stay in the active segment: the one adoption must fence
        audit_adopt_after_seconds=ADOPT_AFTER,
        audit_retry_max_seconds=1,
        **settings,
        **weed.aws_env(),
    )


def _adoptions(service: Service) -> float:
    text = httpx.get(service.url + "/metrics", timeout=5).text
    match = re.search(r"^botscore_audit_adoptions_total (\S+)$", text, re.MULTILINE)
    assert match, "botscore_audit_adoptions_total not in /metrics"
    return float(match.group(1))


def _host_of(folder: Path) -> str:
    return (folder / "lock").read_text().split("\n", 1)[0]


def _log(service: Service) -> list[dict[str, object]]:
    return [json.loads(line) for line in service.log.read_text().splitlines() if line.startswith("{")]


def _keys_by_id(weed: Weed, bucket: str) -> dict[str, str]:
    found = {}
    for key, body in weed.objects(bucket):
        for line in gzip.decompress(body).splitlines():
            found[json.loads(line)["id"]] = key
    return found


def test_a_paused_host_whose_folder_was_adopted_answers_503_or_from_a_new_folder_and_loses_nothing(
    tmp_path: Path, weed: Weed, bucket: str, two_mounts: tuple[Path, Path]
) -> None:
    mount_a, mount_b = two_mounts
    a = _host(tmp_path, "a", mount_a / "spool", weed, bucket)
    b = _host(tmp_path, "b", mount_b / "spool", weed, bucket)
    a.start()
    b.start()
    load_a = Load(a.url, threads=4, max_seconds=300).start()
    load_b = Load(b.url, threads=2, max_seconds=300).start()
    try:
        load_a.wait_for(300)
        assert a.process is not None
        (folder_a,) = [p for p in (mount_a / "spool" / "workers").iterdir() if _host_of(p) == "host-a"]
        os.killpg(a.process.pid, signal.SIGSTOP)  # paused mid-load: a frozen VM, a partition, a long stall
        paused_at = time.monotonic()
        # B adopts A's folder: the token first, A's active segment once A's lease is certainly over.
        wait_for(lambda: not folder_a.exists(), 40, "B adopting A's folder")
        assert time.monotonic() - paused_at >= ADOPT_AFTER + ADOPT_AFTER / 2
        assert _adoptions(b) >= 1
        resumed_at = len(load_a.result.answered)
        os.killpg(a.process.pid, signal.SIGCONT)  # A wakes up under load, its clock 15-20 s ahead of its lease
        load_a.wait_for(resumed_at + 600, timeout=60)
        after = list(load_a.result.answered)[resumed_at:]
        statuses = [load_a.result.answered[rid] for rid in after]
        assert set(statuses) <= {200, 503}
        assert statuses.count(200) >= 300, statuses.count(503)  # A works from a new folder soon after
        result_a, result_b = load_a.stop(), load_b.stop()
    finally:
        load_a.stop()
        load_b.stop()
        a.stop()
        b.stop()
    answered = result_a.ids(200) | result_b.ids(200)
    found = wait_in_s3(weed, bucket, answered, timeout=30)
    assert_exactly_once(found, answered)
    log_a = _log(a)
    assert [entry["message"] for entry in log_a].count(TAKEN + ": refusing until it works from a new folder") == 1
    (started,) = [entry for entry in log_a if entry["message"] == "audit log started"]
    (moved,) = [entry for entry in log_a if entry["message"] == "audit log works from a new spool folder"]
    assert moved["worker"] != started["worker"]
    keys = _keys_by_id(weed, bucket)
    resumed_200 = [rid for rid in after if result_a.answered[rid] == 200]
    assert {keys[rid].rsplit("/", 1)[1].rsplit("-", 1)[0] for rid in resumed_200} == {f"host-a-{moved['worker']}"}
    assert not [entry for entry in log_a if entry["level"] == "ERROR" and "shutdown" in str(entry["message"])]
    assert "Application shutdown failed" not in a.log.read_text()
    assert list((tmp_path / "shared" / "spool" / "workers").iterdir()) == []  # no folder left behind


def test_a_live_host_keeps_its_folder_through_a_mount_whose_locks_it_does_not_share(
    tmp_path: Path, weed: Weed, bucket: str, two_mounts: tuple[Path, Path]
) -> None:
    mount_a, mount_b = two_mounts
    a = _host(tmp_path, "a", mount_a / "spool", weed, bucket)
    b = _host(tmp_path, "b", mount_b / "spool", weed, bucket)
    a.start()
    b.start()
    load = Load(a.url, threads=2, max_seconds=300).start()
    try:
        # B looks for dead workers every 5 s; only the heartbeat tells it A is alive.
        time.sleep(3 * ADOPT_AFTER + 10)
        load.wait_for(200)
        adoptions = _adoptions(b)
        result = load.stop()
    finally:
        load.stop()
        a.stop()
        b.stop()
    assert adoptions == 0
    assert not [entry for entry in _log(a) if TAKEN in str(entry["message"])]
    assert set(result.answered.values()) == {200}
    answered = result.ids(200)
    assert_exactly_once(wait_in_s3(weed, bucket, answered, timeout=30), answered)
    assert list((tmp_path / "shared" / "spool" / "workers").iterdir()) == []
