"""The shipped data and model are reproducible from the code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from app import artifact, training
from app.settings import SHIPPED_MODEL


def test_shipped_dataset_is_regenerated_byte_for_byte() -> None:
    assert training.generate_dataset() == training.DATA_FILE.read_bytes()


def test_dataset_is_plausible_overlapping_not_separable() -> None:
    features, labels, _ = training.read_dataset(training.DATA_FILE)
    assert len(labels) == training.ROWS
    assert 0.17 < sum(labels) / len(labels) < 0.23
    metrics = json.loads(SHIPPED_MODEL.read_text())["metrics"]
    assert 0.85 < metrics["roc_auc"] < 0.98  # informative, yet bots and humans overlap


def test_train_writes_the_shipped_artifact(tmp_path: Path) -> None:
    out = tmp_path / "model.json"
    document = training.train(training.DATA_FILE, out)
    shipped = json.loads(SHIPPED_MODEL.read_text())
    assert document["training"]["data_sha256"] == hashlib.sha256(training.DATA_FILE.read_bytes()).hexdigest()
    assert document["metrics"] == shipped["metrics"]
    assert abs(document["coefficients"][0] - shipped["coefficients"][0]) < 1e-9
    assert artifact.load(out).version.startswith("lr-")
    if document["training"]["sklearn_version"] == shipped["training"]["sklearn_version"]:
        assert document["version"] == shipped["version"]
