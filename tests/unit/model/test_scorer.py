"""p_bot agrees with scikit-learn's predict_proba to 1e-12 and is always a probability."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from botscore.model import artifact
from botscore.model.scorer import Scorer, sigmoid
from botscore.settings import SHIPPED_MODEL
from botscore_train import dataset, training

finite = st.floats(allow_nan=False, allow_infinity=False)
ordinary = st.floats(min_value=-50, max_value=50, allow_nan=False)
extremes = st.sampled_from([0.0, -0.0, 1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324, 2.2250738585072014e-308])
inputs = st.one_of(finite, ordinary, extremes)


@pytest.fixture(scope="module")
def fitted() -> LogisticRegression:
    """The shipped model's estimator, refitted from the shipped data (deterministic)."""
    features, labels, _ = dataset.read_dataset(dataset.DATA_FILE)
    estimator, _ = training.fit(features, labels)
    return estimator


@pytest.fixture(scope="module")
def pipeline() -> object:
    features, labels, _ = dataset.read_dataset(dataset.DATA_FILE)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)


def _sklearn_p(estimator: object, x1: float, x2: float) -> float | None:
    """predict_proba, or None where its own float arithmetic overflows (near |x| = 1e308)."""
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise"):
        warnings.simplefilter("ignore")
        try:
            return float(estimator.predict_proba(np.array([[x1, x2]]))[0, 1])
        except (FloatingPointError, ValueError):
            return None


def _exact_p(scorer: Scorer, x1: float, x2: float) -> float:
    """The true probability from exact rational z: the reference where float arithmetic overflows."""
    a = scorer.artifact
    mean, scale = a.mean or (0.0, 0.0), a.scale or (1.0, 1.0)
    z = sum(
        (Fraction(x) - Fraction(m)) / Fraction(s) * Fraction(c)
        for x, m, s, c in zip((x1, x2), mean, scale, a.coefficients, strict=True)
    ) + Fraction(a.intercept)
    if abs(z) > 1000:
        return 1.0 if z > 0 else 0.0
    return sigmoid(float(z))


def _check(scorer: Scorer, estimator: object, x1: float, x2: float) -> None:
    ours = scorer.p_bot(x1, x2)
    assert math.isfinite(ours) and 0.0 <= ours <= 1.0
    theirs = _sklearn_p(estimator, x1, x2)
    reference = theirs if theirs is not None else _exact_p(scorer, x1, x2)
    assert abs(ours - reference) <= 1e-12


def _scorer_for(estimator: object) -> Scorer:
    document = training.document_from_estimator(estimator, {}, {})
    return Scorer(artifact.parse(document))


@settings(max_examples=400, deadline=None)
@given(x1=inputs, x2=inputs)
@example(x1=1e308, x2=-1e308)
@example(x1=-1e308, x2=1e308)
@example(x1=5e-324, x2=0.0)
@example(x1=4.477820555242345e307, x2=3.370895796336499e307)  # numpy: -inf; exact z = +1.6e290
def test_matches_predict_proba_of_logistic_regression(fitted: LogisticRegression, x1: float, x2: float) -> None:
    _check(_scorer_for(fitted), fitted, x1, x2)


@settings(max_examples=400, deadline=None)
@given(x1=inputs, x2=inputs)
@example(x1=1e308, x2=-1e308)
@example(x1=-5e-324, x2=5e-324)
def test_matches_predict_proba_of_scaler_pipeline(pipeline: object, x1: float, x2: float) -> None:
    _check(_scorer_for(pipeline), pipeline, x1, x2)


def test_shipped_artifact_is_the_estimator_trained_from_shipped_data(fitted: LogisticRegression) -> None:
    shipped = artifact.load(SHIPPED_MODEL)
    assert shipped.coefficients == pytest.approx(tuple(fitted.coef_[0]), rel=1e-9)
    assert shipped.intercept == pytest.approx(float(fitted.intercept_[0]), rel=1e-9)
    scorer = Scorer(shipped)
    for x1, x2 in [(0.1, 0.2), (1.8, 0.3), (0.6, 1.2), (-3.0, 4.0)]:
        assert abs(scorer.p_bot(x1, x2) - _sklearn_p(fitted, x1, x2)) <= 1e-12


def test_where_float_arithmetic_overflows_we_return_the_exact_limit(fitted: LogisticRegression) -> None:
    c1, c2 = fitted.coef_[0]
    assert c1 < 0 < c2  # faster checkout -> more bot-like; more attempts -> more bot-like
    scorer = _scorer_for(fitted)
    # x1 term -> -inf, x2 term -> +inf: numpy gives NaN or an arbitrary infinity; the exact sum decides.
    assert _sklearn_p(fitted, 1.7e308, 1.7e308) is None
    assert scorer.p_bot(1.7e308, 1.7e308) == 1.0
    assert scorer.p_bot(1.7e308, 0.0) == 0.0
    assert scorer.p_bot(4.477820555242345e307, 3.370895796336499e307) == 1.0


@given(z=st.floats(allow_nan=False))
def test_sigmoid_never_overflows_and_is_monotone_at_the_ends(z: float) -> None:
    p = sigmoid(z)
    assert 0.0 <= p <= 1.0
    assert sigmoid(-z) == pytest.approx(1.0 - p, abs=1e-15)
