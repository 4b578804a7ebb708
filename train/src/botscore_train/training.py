"""`botscore train`: fit scikit-learn's LogisticRegression on the dataset and write the artifact and its card."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botscore.model import artifact, baseline
from botscore.ops.buckets import P_BOT_BUCKETS, X1_BUCKETS, X2_BUCKETS
from botscore_train import modelcard
from botscore_train.dataset import DATA_FILE, SEED, SYNTHETIC_DESCRIPTION, TEST_SIZE, read_dataset, split
from botscore_train.evaluation import held_out_metrics


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


def training_baseline(estimator: Any, features: list[list[float]]) -> dict[str, Any]:
    """The artifact's `baseline`: the shares of the rows trained on, and of their scores, in each bucket of the
    service's histograms, which drift is measured against (model/baseline.py)."""
    p_bot = [float(p) for p in estimator.predict_proba(features)[:, 1]]
    return baseline.as_document(
        {
            "x1": baseline.distribution(X1_BUCKETS, (row[0] for row in features)),
            "x2": baseline.distribution(X2_BUCKETS, (row[1] for row in features)),
            "p_bot": baseline.distribution(P_BOT_BUCKETS, p_bot),
        }
    )


def document_from_estimator(
    estimator: Any, metrics: dict[str, Any], training: dict[str, Any], drift_baseline: dict[str, Any] | None = None
) -> dict[str, Any]:
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
            **({"baseline": drift_baseline} if drift_baseline is not None else {}),
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
        training_baseline(estimator, split(features, labels)[0]),
    )
    progress(f"writing {output}")
    artifact.write(document, output)
    if card is not None:
        _, x_test, _, y_test = split(features, labels)
        modelcard.write(
            document,
            x_test,
            y_test,
            card,
            progress=progress,
            evaluated_on="held-out split",
            data_description=describe_data(data, data_sha256, len(labels)),
        )
    return document


def describe_data(data: Path, sha256: str, rows: int) -> str:
    """The card's account of the training data: ours is synthetic (and says how it was made); yours is yours."""
    held_out = f"{TEST_SIZE:.0%} of the rows, stratified, seed {SEED}, were held out and never trained on."
    if data.resolve() == DATA_FILE.resolve():
        return f"{SYNTHETIC_DESCRIPTION} {held_out}"
    return (
        f"`{data.name}` ({rows:,} rows, SHA-256 `{sha256}`), supplied by whoever trained this model: "
        f"write here where its rows and labels came from. {held_out}"
    )
