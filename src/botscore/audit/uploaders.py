"""Where sealed segments go: an S3 bucket, or a local folder when no bucket is set.

Both take a key and gzip bytes and either store them whole or raise UploadError; the
shipper knows nothing else about them, so tests point it at a real local S3 or a temp dir.
"""

from __future__ import annotations

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
    """PUTs objects with boto3's default credential chain; `AWS_ENDPOINT_URL_S3` redirects it."""

    def __init__(self, bucket: str, client: Any = None) -> None:
        self.bucket = bucket
        self._client = client

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
                    connect_timeout=5,
                    read_timeout=15,
                    retries={"mode": "standard", "max_attempts": 1},  # the shipper retries, forever
                ),
            )
            del session
            release_memory()
        return self._client

    def put(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3().put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/gzip")
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise UploadError(f"{error.get('Code', 'Error')}: {error.get('Message', exc)}") from exc
        except BotoCoreError as exc:
            raise UploadError(f"{type(exc).__name__}: {exc}") from exc

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
        except OSError as exc:
            raise UploadError(f"cannot write {target}: {exc.strerror}") from exc

    def describe(self) -> str:
        return str(self.folder)
