"""The model card: Markdown with a model's metrics and four PNG plots, for people deciding whether to ship it.

Scores come from `Scorer` on the artifact itself (not from the estimator), so the card shows
what the service would answer. Plots are drawn with matplotlib's Agg canvas and no pyplot
state, at a fixed size, without a timestamp, so the same model and data give the same files.
Part of botscore-train (matplotlib, scikit-learn).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from botscore.model import artifact
from botscore.model.scorer import Scorer
from botscore_train import guidance
from botscore_train.evaluation import held_out_metrics

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 6.0, 100  # every plot is 800 x 600 pixels
FIGURES = {
    "roc.png": "ROC curve",
    "calibration.png": "Calibration (reliability) curve",
    "scores.png": "Score distribution per class",
    "surface.png": "Decision surface over (x1, x2) with the data",
}
THRESHOLD = 0.5
_HUMAN, _BOT = "#1f77b4", "#d62728"


def figure_dir(card: Path) -> Path:
    """Where the card's plots go: `docs/model-card.md` -> `docs/model-card/`."""
    return card.parent / card.stem


def write(
    document: dict[str, Any],
    features: Sequence[Sequence[float]],
    labels: Sequence[int],
    card: Path,
    *,
    evaluated_on: str,
    data_description: str,
    progress: Callable[[str], None] = lambda step: None,
) -> list[Path]:
    """Score `features` with the artifact, write the plots and the Markdown card; return the files written."""
    import matplotlib

    matplotlib.use("Agg")

    scorer = Scorer(artifact.parse(document))
    p_bot = [scorer.p_bot(float(x1), float(x2)) for x1, x2 in features]
    y = [int(label) for label in labels]
    folder = figure_dir(card)
    folder.mkdir(parents=True, exist_ok=True)
    drawers: dict[str, Callable[..., None]] = {
        "roc.png": _roc,
        "calibration.png": _calibration,
        "scores.png": _scores,
        "surface.png": _surface,
    }
    written = []
    for name, title in FIGURES.items():
        progress(f"plotting {title.lower()} -> {folder / name}")
        figure = _figure()
        drawers[name](figure, scorer=scorer, features=features, y=y, p_bot=p_bot)
        figure.suptitle(f"{title}: {scorer.version}")
        written.append(_save(figure, folder / name))
    metrics = held_out_metrics(y, p_bot)
    at_threshold = _at_threshold(y, p_bot)
    advice = guidance.sections(
        scorer,
        features,
        y,
        p_bot,
        data_description=data_description,
        threshold=THRESHOLD,
        false_positive_rate=at_threshold["false_positive_rate"],
    )
    card.write_text(
        _markdown(
            document,
            metrics,
            at_threshold,
            advice,
            rows=len(y),
            bots=sum(y),
            evaluated_on=evaluated_on,
            folder=folder.name,
        )
    )
    return [card, *written]


def _figure() -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path) -> Path:
    figure.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def _roc(figure: Any, *, y: list[int], p_bot: list[float], **_: Any) -> None:
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _thresholds = roc_curve(y, p_bot)
    axes = figure.add_subplot()
    axes.plot(fpr, tpr, color=_BOT, label=f"model (AUC {roc_auc_score(y, p_bot):.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", label="chance")
    axes.set(xlabel="false-positive rate (humans flagged)", ylabel="true-positive rate (bots caught)")
    axes.set(xlim=(0, 1), ylim=(0, 1.01))
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)


def _calibration(figure: Any, *, y: list[int], p_bot: list[float], **_: Any) -> None:
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y, p_bot, n_bins=10, strategy="quantile")
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    axes.plot(predicted, observed, marker="o", color=_BOT, label="model (10 equal-count bins)")
    axes.set(xlabel="mean predicted p_bot in bin", ylabel="observed share of bots in bin")
    axes.set(xlim=(0, 1), ylim=(0, 1))
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)


def _scores(figure: Any, *, y: list[int], p_bot: list[float], **_: Any) -> None:
    bins = [i / 40 for i in range(41)]
    axes = figure.add_subplot()
    humans = [p for p, label in zip(p_bot, y, strict=True) if label == 0]
    bots = [p for p, label in zip(p_bot, y, strict=True) if label == 1]
    axes.hist(humans, bins=bins, color=_HUMAN, alpha=0.6, label=f"humans ({len(humans)})")
    axes.hist(bots, bins=bins, color=_BOT, alpha=0.6, label=f"bots ({len(bots)})")
    axes.axvline(THRESHOLD, color="black", linestyle=":", label=f"threshold {THRESHOLD}")
    axes.set(xlabel="p_bot", ylabel="transactions (log scale)", yscale="log", xlim=(0, 1))
    axes.legend(loc="upper center")


def _surface(figure: Any, *, scorer: Scorer, features: Sequence[Sequence[float]], y: list[int], **_: Any) -> None:
    import numpy as np

    points = np.asarray(features, dtype=float)
    low, high = np.percentile(points, 0.5, axis=0), np.percentile(points, 99.5, axis=0)
    pad = (high - low) * 0.05
    x1 = np.linspace(low[0] - pad[0], high[0] + pad[0], 200)
    x2 = np.linspace(low[1] - pad[1], high[1] + pad[1], 200)
    grid = np.array([[scorer.p_bot(float(a), float(b)) for a in x1] for b in x2])
    axes = figure.add_subplot()
    filled = axes.contourf(x1, x2, grid, levels=[i / 10 for i in range(11)], cmap="RdBu_r", alpha=0.55)
    boundary = axes.contour(x1, x2, grid, levels=[THRESHOLD], colors="black", linewidths=1.5)
    axes.clabel(boundary, fmt={THRESHOLD: f"p_bot = {THRESHOLD}"})
    labels = np.asarray(y)
    for value, color, marker, name in ((0, _HUMAN, "o", "humans"), (1, _BOT, "x", "bots")):
        chosen = points[labels == value]
        axes.scatter(chosen[:, 0], chosen[:, 1], s=4, c=color, marker=marker, alpha=0.4, linewidths=0.6, label=name)
    axes.set(xlabel="x1 = log10(seconds to pay)", ylabel="x2 = log10(1 + attempts from the IP in the past hour)")
    axes.set(xlim=(x1[0], x1[-1]), ylim=(x2[0], x2[-1]))
    axes.legend(loc="upper right", markerscale=3)
    figure.colorbar(filled, ax=axes, label="p_bot")


def _at_threshold(y: list[int], p_bot: list[float]) -> dict[str, float]:
    flagged = [p >= THRESHOLD for p in p_bot]
    true_pos = sum(1 for f, label in zip(flagged, y, strict=True) if f and label == 1)
    false_pos = sum(1 for f, label in zip(flagged, y, strict=True) if f and label == 0)
    bots = sum(y)
    return {
        "precision": true_pos / max(true_pos + false_pos, 1),
        "recall": true_pos / max(bots, 1),
        "false_positive_rate": false_pos / max(len(y) - bots, 1),
    }


def _markdown(
    document: dict[str, Any],
    metrics: dict[str, float],
    at_threshold: dict[str, float],
    advice: list[str],
    *,
    rows: int,
    bots: int,
    evaluated_on: str,
    folder: str,
) -> str:
    preprocessing = document["preprocessing"]
    if preprocessing["kind"] == "standard_scaler":
        scaling = f"StandardScaler, mean {preprocessing['mean']}, scale {preprocessing['scale']}"
    else:
        scaling = "none"
    x1, x2 = document["coefficients"]
    model_rows = [
        ("version", f"`{document['version']}`"),
        ("checksum", f"`{document['checksum']}`"),
        ("preprocessing", scaling),
        ("coefficients", f"x1: {x1!r}, x2: {x2!r}"),
        ("intercept", repr(document["intercept"])),
        *((f"training: {key}", _cell(value)) for key, value in sorted(document["training"].items())),
    ]
    lines = [
        f"# Model card: {document['version']}",
        "",
        "Logistic regression giving the probability that a bot made a checkout, from `x1` (log10 of the",
        "seconds to pay) and `x2` (log10 of 1 + attempts from the client's IP in the past hour).",
        "Written by `botscore train` (or `botscore import-model --data`) from the artifact itself, so every",
        "score below is what the service answers for that transaction.",
        "",
        *advice,
        "## Model",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in model_rows),
        "",
        f"## Metrics ({evaluated_on}: {rows} transactions, {bots} bots)",
        "",
        "| metric | value | what it says |",
        "| --- | --- | --- |",
        f"| ROC AUC | {metrics['roc_auc']} | chance that a random bot scores above a random human (1 is perfect) |",
        f"| log loss | {metrics['log_loss']} | mean surprise at the true label (lower is better) |",
        f"| Brier score | {metrics['brier_score']} | mean squared error of p_bot (lower is better) |",
        f"| precision at p_bot >= {THRESHOLD} | {at_threshold['precision']:.4f} | flagged that are bots |",
        f"| recall at p_bot >= {THRESHOLD} | {at_threshold['recall']:.4f} | share of bots flagged |",
        f"| false-positive rate at p_bot >= {THRESHOLD} | {at_threshold['false_positive_rate']:.4f} "
        "| share of humans flagged |",
        "",
        "## Plots",
        "",
        *(f"### {title}\n\n![{title}]({folder}/{name})\n" for name, title in FIGURES.items()),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text.replace("|", "\\|")
