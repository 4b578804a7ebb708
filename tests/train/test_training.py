"""The shipped data and model are reproducible from the code."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from botscore.model import artifact
from botscore.settings import SHIPPED_MODEL
from botscore_train import dataset, training
from tests.support.servers import BIN, ROOT


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


def botscore(*args: object, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "botscore"), *map(str, args)], cwd=cwd, check=False, capture_output=True, text=True, timeout=120
    )


def test_train_needs_an_output_and_never_writes_over_the_shipped_model_unless_asked(tmp_path: Path) -> None:
    shipped, card = SHIPPED_MODEL.read_bytes(), (ROOT / "docs" / "model-card.md").read_bytes()
    missing = botscore("train")
    assert missing.returncode == 2
    assert "the following arguments are required: --output" in missing.stderr
    refused = botscore("train", "--output", SHIPPED_MODEL)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"botscore: {SHIPPED_MODEL} is the shipped artifact; write elsewhere with --output, "
        "or pass --replace-shipped to replace it\n"
    )
    card_refused = botscore("train", "--output", tmp_path / "m.json", "--card", "docs/model-card.md")
    assert card_refused.returncode == 1
    assert "docs/model-card.md is the shipped model card" in card_refused.stderr
    data_refused = botscore("make-data")
    assert data_refused.returncode == 1 and "is the shipped dataset" in data_refused.stderr
    assert SHIPPED_MODEL.read_bytes() == shipped and (ROOT / "docs" / "model-card.md").read_bytes() == card
    assert not (tmp_path / "m.json").exists()


def _own_data(path: Path) -> None:
    """A CSV as a platform would export it: its own distributions, a 10 % bot share, extra columns."""
    rng = np.random.default_rng(7)
    rows = 4000
    is_bot = rng.random(rows) < 0.1
    x1 = np.where(is_bot, rng.normal(0.9, 0.4, rows), rng.normal(1.9, 0.3, rows))
    x2 = np.where(is_bot, np.abs(rng.normal(0.9, 0.4, rows)), np.abs(rng.normal(0.2, 0.2, rows)))
    lines = ["payment_id,x1,x2,is_bot"] + [
        f"p{i},{a:.6f},{b:.6f},{int(label)}" for i, (a, b, label) in enumerate(zip(x1, x2, is_bot, strict=True))
    ]
    path.write_text("\n".join(lines) + "\n")


def test_the_recipe_trains_on_your_csv_and_reports_held_out_rows(tmp_path: Path) -> None:
    mine = tmp_path / "mine.csv"
    _own_data(mine)
    result = botscore("train", "--data", mine, "--output", tmp_path / "models" / "mine.json")
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "models" / "mine.json").read_text())
    assert document["metrics"]["n_test"] == 1000 and document["metrics"]["n_train"] == 3000
    assert document["training"]["data_file"] == "mine.csv"
    assert artifact.load(tmp_path / "models" / "mine.json").version == document["version"]
    card = (tmp_path / "models" / "mine.md").read_text()
    assert "## Metrics (held-out split: 1000 transactions, " in card
    assert "`mine.csv` (4,000 rows, SHA-256" in card and "Synthetic" not in card


def test_split_data_then_import_evaluates_on_held_out_rows_only(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    mine = tmp_path / "mine.csv"
    _own_data(mine)
    result = botscore(
        "split-data", mine, "--train-output", tmp_path / "train.csv", "--test-output", tmp_path / "test.csv"
    )
    assert result.returncode == 0, result.stderr
    train_x, train_y, _ = dataset.read_dataset(tmp_path / "train.csv")
    test_x, test_y, _ = dataset.read_dataset(tmp_path / "test.csv")
    all_x, all_y, _ = dataset.read_dataset(mine)
    assert (len(train_y), len(test_y)) == (3000, 1000)
    assert sorted(map(tuple, train_x + test_x)) == sorted(map(tuple, all_x))  # every row once, read back exactly
    assert test_x == dataset.split(all_x, all_y)[1]  # the rows `botscore train` holds out
    import skops.io

    skops.io.dump(LogisticRegression().fit(train_x, train_y), tmp_path / "model.skops")
    imported = botscore(
        "import-model", tmp_path / "model.skops", "--output", tmp_path / "model.json", "--data", tmp_path / "test.csv"
    )
    assert imported.returncode == 0, imported.stderr
    document = json.loads((tmp_path / "model.json").read_text())
    assert document["metrics"]["n_test"] == 1000
    assert "evaluates it on every row of `test.csv`" in (tmp_path / "model.md").read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("x1,x2,label\n1,2,0\n", "no column is_bot (the columns must be x1, x2, is_bot)"),
        ("x1,x2,is_bot\n1,2,0\n1,abc,1\n", "line 3: x1 and x2 must be numbers"),
        ("x1,x2,is_bot\n1,2,0\n1,nan,1\n", "line 3: x1 and x2 must be finite numbers"),
        ("x1,x2,is_bot\n1,2,0\n1,2,yes\n", "line 3: is_bot must be 0 (human) or 1 (bot), got 'yes'"),
        ("x1,x2,is_bot\n1,2,0\n1,3,0\n", "needs rows of both classes (is_bot 0 and 1), has 2 rows of {0}"),
    ],
)
def test_a_csv_that_cannot_be_trained_on_is_refused_with_one_line(tmp_path: Path, content: str, message: str) -> None:
    data = tmp_path / "bad.csv"
    data.write_text(content)
    result = botscore("train", "--data", data, "--output", tmp_path / "m.json")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"botscore: {data}{',' if 'line' in message else ':'} {message}"
    assert not (tmp_path / "m.json").exists()
