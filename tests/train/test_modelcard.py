"""`botscore train` writes a model card: held-out metrics and four real PNG plots; the shipped card is current."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

from botscore.settings import SHIPPED_MODEL
from botscore_train import modelcard
from tests.support.servers import BIN, ROOT

SHIPPED_CARD = ROOT / "docs" / "model-card.md"
PLOTS = ["calibration.png", "roc.png", "scores.png", "surface.png"]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG signature and its first chunk, which must be IHDR."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert head[12:16] == b"IHDR", f"{path} does not start with IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_the_shipped_card_describes_the_shipped_model_with_its_held_out_metrics() -> None:
    shipped = json.loads(SHIPPED_MODEL.read_text())
    card = SHIPPED_CARD.read_text()
    metrics = shipped["metrics"]
    assert card.startswith(f"# Model card: {shipped['version']}\n")
    assert f"## Metrics (held-out split: {metrics['n_test']} transactions, " in card
    assert f"| ROC AUC | {metrics['roc_auc']} |" in card
    assert f"| log loss | {metrics['log_loss']} |" in card
    assert f"| Brier score | {metrics['brier_score']} |" in card
    for name, title in modelcard.FIGURES.items():
        assert f"![{title}](model-card/{name})" in card


def test_the_shipped_plots_are_pngs_of_800_by_600() -> None:
    folder = SHIPPED_CARD.parent / "model-card"
    assert sorted(p.name for p in folder.iterdir()) == PLOTS
    for name in PLOTS:
        assert png_size(folder / name) == (800, 600)


def test_train_shows_progress_and_reproduces_the_shipped_card_byte_for_byte(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "botscore"), "train", "--output", str(tmp_path / "model.json")],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    steps = [line.split("] ", 1)[1] for line in result.stderr.splitlines()]
    assert steps == [
        f"reading {ROOT / 'data' / 'transactions.csv'}",
        "fitting LogisticRegression on 20000 rows",
        f"writing {tmp_path / 'model.json'}",
        *(f"plotting {title.lower()} -> {tmp_path / 'model' / name}" for name, title in modelcard.FIGURES.items()),
    ]
    assert (tmp_path / "model.json").read_bytes() == SHIPPED_MODEL.read_bytes()
    card = (tmp_path / "model.md").read_text()
    assert card == SHIPPED_CARD.read_text().replace("](model-card/", "](model/")
    for name in PLOTS:
        assert png_size(tmp_path / "model" / name) == (800, 600)
        assert (tmp_path / "model" / name).read_bytes() == (SHIPPED_CARD.parent / "model-card" / name).read_bytes()


def test_the_shipped_card_says_what_the_model_is_for_and_how_it_fails() -> None:
    card = SHIPPED_CARD.read_text()
    for heading in (
        "## What it is for",
        "## What it must not be used for alone",
        "## Training data",
        "## Known failure modes",
        "## Choosing a threshold",
        "## What to monitor in production",
    ):
        assert f"\n{heading}\n" in card, heading
    training_data = card.split("## Training data", 1)[1].split("##", 1)[0]
    assert training_data.strip().startswith("Synthetic: 20,000 checkouts drawn by `botscore make-data`")
    assert "seed 20261127" in training_data
    assert "carrier-grade NAT" in card
    assert "Declining a payment or blocking a customer on the score alone" in card


def test_the_threshold_table_holds_on_the_held_out_rows() -> None:
    """Each row's threshold, as printed, keeps the share of people flagged within its budget, as stated."""
    from botscore.model import artifact
    from botscore.model.scorer import Scorer
    from botscore_train import dataset, guidance

    features, labels, _ = dataset.read_dataset(dataset.DATA_FILE)
    _, x_test, _, y_test = dataset.split(features, labels)
    scorer = Scorer(artifact.load(SHIPPED_MODEL))
    scores = [scorer.p_bot(a, b) for a, b in x_test]
    humans = [p for p, label in zip(scores, y_test, strict=True) if label == 0]
    bots = [p for p, label in zip(scores, y_test, strict=True) if label == 1]
    table = SHIPPED_CARD.read_text().split("| false-positive budget |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    assert len(rows) == len(guidance.FP_BUDGETS)
    for row, budget in zip(rows, guidance.FP_BUDGETS, strict=True):
        threshold = float(row[1])
        flagged = sum(p >= threshold for p in humans) / len(humans)
        caught = sum(p >= threshold for p in bots) / len(bots)
        assert flagged <= budget
        assert row[0] == f"| {budget:.1%}" and row[2] == f"{flagged:.2%}" and row[3] == f"{caught:.1%}"
