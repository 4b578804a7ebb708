"""The shipped data and model are reproducible from the code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from botscore.model import artifact
from botscore.settings import SHIPPED_MODEL
from botscore_train import dataset, training


def test_shipped_dataset_is_regenerated_byte_for_byte() -> None:
    assert dataset.generate_dataset() == dataset.DATA_FILE.read_bytes()


def test_dataset_is_plausible_overlapping_not_separable() -> None:
    _, labels, _ = dataset.read_dataset(dataset.DATA_FILE)
    assert len(labels) == dataset.ROWS
    assert 0.17 < sum(labels) / len(labels) < 0.23
    metrics = json.loads(SHIPPED_MODEL.read_text())["metrics"]
    assert 0.85 < metrics["roc_auc"] < 0.98  # informative, yet bots and humans overlap


def test_train_writes_the_shipped_artifact(tmp_path: Path) -> None:
    out = tmp_path / "model.json"
    document = training.train(dataset.DATA_FILE, out)
    shipped = json.loads(SHIPPED_MODEL.read_text())
    assert document["training"]["data_sha256"] == hashlib.sha256(dataset.DATA_FILE.read_bytes()).hexdigest()
    assert document["metrics"] == shipped["metrics"]
    assert abs(document["coefficients"][0] - shipped["coefficients"][0]) < 1e-9
    assert artifact.load(out).version.startswith("lr-")
    if document["training"]["sklearn_version"] == shipped["training"]["sklearn_version"]:
        assert document["version"] == shipped["version"]
