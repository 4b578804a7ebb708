"""A task starts while S3 is down (a real SeaweedFS, stopped), serves BOTSCORE_MODEL_PATH, counts the
registry's silence, and serves what the registry's production pointer names once S3 answers again."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from botscore.model import manage
from botscore.model.registry import Pointer, Registry, RegistryError, RegistryUnreachable
from botscore.service import METRICS_CACHE_SECONDS
from botscore.settings import SHIPPED_MODEL
from tests.support.models import NEW, NEW_DOCUMENT, OLD, reload_log
from tests.support.servers import Service, Weed, free_port, wait_for

pytestmark = pytest.mark.slow

POLL_SECONDS = 0.5


def _unreachable(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "botscore_model_registry_unreachable_total"
    )


def _version(url: str) -> str:
    response = httpx.post(url + "/bot-score", json={"x1": 0.1, "x2": 0.2}, timeout=5)
    assert response.status_code == 200, response.text
    return response.headers["x-model-version"]


def test_a_task_started_while_s3_is_down_serves_then_follows_the_registry(tmp_path: Path) -> None:
    s3 = Weed(tmp_path / "own-s3").start()
    bucket = "registry"
    s3.create_bucket(bucket)
    url = f"s3://{bucket}/models/bot-score/"
    operator = Registry(url, client=s3.client())
    operator.publish(SHIPPED_MODEL.read_bytes(), "shipped")
    operator.publish(json.dumps(NEW_DOCUMENT).encode(), "new")
    manage.promote(operator, NEW)  # the fleet serves NEW; the image's own model is OLD
    s3.stop()  # S3 is down when the task starts

    service = Service(tmp_path, model_registry=url, model_poll_seconds=POLL_SECONDS, **s3.aws_env())
    service.start(timeout=60)  # it starts: before, the follower stopped start-up here
    restarted: Weed | None = None
    try:
        assert _version(service.url) == OLD  # BOTSCORE_MODEL_PATH (the shipped model) serves
        [started] = [e for e in reload_log(service) if e["message"].startswith("model registry unreachable")]
        assert started["message"] == (
            "model registry unreachable at start-up; serving what it could read, else BOTSCORE_MODEL_PATH, "
            "until it answers"
        )
        assert (started["serving_version"], started["model_registry"]) == (OLD, url)
        assert "model pointer s3://registry/models/bot-score/production" in started["reason"]
        wait_for(lambda: _unreachable(service.url) >= 3, 30, "each unanswered poll counted")
        assert _version(service.url) == OLD

        restarted = Weed(tmp_path / "own-s3", ports=s3.ports).start()  # back: same address and data
        wait_for(lambda: _version(service.url) == NEW, 30, "the promoted version once S3 answers")
        entries: list[dict[str, Any]] = reload_log(service)
        assert [e["message"] for e in entries if e["message"].startswith("model registry reachable")] == [
            "model registry reachable again"
        ]
        [swapped] = [e for e in entries if e["message"] == "model reloaded"]
        assert (swapped["old_version"], swapped["serving_version"], swapped["shadow_version"]) == (OLD, NEW, None)
        # /metrics is rendered at most once a second (METRICS_CACHE_SECONDS): read past that, then again
        # after a few polls that found S3 answering.
        time.sleep(METRICS_CACHE_SECONDS + 0.5)
        counted = _unreachable(service.url)
        time.sleep(3 * POLL_SECONDS + METRICS_CACHE_SECONDS + 0.5)
        assert _version(service.url) == NEW
        assert _unreachable(service.url) == counted  # no longer counting
    finally:
        service.stop()
        if restarted is not None:
            restarted.stop()


def test_every_s3_failure_reaches_the_follower_as_one_of_the_registrys_errors(weed: Weed, bucket: str) -> None:
    """registry.py's one translation of boto's errors: an absent pointer or version is an answer, anything
    else S3 says or does not say is RegistryUnreachable, named by what was asked."""
    import boto3

    present = Registry(f"s3://{bucket}/models/", client=weed.client())
    assert present.pointer("production") == Pointer(None, None)
    with pytest.raises(RegistryError, match=r"^model artifact s3://.*/lr-0000000000000000\.json: no such version"):
        present.load("lr-0000000000000000")
    missing = Registry("s3://no-such-bucket-here/models/", client=weed.client())
    with pytest.raises(
        RegistryUnreachable, match=r"^model pointer s3://no-such-bucket-here/models/production: NoSuchBucket: "
    ):
        missing.pointer("production")
    closed = f"http://127.0.0.1:{free_port()}"
    silent = boto3.client(
        "s3", endpoint_url=closed, aws_access_key_id="t", aws_secret_access_key="t", region_name="us-east-1"
    )
    with pytest.raises(RegistryUnreachable, match=r"^model artifact s3://b/models/versions/lr-1\.json: cannot fetch: "):
        Registry("s3://b/models/", client=silent).load("lr-1")
    with pytest.raises(RegistryUnreachable, match=r"^cannot store s3://b/models/versions/lr-[0-9a-f]+\.json: "):
        Registry("s3://b/models/", client=silent).publish(SHIPPED_MODEL.read_bytes(), "shipped")
    with pytest.raises(RegistryUnreachable, match=r"^cannot move shadow: "):
        Registry("s3://b/models/", client=silent).point("shadow", None)
