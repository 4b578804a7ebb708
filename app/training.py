"""Training: the labelled dataset and `botscore train` (needs the `train` extra: scikit-learn).

The features, as a payments platform would log them per checkout:

- x1: log10 of the seconds from loading the checkout page to submitting payment.
  People take half a minute to a few minutes; scripts submit within seconds, though
  careful bots add random delays, so the classes overlap.
- x2: log10(1 + checkout attempts from the same client IP in the past hour).
  Most people try once or twice; bots retry and rotate cards, but share IPs with
  people behind carrier NAT, so again the classes overlap.

The dataset is synthetic, drawn from those class-conditional distributions with a fixed
seed, and shipped as CSV (the file is the source of truth; its SHA-256 is in the artifact).
"""

from __future__ import annotations

import csv
import hashlib
import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app import artifact

SEED = 20261127
ROWS = 20_000
BOT_SHARE = 0.2
TEST_SIZE = 0.25
DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "transactions.csv"


def generate_dataset(rows: int = ROWS, seed: int = SEED) -> bytes:
    """The CSV (x1, x2, is_bot) drawn deterministically from `seed`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    is_bot = rng.random(rows) < BOT_SHARE
    fast = rng.random(rows) < 0.6  # scripted bots without delays
    human_x1 = rng.normal(1.75, 0.35, rows)
    bot_x1 = np.where(fast, rng.normal(0.7, 0.35, rows), rng.normal(1.45, 0.4, rows))
    human_x2 = np.abs(rng.normal(0.25, 0.25, rows))
    bot_x2 = np.abs(rng.normal(0.75, 0.45, rows))
    x1 = np.where(is_bot, bot_x1, human_x1)
    x2 = np.where(is_bot, bot_x2, human_x2)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["x1", "x2", "is_bot"])
    for a, b, label in zip(x1, x2, is_bot, strict=True):
        writer.writerow([f"{a:.6f}", f"{b:.6f}", int(label)])
    return out.getvalue().encode()


def read_dataset(path: Path) -> tuple[list[list[float]], list[int], str]:
    """Features, labels and the file's SHA-256."""
    raw = path.read_bytes()
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    features = [[float(row["x1"]), float(row["x2"])] for row in rows]
    labels = [int(row["is_bot"]) for row in rows]
    return features, labels, hashlib.sha256(raw).hexdigest()


def split(features: list[list[float]], labels: list[int]) -> tuple[list[Any], list[Any], list[int], list[int]]:
    """The stratified train/held-out split every metric and plot is computed on (fixed seed)."""
    from sklearn.model_selection import train_test_split

    return train_test_split(features, labels, test_size=TEST_SIZE, stratify=labels, random_state=SEED)


def held_out_metrics(labels: list[int], p_bot: list[float]) -> dict[str, float]:
    """ROC AUC, log loss and Brier score of `p_bot` against `labels`, rounded for a stable artifact."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    return {
        "roc_auc": round(float(roc_auc_score(labels, p_bot)), 6),
        "log_loss": round(float(log_loss(labels, p_bot, labels=[0, 1])), 6),
        "brier_score": round(float(brier_score_loss(labels, p_bot)), 6),
    }


def fit(features: list[list[float]], labels: list[int]) -> tuple[Any, dict[str, float]]:
    """Fit LogisticRegression on a stratified split; return the estimator and held-out metrics."""
    from sklearn.linear_model import LogisticRegression

    x_train, x_test, y_train, y_test = split(features, labels)
    estimator = LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000)
    estimator.fit(x_train, y_train)
    p_test = estimator.predict_proba(x_test)[:, 1]
    metrics = {
        **held_out_metrics(y_test, p_test),
        "n_train": len(y_train),
        "n_test": len(y_test),
        "bot_share_test": round(sum(y_test) / len(y_test), 6),
    }
    return estimator, metrics


def document_from_estimator(estimator: Any, metrics: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    """Artifact document for a fitted LogisticRegression, or a Pipeline(StandardScaler, LogisticRegression)."""
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    preprocessing: dict[str, Any] = {"kind": "none"}
    model = estimator
    if isinstance(estimator, Pipeline):
        steps = [step for _, step in estimator.steps]
        if len(steps) != 2 or not isinstance(steps[0], StandardScaler) or not isinstance(steps[1], LogisticRegression):
            raise TypeError("supported: LogisticRegression, or Pipeline(StandardScaler, LogisticRegression)")
        scaler, model = steps
        preprocessing = {
            "kind": "standard_scaler",
            "mean": [float(v) for v in (scaler.mean_ if scaler.with_mean else [0.0, 0.0])],
            "scale": [float(v) for v in (scaler.scale_ if scaler.with_std else [1.0, 1.0])],
        }
    if not isinstance(model, LogisticRegression):
        raise TypeError("supported: LogisticRegression, or Pipeline(StandardScaler, LogisticRegression)")
    if model.coef_.shape != (1, 2):
        raise TypeError(f"expected a binary model on 2 features, coef_ has shape {model.coef_.shape}")
    return artifact.seal(
        {
            "format": artifact.FORMAT,
            "features": list(artifact.FEATURES),
            "preprocessing": preprocessing,
            "coefficients": [float(v) for v in model.coef_[0]],
            "intercept": float(model.intercept_[0]),
            "metrics": metrics,
            "training": {**training, "sklearn_version": sklearn.__version__},
        }
    )


def train(
    data: Path, output: Path, *, card: Path | None = None, progress: Callable[[str], None] = lambda step: None
) -> dict[str, Any]:
    """Train on the CSV at `data`, write the artifact to `output` (and a model card to `card`), return it.

    `progress` is told each step as it starts; the command line prints them, since the card's
    plots make training take a few seconds.
    """
    progress(f"reading {data}")
    features, labels, data_sha256 = read_dataset(data)
    progress(f"fitting LogisticRegression on {len(labels)} rows")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a convergence warning must fail training, not ship
        estimator, metrics = fit(features, labels)
    document = document_from_estimator(
        estimator,
        metrics,
        {
            "data_file": data.name,
            "data_sha256": data_sha256,
            "estimator": "LogisticRegression(C=1.0, solver='lbfgs')",
            "split": {"test_size": TEST_SIZE, "stratify": True, "random_state": SEED},
        },
    )
    progress(f"writing {output}")
    artifact.write(document, output)
    if card is not None:
        from app import modelcard

        _, x_test, _, y_test = split(features, labels)
        modelcard.write(document, x_test, y_test, card, progress=progress, evaluated_on="held-out split")
    return document
