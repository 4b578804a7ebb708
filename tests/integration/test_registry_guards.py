"""The registry's and the shadow's guards, each with the bug it stops (issue 33's mutation survivors):
a stored object that is not the version its key names, both pointers moving in one poll, replaced
versions in `status`, a zero scale, and the shadow's difference and disagreements the right way round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from botscore.model import artifact, manage
from botscore.model.artifact import ArtifactError
from botscore.model.follow import Follower
from botscore.model.registry import Registry, RegistryError
from botscore.ops.metrics import Metrics
from botscore.settings import SHIPPED_MODEL
from tests.support.models import NEW, NEW_DOCUMENT, OLD, SHIPPED
from tests.support.servers import Service, Weed, wait_for

pytestmark = pytest.mark.slow

THIRD_DOCUMENT = artifact.seal({**SHIPPED, "intercept": SHIPPED["intercept"] + 0.5})
THIRD = THIRD_DOCUMENT["version"]


def _registry(weed: Weed, bucket: str, name: str) -> Registry:
    return Registry(f"s3://{bucket}/{name}/", client=weed.client())


def test_publishing_a_version_whose_stored_object_is_corrupt_is_refused(weed: Weed, bucket: str) -> None:
    registry = _registry(weed, bucket, "corrupt-stored")
    weed.client().put_object(Bucket=bucket, Key=registry.artifact_key(OLD), Body=b'{"not": "an artifact"}')
    with pytest.raises(ArtifactError, match="missing field"):
        registry.publish(SHIPPED_MODEL.read_bytes(), "shipped")


def test_loading_a_version_whose_key_holds_another_version_is_refused(weed: Weed, bucket: str) -> None:
    registry = _registry(weed, bucket, "wrong-version")
    weed.client().put_object(Bucket=bucket, Key=registry.artifact_key(NEW), Body=SHIPPED_MODEL.read_bytes())
    with pytest.raises(RegistryError, match=f"holds version {OLD}, not {NEW}"):
        registry.load(NEW)


def test_a_poll_that_finds_both_pointers_moved_takes_both(weed: Weed, bucket: str) -> None:
    registry = _registry(weed, bucket, "both-moved")
    for document in (SHIPPED, NEW_DOCUMENT, THIRD_DOCUMENT):
        registry.publish(json.dumps(document).encode(), "test")
    manage.promote(registry, OLD)
    manage.shadow(registry, NEW)
    follower = Follower(registry)
    first = follower.first(lambda: artifact.load(SHIPPED_MODEL))
    assert (first.version, first.shadow and first.shadow.version) == (OLD, NEW)
    manage.promote(registry, NEW)
    manage.shadow(registry, THIRD)
    pair = follower.poll()
    assert pair is not None
    assert (pair.version, pair.shadow and pair.shadow.version) == (NEW, THIRD)


def test_status_lists_what_the_workers_serve_now_not_what_they_replaced(
    tmp_path: Path, weed: Weed, bucket: str
) -> None:
    registry = _registry(weed, bucket, "status")
    for document in (SHIPPED, NEW_DOCUMENT):
        registry.publish(json.dumps(document).encode(), "test")
    manage.promote(registry, OLD)
    service = Service(tmp_path, model_registry=registry.url, model_poll_seconds=0.2, **weed.aws_env()).start()
    try:
        manage.promote(registry, NEW)
        wait_for(lambda: any(f"production: {NEW} (" in line for line in manage.status(registry, service.url)[1:]), 20,
                 "the service serving the new version")  # fmt: skip
        serving = manage.status(registry, service.url)
    finally:
        service.stop()
    assert serving[0] == f"production: {NEW} (pointer)"
    assert not any(OLD in line for line in serving), serving  # OLD was replaced: its gauge is 0


def test_a_scale_of_zero_is_refused() -> None:
    document = {**SHIPPED, "preprocessing": {"kind": "standard_scaler", "mean": [0.0, 0.0], "scale": [0.0, 1.0]}}
    with pytest.raises(ValueError, match=r"preprocessing.scale must be positive, got \[0.0, 1.0\]"):
        artifact.parse(artifact.seal(document))


def _exposed(metrics: Metrics) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        sample.name + str(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
    }


def test_the_shadow_difference_is_shadow_minus_production_and_disagreements_count_across_the_threshold() -> None:
    metrics = Metrics(shadow_threshold=0.5)
    metrics.note_shadowed((0.1, 0.2, 0.2, 0.7))  # production 0.2, shadow 0.7: +0.5, on the other side
    metrics.note_shadowed((0.1, 0.2, 0.6, 0.55))  # -0.05, same side
    metrics.flush()
    found = _exposed(metrics)
    assert found["botscore_shadow_disagreements_total[]"] == 1
    assert found["botscore_shadow_p_bot_difference_sum[]"] == pytest.approx(0.5 - 0.05)
    # The scores histogram holds production's scores, not the shadow's.
    assert found["botscore_p_bot_sum[]"] == pytest.approx(0.2 + 0.6)
