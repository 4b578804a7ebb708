"""Audit records as found in S3: ids counted per object, waited for, checked exactly once."""

from __future__ import annotations

import gzip
import json
import re
import time
from collections import Counter

from tests.support.servers import Weed

KEY = re.compile(
    r"^bot-score/dt=\d{4}-\d{2}-\d{2}/hour=\d{2}/(?P<host>[A-Za-z0-9.-]+)-(?P<worker>\d+\.[0-9a-f]{8})-\d{6}\.jsonl\.gz$"
)


def s3_ids(weed: Weed, bucket: str) -> Counter[str]:
    """Record ids in every object of the bucket (keys checked against the documented layout)."""
    ids: Counter[str] = Counter()
    for key, body in weed.objects(bucket):
        assert KEY.match(key), key
        for line in gzip.decompress(body).splitlines():
            ids[json.loads(line)["id"]] += 1
    return ids


def wait_in_s3(weed: Weed, bucket: str, expected: set[str], timeout: float = 60) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = s3_ids(weed, bucket)
        if expected <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def assert_exactly_once(found: Counter[str], answered: set[str]) -> None:
    print(f"answered {len(answered)}, found in S3 {len(set(found) & answered)} ids, {sum(found.values())} records")
    missing = answered - set(found)
    assert not missing, f"{len(missing)} answered requests missing from S3, e.g. {sorted(missing)[:3]}"
    duplicated = {rid: n for rid, n in found.items() if n > 1}
    assert not duplicated, f"duplicated in S3: {list(duplicated.items())[:3]}"
