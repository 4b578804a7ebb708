"""`botscore import-model`: supported estimators become artifacts answering like predict_proba; others are refused."""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
import skops.io
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from botscore.model import artifact
from botscore.settings import SHIPPED_MODEL
from botscore_train import dataset, importer
from tests.support.servers import BIN, ROOT, Service

SUPPORTED = (
    "supported: a fitted LogisticRegression, or a Pipeline of StandardScaler then LogisticRegression, "
    "trained on the 2 features x1, x2 with classes 0 (human) and 1 (bot)"
)
FEATURES, LABELS, _ = dataset.read_dataset(dataset.DATA_FILE)
X, Y = FEATURES[:4000], LABELS[:4000]


def botscore(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "botscore"), *map(str, args)], cwd=ROOT, check=False, capture_output=True, text=True, timeout=60
    )


def scaled_pipeline() -> object:
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.3, class_weight="balanced")).fit(X, Y)


@pytest.mark.slow
def test_a_skops_pipeline_imported_by_the_cli_answers_like_predict_proba_over_http(tmp_path: Path) -> None:
    estimator = scaled_pipeline()
    skops.io.dump(estimator, tmp_path / "model.skops")
    result = botscore("import-model", tmp_path / "model.skops", "--output", tmp_path / "model.json")
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "model.json").read_text())
    assert result.stdout == f"wrote {tmp_path / 'model.json'}: version {document['version']}\n"
    assert document["preprocessing"]["kind"] == "standard_scaler"
    inputs = [(0.1, 0.2), (1.75, 0.25), (0.7, 0.75), (1.45, 1.2), (-3.0, 4.0), (1e6, -1e6), (0.0, -0.0)]
    expected = estimator.predict_proba(np.array(inputs))[:, 1]
    service = Service(tmp_path, model_path=tmp_path / "model.json").start()
    try:
        with httpx.Client(base_url=service.url, timeout=5) as client:
            for (x1, x2), theirs in zip(inputs, expected, strict=True):
                response = client.post("/bot-score", json={"x1": x1, "x2": x2})
                assert response.headers["x-model-version"] == document["version"]
                assert abs(response.json()["p_bot"] - float(theirs)) <= 1e-12
    finally:
        assert service.stop() == -signal.SIGTERM


def test_a_pickle_is_refused_without_trust_pickle_and_imported_with_it(tmp_path: Path) -> None:
    estimator = scaled_pipeline()
    source = tmp_path / "model.pkl"
    source.write_bytes(pickle.dumps(estimator))
    refused = botscore("import-model", source, "--output", tmp_path / "refused.json")
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        f"botscore: {source} is not a skops file; a pickle or joblib file runs code when it is loaded, "
        "so pass --trust-pickle if you trust where it came from, or save the model with skops.io.dump"
    )
    assert not (tmp_path / "refused.json").exists()
    trusted = botscore("import-model", source, "--trust-pickle", "--output", tmp_path / "model.json")
    assert trusted.returncode == 0, trusted.stderr
    document = json.loads((tmp_path / "model.json").read_text())
    assert document["training"]["source_format"] == "pickle"


def test_a_random_forest_is_refused_with_what_is_supported(tmp_path: Path) -> None:
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(X, Y)
    skops.io.dump(forest, tmp_path / "forest.skops")
    result = botscore("import-model", tmp_path / "forest.skops", "--output", tmp_path / "forest.json")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"botscore: cannot import a RandomForestClassifier; {SUPPORTED}"
    assert not (tmp_path / "forest.json").exists()


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        (
            RandomForestClassifier(n_estimators=2, random_state=0).fit(X, Y),
            f"cannot import a RandomForestClassifier; {SUPPORTED}",
        ),
        (
            make_pipeline(MinMaxScaler(), LogisticRegression()).fit(X, Y),
            f"cannot import a Pipeline of MinMaxScaler, LogisticRegression; {SUPPORTED}",
        ),
        (LogisticRegression(), f"the LogisticRegression is not fitted; {SUPPORTED}"),
        (
            LogisticRegression().fit(X, ["bot" if y else "human" for y in Y]),
            f"the model's classes are ['bot', 'human'], expected [0, 1] (1 = bot); {SUPPORTED}",
        ),
        (
            LogisticRegression().fit([[a, b, a * b] for a, b in X], Y),
            f"the model has coefficients of shape (1, 3), expected (1, 2); {SUPPORTED}",
        ),
    ],
)
def test_unsupported_estimators_are_refused_with_what_is_supported(
    tmp_path: Path, estimator: object, message: str
) -> None:
    joblib.dump(estimator, tmp_path / "model.joblib")
    with pytest.raises(importer.ImportRefused) as info:
        importer.import_model(tmp_path / "model.joblib", tmp_path / "model.json", trust_pickle=True)
    assert str(info.value) == message
    assert not (tmp_path / "model.json").exists()


def test_versions_differ_between_estimators_and_source_files_and_repeat_for_the_same_file(tmp_path: Path) -> None:
    pipeline = scaled_pipeline()
    skops.io.dump(pipeline, tmp_path / "a.skops")
    joblib.dump(pipeline, tmp_path / "a.joblib")  # the same model in another file
    skops.io.dump(LogisticRegression().fit(X, Y), tmp_path / "b.skops")
    first = importer.import_model(tmp_path / "a.skops", tmp_path / "a1.json")
    again = importer.import_model(tmp_path / "a.skops", tmp_path / "a2.json")
    other = importer.import_model(tmp_path / "b.skops", tmp_path / "b.json")
    copy = importer.import_model(tmp_path / "a.joblib", tmp_path / "copy.json", trust_pickle=True)
    assert (tmp_path / "a1.json").read_bytes() == (tmp_path / "a2.json").read_bytes()
    assert first["version"] == again["version"]
    assert len({first["version"], other["version"], copy["version"], artifact.load(SHIPPED_MODEL).version}) == 4
    assert copy["coefficients"] == first["coefficients"]
    assert first["training"]["source_sha256"] != copy["training"]["source_sha256"]


def test_import_with_data_adds_metrics_and_a_model_card(tmp_path: Path) -> None:
    skops.io.dump(scaled_pipeline(), tmp_path / "model.skops")
    document = importer.import_model(
        tmp_path / "model.skops", tmp_path / "model.json", data=dataset.DATA_FILE, card=tmp_path / "model.md"
    )
    assert set(document["metrics"]) == {"roc_auc", "log_loss", "brier_score", "n_test"}
    assert document["metrics"]["n_test"] == len(LABELS)
    assert 0.9 < document["metrics"]["roc_auc"] < 0.97
    assert document["training"]["evaluated_on"] == "transactions.csv"
    card = (tmp_path / "model.md").read_text()
    assert f"# Model card: {document['version']}" in card
    assert f"| ROC AUC | {document['metrics']['roc_auc']} |" in card
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "calibration.png",
        "roc.png",
        "scores.png",
        "surface.png",
    ]
