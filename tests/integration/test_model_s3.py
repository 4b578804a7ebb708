"""BOTSCORE_MODEL_PATH=s3://bucket/key against a real S3 server (SeaweedFS): served, refused, reloaded."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from botscore.model import artifact
from botscore.settings import SHIPPED_MODEL
from tests.support.models import NEW, NEW_DOCUMENT, OLD, SHIPPED, wait_for_log
from tests.support.servers import BIN, ROOT, Service, Weed, service_env, wait_for

pytestmark = pytest.mark.slow


def start_up_failure(tmp_path: Path, weed: Weed, url: str) -> str:
    """`botscore serve` with the model at `url`: must exit 2 with exactly one line on stderr; that line."""
    env = service_env(tmp_path / "audit", BOTSCORE_MODEL_PATH=url, **weed.aws_env())
    result = subprocess.run(
        [str(BIN / "botscore"), "serve", "--port", "1"],
        env=env,
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_model_from_s3_is_served_and_reloaded_from_s3_on_sighup(tmp_path: Path, weed: Weed, bucket: str) -> None:
    weed.client().put_object(Bucket=bucket, Key="models/bot-score.json", Body=SHIPPED_MODEL.read_bytes())
    url = f"s3://{bucket}/models/bot-score.json"
    service = Service(tmp_path, model_path=url, **weed.aws_env()).start()
    try:
        response = httpx.post(service.url + "/bot-score", json={"x1": 0.1, "x2": 0.2}, timeout=5)
        assert response.headers["x-model-version"] == OLD
        assert response.json() == {"p_bot": 0.9211156209223077}  # the README's example, from the shipped model
        assert httpx.get(service.url + "/readyz", timeout=5).json()["model_version"] == OLD

        weed.client().put_object(Bucket=bucket, Key="models/bot-score.json", Body=json.dumps(NEW_DOCUMENT).encode())
        service.process.send_signal(signal.SIGHUP)
        [reloaded] = wait_for_log(service, "model reloaded", 1)
        assert (reloaded["model_path"], reloaded["serving_version"]) == (url, NEW)
        response = httpx.post(service.url + "/bot-score", json={"x1": 0.1, "x2": 0.2}, timeout=5)
        assert response.headers["x-model-version"] == NEW
    finally:
        assert service.stop() == -signal.SIGTERM


def test_a_missing_key_stops_start_up_with_one_line_naming_the_url(tmp_path: Path, weed: Weed, bucket: str) -> None:
    url = f"s3://{bucket}/models/missing.json"
    line = start_up_failure(tmp_path, weed, url)
    assert line == f"botscore: model artifact {url}: cannot fetch: NoSuchKey: The specified key does not exist."


def test_a_checksum_mismatch_in_s3_stops_start_up_with_one_line(tmp_path: Path, weed: Weed, bucket: str) -> None:
    tampered = {**SHIPPED, "intercept": SHIPPED["intercept"] + 1}
    weed.client().put_object(Bucket=bucket, Key="m.json", Body=json.dumps(tampered).encode())
    line = start_up_failure(tmp_path, weed, f"s3://{bucket}/m.json")
    assert line == (
        f"botscore: model artifact s3://{bucket}/m.json: checksum mismatch: "
        f"file says {SHIPPED['checksum']}, content is sha256:{_content_digest(tampered)}"
    )


def test_a_broken_reload_from_s3_keeps_the_old_model(tmp_path: Path, weed: Weed, bucket: str) -> None:
    weed.client().put_object(Bucket=bucket, Key="m.json", Body=SHIPPED_MODEL.read_bytes())
    url = f"s3://{bucket}/m.json"
    service = Service(tmp_path, model_path=url, **weed.aws_env()).start()
    try:
        weed.client().delete_object(Bucket=bucket, Key="m.json")
        wait_for(lambda: "Contents" not in weed.client().list_objects_v2(Bucket=bucket), 10, "object deleted")
        service.process.send_signal(signal.SIGHUP)
        [failed] = wait_for_log(service, "model reload failed; still serving the old model", 1)
        assert failed["reason"] == f"model artifact {url}: cannot fetch: NoSuchKey: The specified key does not exist."
        response = httpx.post(service.url + "/bot-score", json={"x1": 0.1, "x2": 0.2}, timeout=5)
        assert (response.status_code, response.headers["x-model-version"]) == (200, OLD)
    finally:
        assert service.stop() == -signal.SIGTERM


@pytest.mark.parametrize("url", ["s3://", "s3://bucket-only", "s3://bucket/"])
def test_an_s3_url_without_bucket_and_key_is_refused(url: str) -> None:
    with pytest.raises(artifact.ArtifactError) as info:
        artifact.load(url)
    assert str(info.value) == f"model artifact {url}: not an s3://bucket/key URL"


def _content_digest(document: dict) -> str:
    content = {k: v for k, v in document.items() if k != "checksum"}
    return hashlib.sha256(artifact.canonical_json(content)).hexdigest()
