"""`botscore import-model`: a data scientist's fitted scikit-learn model -> a served artifact.

Supported: a fitted binary `LogisticRegression` on (x1, x2), or a `Pipeline` of `StandardScaler`
then `LogisticRegression`; anything else is refused with a message saying so. A skops file is
read with skops' safe loader (it builds only known types and runs no code); a pickle or joblib
file runs code when loaded, so it is read only with `trust_pickle`. The artifact is checked to
agree with the estimator's `predict_proba` to 1e-12 before it is written, and records the
source file's SHA-256, so artifacts imported from different files never share a version.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botscore.model import artifact
from botscore.model.scorer import Scorer
from botscore_train import modelcard
from botscore_train.dataset import read_dataset
from botscore_train.evaluation import held_out_metrics
from botscore_train.training import document_from_estimator

SUPPORTED = (
    "supported: a fitted LogisticRegression, or a Pipeline of StandardScaler then LogisticRegression, "
    "trained on the 2 features x1, x2 with classes 0 (human) and 1 (bot)"
)
TOLERANCE = 1e-12
# Where the artifact must agree with predict_proba: the features' usual range, far out, and signed zeros.
SAMPLE_POINTS = tuple(
    (a, b)
    for a in (-1e6, -100.0, -3.0, -1.0, -0.0, 0.0, 5e-324, 0.1, 0.7, 1.0, 1.45, 1.75, 2.5, 10.0, 1e6)
    for b in (-1e6, -50.0, -1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 2.0, 1e6)
)


class ImportRefused(Exception):
    """The file cannot or may not be imported; the message says why and what would work."""


def import_model(
    path: Path,
    output: Path,
    *,
    trust_pickle: bool = False,
    data: Path | None = None,
    card: Path | None = None,
    progress: Callable[[str], None] = lambda step: None,
) -> dict[str, Any]:
    """Read, convert, verify and write the model at `path`; return the sealed artifact document.

    With `data` (a labelled CSV), its metrics go into the artifact and, with `card`, a model card is drawn.
    """
    progress(f"reading {path}")
    raw = _read(path)
    estimator, source_format = load_estimator(path, raw, trust_pickle=trust_pickle)
    check_supported(estimator)
    metrics: dict[str, Any] = {}
    features: list[list[float]] = []
    labels: list[int] = []
    training_info: dict[str, Any] = {
        "imported_from": path.name,
        "source_format": source_format,
        "source_sha256": hashlib.sha256(raw).hexdigest(),
        "estimator": _describe(estimator),
    }
    if data is not None:
        progress(f"evaluating on {data}")
        features, labels, data_sha256 = read_dataset(data)
        metrics = {**held_out_metrics(labels, _predict(estimator, features)), "n_test": len(labels)}
        training_info.update(evaluated_on=data.name, evaluated_on_sha256=data_sha256)
    document = document_from_estimator(estimator, metrics, training_info)
    progress(f"checking the artifact against predict_proba on {len(SAMPLE_POINTS)} inputs")
    verify(document, estimator)
    artifact.write(document, output)
    verify(_reread(output), estimator)
    if data is not None and card is not None:
        description = (
            f"Trained outside botscore ({training_info['estimator']}, imported from `{path.name}`); this card "
            f"evaluates it on every row of `{data.name}`, which should be rows it was not trained on "
            "(`botscore split-data` makes such a split)."
        )
        modelcard.write(
            document, features, labels, card, evaluated_on=data.name, data_description=description, progress=progress
        )
    return document


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImportRefused(f"cannot read {path}: {exc.strerror or exc}") from None


def load_estimator(path: Path, raw: bytes, *, trust_pickle: bool) -> tuple[Any, str]:
    """The estimator in `path` and how it was stored ("skops" or "pickle"); pickles only when trusted."""
    if zipfile.is_zipfile(path):
        return _load_skops(path), "skops"
    if not trust_pickle:
        raise ImportRefused(
            f"{path} is not a skops file; a pickle or joblib file runs code when it is loaded, so pass "
            "--trust-pickle if you trust where it came from, or save the model with skops.io.dump"
        )
    import joblib

    try:
        return joblib.load(path), "pickle"
    except Exception as exc:
        raise ImportRefused(f"cannot load {path} as a pickle or joblib file: {type(exc).__name__}: {exc}") from None


def _load_skops(path: Path) -> Any:
    """Load with skops' default trusted types only, after refusing unsupported top-level kinds unread."""
    import skops.io

    try:
        kind = _skops_top_level_class(path)
        if kind not in ("LogisticRegression", "Pipeline"):
            raise ImportRefused(f"cannot import a {kind}; {SUPPORTED}")
        untrusted = skops.io.get_untrusted_types(file=path)
        if untrusted:
            names = ", ".join(untrusted)
            raise ImportRefused(f"{path} contains types skops does not trust by default: {names}; {SUPPORTED}")
        return skops.io.load(path)
    except ImportRefused:
        raise
    except Exception as exc:
        raise ImportRefused(f"cannot load {path} as a skops file: {type(exc).__name__}: {exc}") from None


def _skops_top_level_class(path: Path) -> str:
    """The stored object's class name, from the archive's schema.json (plain JSON: reading it runs nothing)."""
    import json

    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
    return str(schema["__class__"])


def check_supported(estimator: Any) -> None:
    """Refuse anything but a fitted, binary LogisticRegression on (x1, x2), alone or after a StandardScaler."""
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils.validation import check_is_fitted

    kind = type(estimator).__name__
    if isinstance(estimator, Pipeline):
        steps = [step for _, step in estimator.steps]
        kinds = [type(step).__name__ for step in steps]
        if len(steps) != 2 or not isinstance(steps[0], StandardScaler) or not isinstance(steps[1], LogisticRegression):
            raise ImportRefused(f"cannot import a Pipeline of {', '.join(kinds)}; {SUPPORTED}")
        model = steps[1]
    elif isinstance(estimator, LogisticRegression):
        model = estimator
    else:
        raise ImportRefused(f"cannot import a {kind}; {SUPPORTED}")
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise ImportRefused(f"the {kind} is not fitted; {SUPPORTED}") from None
    classes = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    if classes != [0, 1]:
        raise ImportRefused(f"the model's classes are {classes!r}, expected [0, 1] (1 = bot); {SUPPORTED}")
    if model.coef_.shape != (1, 2):
        raise ImportRefused(f"the model has coefficients of shape {model.coef_.shape}, expected (1, 2); {SUPPORTED}")
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and [str(n) for n in names] != list(artifact.FEATURES):
        raise ImportRefused(f"the model was fitted on features {[str(n) for n in names]}, expected ['x1', 'x2']")


def verify(document: dict[str, Any], estimator: Any) -> None:
    """Raise ImportRefused unless the artifact's p_bot equals predict_proba to 1e-12 on SAMPLE_POINTS."""

    scorer = Scorer(artifact.parse(document))
    theirs = _predict(estimator, [list(point) for point in SAMPLE_POINTS])
    for (x1, x2), expected in zip(SAMPLE_POINTS, theirs, strict=True):
        ours = scorer.p_bot(x1, x2)
        if not math.isfinite(expected) or abs(ours - expected) > TOLERANCE:
            raise ImportRefused(
                f"the artifact disagrees with predict_proba at x1={x1!r}, x2={x2!r}: {ours!r} vs {expected!r}"
            )


def _predict(estimator: Any, features: list[list[float]]) -> list[float]:
    import warnings

    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "X does not have valid feature names" for models fitted on a DataFrame
        return [float(p) for p in estimator.predict_proba(np.asarray(features, dtype=float))[:, 1]]


def _reread(output: Path) -> dict[str, Any]:
    import json

    artifact.load(output)  # the file on disk passes the service's own validation
    document: dict[str, Any] = json.loads(output.read_text())
    return document


def _describe(estimator: Any) -> str:
    return " ".join(repr(estimator).split())
