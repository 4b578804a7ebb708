"""Two hosts share one spool (as two Fargate tasks share EFS): when one dies, the other ships what it answered.

Real `botscore serve` processes with different host names on one spool directory; every process
of host A is SIGKILLed under load; host B, never restarted, adopts A's segments once A's
heartbeat is BOTSCORE_AUDIT_ADOPT_AFTER_SECONDS old (its active ones once A's lease is over too)
and ships them. Counted by id in SeaweedFS.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.load import Load
from tests.support.s3 import assert_exactly_once, wait_in_s3
from tests.support.servers import Service, Weed

pytestmark = pytest.mark.slow

ADOPT_AFTER = 3.0
CLAIM_EVERY = 5.0  # the shipper looks for dead workers this often
# From A's death to its records in S3: A's heartbeat ages, B writes its token at its next pass and
# takes A's active segments at the pass after (A's lease, ADOPT_AFTER / 2 + 1 s, is over by then), then ships.
BOUND = ADOPT_AFTER + 2 * CLAIM_EVERY + 10


def test_a_hosts_answers_reach_s3_through_the_other_host_after_it_is_killed(
    tmp_path: Path, weed: Weed, bucket: str
) -> None:
    spool = tmp_path / "shared-spool"
    common = {
        "audit_dir": spool,
        "audit_bucket": bucket,
        "audit_sync": "always",
        "audit_segment_max_age_seconds": 3600,  # A's records stay in its segments until it dies
        "audit_adopt_after_seconds": ADOPT_AFTER,
        "audit_retry_max_seconds": 1,
        **weed.aws_env(),
    }
    a = Service(tmp_path / "a", audit_host="host-a", workers=2, **common)
    a.argv += ["--workers", "2"]
    b = Service(tmp_path / "b", audit_host="host-b", **common)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a.start()
    b.start()
    try:
        load = Load(a.url, threads=4, keepalive=False).start()
        load.wait_for(800)
        assert a.process is not None
        os.killpg(a.process.pid, signal.SIGKILL)  # every process of host A, at once, mid-load
        killed_at = time.monotonic()
        answered = load.stop().ids(200)
        assert len(answered) >= 800
        found = wait_in_s3(weed, bucket, answered, timeout=BOUND + 30)
        took = time.monotonic() - killed_at
        assert_exactly_once(found, answered)
        assert took < BOUND, f"A's records reached S3 {took:.1f} s after it died; the stated bound is {BOUND} s"
        print(f"host A's {len(answered)} answers in S3 {took:.1f} s after it was killed")
    finally:
        a.stop(signal.SIGKILL)
        b.stop()
    keys = [key for key, _ in weed.objects(bucket)]
    assert any("/host-a-" in key for key in keys)  # A's own segments, shipped under A's keys by B
    assert '"message": "adopted segments of a worker that died"' in b.log.read_text()
