"""Where sealed segments go: an S3 bucket, or a local folder when no bucket is set.

Both take a key and gzip bytes and either store them whole, confirmed, or raise UploadError.
The shipper deletes a segment only after `put` returned and knows nothing else about them, so
tests point it at a real local S3 or a temp dir.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from botscore.ops.memory import release_memory


class UploadError(Exception):
    """The destination did not accept the object; the message is the reason (e.g. `AccessDenied: ...`)."""


class Uploader(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def describe(self) -> str: ...


class S3Uploader:
    """PUTs objects with boto3's default credential chain (`AWS_ENDPOINT_URL_S3` redirects it), then
    confirms each: a HEAD must show the size, and the SHA-256 that S3 itself computed of the bytes it
    stored (`x-amz-checksum-sha256`: S3 refuses a PUT whose body does not match the checksum sent,
    and returns the stored one with ChecksumMode), so an endpoint that answers 200 without storing,
    or echoes what the client sent, fails the upload instead of losing it.

    Each PUT is a conditional create (`If-None-Match: *`): the audit trail is append-only, and the
    bucket policy refuses any other PUT there. A retry of an upload S3 had stored (its answer lost, or
    the process gone before it deleted the segment) gets 412 and counts as stored once the HEAD shows
    the same size and S3's SHA-256; another object under that key is never overwritten, and the upload
    fails loudly, every retry, until an operator looks (docs/operations.md, "upload-failures")."""

    def __init__(self, bucket: str, client: Any = None, *, connect_timeout: float = 5, read_timeout: float = 15):
        self.bucket = bucket
        self._client = client
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    def _s3(self) -> Any:
        if self._client is None:
            # Imported here, in the shipper thread, so boto3's ~0.3 s import never delays start-up.
            import boto3
            from botocore.config import Config

            # A session of its own, dropped once the client exists: what only the session
            # holds (endpoint tables, loader caches) is then freed, about 2 MiB.
            session = boto3.session.Session()
            self._client = session.client(
                "s3",
                config=Config(
                    connect_timeout=self.connect_timeout,
                    read_timeout=self.read_timeout,
                    # One attempt per call: the shipper retries, forever, with its own backoff, and
                    # counts each failure (botocore's `max_attempts` would add retries it never sees).
                    retries={"mode": "standard", "total_max_attempts": 1},
                ),
            )
            del session
            release_memory()
        return self._client

    def put(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        sha256 = hashlib.sha256(data).digest()
        digest, checksum = sha256.hex(), base64.b64encode(sha256).decode()
        existed = False
        try:
            client = self._s3()
            try:
                client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    IfNoneMatch="*",
                    ContentType="application/gzip",
                    ContentMD5=base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode(),
                    Metadata={"sha256": digest},
                    ChecksumSHA256=checksum,
                )
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) not in ("PreconditionFailed", "412"):
                    raise
                existed = True  # the key is taken: stored by an earlier try, if it holds these bytes
            stored = client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise UploadError(f"{error.get('Code', 'Error')}: {error.get('Message', exc)}") from exc
        except BotoCoreError as exc:
            raise UploadError(f"{type(exc).__name__}: {exc}") from exc
        size, stored_checksum = stored.get("ContentLength"), stored.get("ChecksumSHA256")
        if (size, stored_checksum) != (len(data), checksum):
            problem = "holds another object, never overwritten" if existed else "not stored as sent"
            raise UploadError(
                f"{problem}: s3://{self.bucket}/{key} has {size} bytes, S3's sha256 {stored_checksum}; "
                f"sent {len(data)} bytes, sha256 {checksum}"
            )

    def describe(self) -> str:
        return f"s3://{self.bucket}"


class LocalUploader:
    """Keeps objects under a folder, in the same key layout: the embedded default for laptops."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def put(self, key: str, data: bytes) -> None:
        target = self.folder / key
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temp, target)  # whole or nothing, and a retry overwrites
            stored = target.stat().st_size
        except OSError as exc:
            raise UploadError(f"cannot write {target}: {exc.strerror}") from exc
        if stored != len(data):
            raise UploadError(f"not stored as sent: {target} has {stored} bytes, sent {len(data)}")

    def describe(self) -> str:
        return str(self.folder)
