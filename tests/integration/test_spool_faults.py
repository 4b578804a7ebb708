"""The audit log under faults that crashed or fooled it before: a full spool disk with two workers, an
S3 endpoint that answers 200 without storing, an S3 that hangs."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil
import pytest

from botscore.audit.segment import SegmentWriter
from botscore.audit.shipper import Shipper, gzip_file
from botscore.audit.spool import Segment, SpoolDirectory
from botscore.audit.uploaders import S3Uploader, UploadError
from tests.support.servers import LOOPBACK, Service, Weed, wait_for

pytestmark = pytest.mark.slow


class LyingS3(ThreadingHTTPServer):
    """A proxy in front of a real S3 that, while `lying`, answers every PUT 200 and stores nothing."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.lying = True
        self.puts_dropped = 0
        super().__init__((LOOPBACK, 0), _Forward)
        self.url = f"http://{LOOPBACK}:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    server: LyingS3

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.command == "PUT" and self.server.lying:
            self.server.puts_dropped += 1
            self.send_response(200)
            self.send_header("ETag", '"d41d8cd98f00b204e9800998ecf8427e"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=10)
        upstream.request(self.command, self.path, body=body, headers=dict(self.headers))
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection"):
                self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        upstream.close()

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _relay

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def lying_s3(weed: Weed) -> Iterator[LyingS3]:
    proxy = LyingS3(weed.endpoint)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()


def _aws(monkeypatch: pytest.MonkeyPatch, weed: Weed, endpoint: str) -> None:
    for name, value in {**weed.aws_env(), "AWS_ENDPOINT_URL_S3": endpoint}.items():
        monkeypatch.setenv(name, value)


def _one_sealed(tmp_path: Path) -> tuple[SpoolDirectory, SegmentWriter, Segment]:
    spool = SpoolDirectory(tmp_path / "audit", host="h")
    spool.open()
    writer = SegmentWriter(spool, max_bytes=1 << 20, max_age=3600)
    writer.append(b'{"id":"kept"}\n')
    writer.seal()
    (segment,) = spool.sealed()
    return spool, writer, segment


def test_a_segment_is_deleted_only_once_s3_holds_it_as_sent(
    tmp_path: Path, weed: Weed, bucket: str, lying_s3: LyingS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    _aws(monkeypatch, weed, lying_s3.url)
    spool, writer, segment = _one_sealed(tmp_path)
    shipper = Shipper(spool, writer, S3Uploader(bucket), prefix="p/", tick=0.05, backoff_base=0.1, backoff_cap=0.2)
    shipper.start()
    try:
        wait_for(lambda: shipper.stats.upload_failures >= 2, 20, "failed confirmations")
        assert segment.path.exists()  # S3 said 200, but the object is not there: the segment stays
        assert shipper.stats.records_shipped == 0
        lying_s3.lying = False
        wait_for(lambda: not segment.path.exists(), 20, "the segment shipped for real")
    finally:
        assert shipper.stop(5)
    assert lying_s3.puts_dropped >= 2
    assert [key for key, _ in weed.objects(bucket)] == [segment.key("p/")]
    assert shipper.stats.records_shipped == 1


def test_an_object_of_the_same_size_but_other_bytes_is_neither_shipped_nor_overwritten(
    tmp_path: Path, weed: Weed, bucket: str, lying_s3: LyingS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    _aws(monkeypatch, weed, lying_s3.url)
    spool, writer, segment = _one_sealed(tmp_path)
    _, sent = gzip_file(segment.path)  # what the shipper sends
    # Under the segment's key already: another object of exactly that size (a stale copy, a key reused),
    # while the PUTs are answered 200 and dropped.
    other = bytes(reversed(sent))
    weed.client().put_object(
        Bucket=bucket, Key=segment.key("p/"), Body=other, Metadata={"sha256": hashlib.sha256(other).hexdigest()}
    )
    shipper = Shipper(spool, writer, S3Uploader(bucket), prefix="p/", tick=0.05, backoff_base=0.1, backoff_cap=0.2)
    shipper.start()
    try:
        wait_for(lambda: shipper.stats.upload_failures >= 2, 20, "failed confirmations")
        assert segment.path.exists()  # the size matches, the SHA-256 does not: the segment stays
        assert shipper.stats.records_shipped == 0
        lying_s3.lying = False
        # S3 answers truly now: the PUT is a conditional create, refused (412) because the key is taken,
        # and the object there is not this segment's. The audit trail is append-only: the segment stays in
        # the spool, loud in the failures, for an operator (docs/operations.md, upload-failures).
        failed = shipper.stats.upload_failures
        wait_for(lambda: shipper.stats.upload_failures >= failed + 2, 20, "refusals from the real S3")
        assert segment.path.exists()
        assert shipper.stats.records_shipped == 0
    finally:
        shipped_all = shipper.stop(5)
    assert shipped_all is False
    assert [body for _, body in weed.objects(bucket)] == [other]  # never overwritten


def test_an_object_whose_metadata_echoes_the_sent_sha256_but_whose_bytes_differ_does_not_count_as_shipped(
    tmp_path: Path, weed: Weed, bucket: str, lying_s3: LyingS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    _aws(monkeypatch, weed, lying_s3.url)
    spool, writer, segment = _one_sealed(tmp_path)
    _, sent = gzip_file(segment.path)
    # Other bytes of the same size under the key, whose metadata says what the client sends (an endpoint
    # that echoes the client's header); S3 computes its own checksum of what it stores.
    other = bytes(reversed(sent))
    weed.client().put_object(
        Bucket=bucket,
        Key=segment.key("p/"),
        Body=other,
        Metadata={"sha256": hashlib.sha256(sent).hexdigest()},
        ChecksumAlgorithm="SHA256",
    )
    shipper = Shipper(spool, writer, S3Uploader(bucket), prefix="p/", tick=0.05, backoff_base=0.1, backoff_cap=0.2)
    shipper.start()
    try:
        # The HEAD shows the size and the echoed sha256 metadata, but S3's own checksum is of the other bytes.
        wait_for(lambda: shipper.stats.upload_failures >= 2, 20, "failed confirmations")
        assert segment.path.exists()
        assert shipper.stats.records_shipped == 0
        lying_s3.lying = False  # truthful now: the conditional create is refused, the key holds the other object
        failed = shipper.stats.upload_failures
        wait_for(lambda: shipper.stats.upload_failures >= failed + 2, 20, "refusals from the real S3")
        assert segment.path.exists()
        assert shipper.stats.records_shipped == 0
    finally:
        assert shipper.stop(5) is False
    assert [body for _, body in weed.objects(bucket)] == [other]  # never overwritten


def test_a_hung_s3_gets_one_attempt_per_try_so_the_shipper_counts_every_failure(
    weed: Weed, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted: list[socket.socket] = []
    with closing(socket.socket()) as hung:  # accepts connections, never answers
        hung.bind((LOOPBACK, 0))
        hung.listen(16)
        hung.settimeout(0.2)

        def accept() -> None:
            while True:
                try:
                    accepted.append(hung.accept()[0])
                except TimeoutError:
                    continue
                except OSError:
                    return

        threading.Thread(target=accept, daemon=True).start()
        _aws(monkeypatch, weed, f"http://{LOOPBACK}:{hung.getsockname()[1]}")
        with pytest.raises(UploadError, match="timeout"):
            S3Uploader("any", connect_timeout=1, read_timeout=1).put("k", b"data")
        time.sleep(0.5)
    assert len(accepted) == 1  # one attempt: botocore retried nothing behind the shipper's back
    for connection in accepted:
        connection.close()


def test_a_full_spool_disk_with_two_workers_means_503s_never_a_crash_and_ready_again_once_s3_is_back(
    tmp_path: Path, make_small_disk: Callable[[str], Path]
) -> None:
    disk = make_small_disk("3m")
    s3 = Weed(tmp_path / "s3")  # not started: S3 is down, every upload fails, the spool fills
    bucket = "audit"
    service = Service(
        tmp_path,
        audit_dir=disk,
        audit_bucket=bucket,
        audit_segment_max_age_seconds=1,
        audit_retry_max_seconds=0.5,
        workers=2,
        **s3.aws_env(),
    )
    service.argv += ["--workers", "2"]
    service.start()
    try:
        assert service.process is not None
        workers = {child.pid for child in psutil.Process(service.process.pid).children()}
        refused = 0
        with httpx.Client(base_url=service.url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for _ in range(40_000):
                status = client.post("/bot-score", json={"x1": 0.1, "x2": 0.2}).status_code
                assert status in (200, 503)
                refused += status == 503
                if refused >= 50:
                    break
            assert refused >= 50
            for path in ("/docs", "/metrics", "/healthz", "/openapi.json") * 5:
                assert client.get(path).status_code == 200, path
            assert client.get("/readyz").status_code == 503
            assert {child.pid for child in psutil.Process(service.process.pid).children()} == workers  # none died
            assert not list(disk.rglob("*.db"))  # no metric file on the spool's disk
            s3.start()  # S3 is back, on the same port
            s3.create_bucket(bucket)
            wait_for(lambda: client.get("/readyz").status_code == 200, 60, "ready again")
            # Each request may reach either worker: both must be back (each recovers on its own tick).
            wait_for(
                lambda: all(
                    client.post("/bot-score", json={"x1": 0.1, "x2": 0.2}).status_code == 200 for _ in range(20)
                ),
                60,
                "both workers answering 200 again",
            )
    finally:
        service.stop()
        s3.stop()
    log = [json.loads(line) for line in service.log.read_text().splitlines() if line.startswith("{")]
    assert not [entry for entry in log if "died" in entry["message"] or "SIGBUS" in entry["message"]]
    assert len([entry for entry in log if entry["level"] == "WARNING" and "refus" in entry["message"]]) <= 8
