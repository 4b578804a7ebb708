"""The shipper's PUT is a conditional create against a real S3 (SeaweedFS honours If-None-Match: *):
a retry of a stored upload succeeds without writing again, and another object never replaces one."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest

from botscore.audit.uploaders import S3Uploader, UploadError
from tests.support.servers import Weed

KEY = "bot-score/dt=2026-12-07/hour=01/host-w1-000001.jsonl.gz"


def test_a_retry_of_a_stored_upload_is_a_success_without_a_second_write(weed: Weed, bucket: str) -> None:
    uploader = S3Uploader(bucket, client=weed.client())
    data = b"\x1f\x8b records"
    uploader.put(KEY, data)
    first = weed.client().head_object(Bucket=bucket, Key=KEY)
    time.sleep(1.1)  # a second write would show a later Last-Modified (whole seconds)
    uploader.put(KEY, data)  # the answer to the first was lost: S3 says 412, the HEAD says it is ours
    again = weed.client().head_object(Bucket=bucket, Key=KEY)
    assert (again["LastModified"], again["ETag"]) == (first["LastModified"], first["ETag"])
    assert again["Metadata"] == {"sha256": hashlib.sha256(data).hexdigest()}


def _checksum(data: bytes) -> str:
    """SHA-256 as S3 returns it (x-amz-checksum-sha256: base64)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_another_object_under_a_stored_key_is_refused_and_the_stored_one_kept(weed: Weed, bucket: str) -> None:
    uploader = S3Uploader(bucket, client=weed.client())
    uploader.put(KEY, b"first records")
    with pytest.raises(UploadError) as refused:
        uploader.put(KEY, b"other records")
    assert str(refused.value) == (
        f"holds another object, never overwritten: s3://{bucket}/{KEY} has 13 bytes, S3's sha256 "
        f"{_checksum(b'first records')}; sent 13 bytes, sha256 {_checksum(b'other records')}"
    )
    assert weed.client().get_object(Bucket=bucket, Key=KEY)["Body"].read() == b"first records"
