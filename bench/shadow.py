"""A model registry with a shadow set, for measuring what shadow scoring costs (`BENCH_SHADOW=1 make bench`,
`python bench/instructions.py shadow`): the shipped model in production, a sealed variant of it in shadow."""

from __future__ import annotations

import json
from typing import Any

from botscore.model import artifact, manage
from botscore.model.registry import Registry
from botscore.settings import SHIPPED_MODEL

BUCKET = "bench-models"


def registry(client: Any, *, shadow: bool = True) -> str:
    """The URL of a registry in BUCKET (a new bucket) serving the shipped model, its variant in shadow or none."""
    client.create_bucket(Bucket=BUCKET)
    url = f"s3://{BUCKET}/models/bot-score/"
    models = Registry(url, client=client)
    shipped, _ = models.publish(SHIPPED_MODEL.read_bytes(), str(SHIPPED_MODEL))
    document = json.loads(SHIPPED_MODEL.read_text())
    variant, _ = models.publish(json.dumps(artifact.seal({**document, "intercept": -0.5})).encode(), "variant")
    manage.promote(models, shipped.version)
    manage.shadow(models, variant.version if shadow else None)
    return url
