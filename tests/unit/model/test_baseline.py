"""The training baseline in the artifact, and the drift statistic (PSI) the service emits against it."""

from __future__ import annotations

import random

import pytest

from botscore.model import artifact, baseline
from botscore.ops.buckets import P_BOT_BUCKETS, X1_BUCKETS, X2_BUCKETS
from botscore.settings import SHIPPED_MODEL

BOUNDS = (0.0, 1.0, 2.0)


def _counts(bounds: tuple[float, ...], values: list[float]) -> list[float]:
    shares = baseline.distribution(bounds, values).shares
    return [share * len(values) for share in shares]


def test_the_same_distribution_scores_near_zero_and_a_shift_of_one_deviation_scores_over_the_line() -> None:
    draw = random.Random(7)
    train = [draw.gauss(1.0, 0.5) for _ in range(20_000)]
    expected = baseline.distribution(X1_BUCKETS, train)
    same = expected.psi(_counts(X1_BUCKETS, [draw.gauss(1.0, 0.5) for _ in range(5_000)]))
    shifted = expected.psi(_counts(X1_BUCKETS, [draw.gauss(1.5, 0.5) for _ in range(5_000)]))
    assert same is not None and same < 0.02
    assert shifted is not None and shifted > 2 * baseline.PSI_ACT


def test_too_few_values_or_other_buckets_give_no_figure() -> None:
    expected = baseline.distribution(BOUNDS, [0.5, 1.5, 2.5, 0.5])
    assert expected.psi([50.0, 50.0, 50.0, 49.0]) is None  # 199 values
    assert expected.psi([50.0, 50.0, 50.0, 50.0]) is not None
    found = {"x1": expected, "x2": expected, "p_bot": expected}
    assert baseline.psi_of(found, "x1", (0.0, 1.0, 3.0), [50.0] * 4) is None
    assert baseline.psi_of(None, "x1", BOUNDS, [50.0] * 4) is None
    assert baseline.psi_of(found, "x1", BOUNDS, [50.0] * 4) == expected.psi([50.0] * 4)


def test_an_empty_bucket_is_floored_not_infinite() -> None:
    expected = baseline.distribution(BOUNDS, [0.5] * 10)  # everything in the first bucket
    psi = expected.psi([0.0, 0.0, 0.0, 400.0])
    assert psi is not None and 15 < psi < 20  # (1 - 1e-4) * ln(1e4) twice, about 18.4


def test_the_shipped_model_carries_its_training_rows_in_the_services_own_buckets() -> None:
    model = artifact.load(SHIPPED_MODEL)
    assert model.baseline is not None
    assert model.baseline["x1"].bounds == X1_BUCKETS
    assert model.baseline["x2"].bounds == X2_BUCKETS
    assert model.baseline["p_bot"].bounds == P_BOT_BUCKETS
    for distribution in model.baseline.values():
        assert abs(sum(distribution.shares) - 1) < 1e-3


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"x1": {}}, "baseline must be an object with x1, x2, p_bot"),
        (
            {name: {"bounds": [1.0, 0.0], "shares": [0.2, 0.3, 0.5]} for name in baseline.NAMES},
            "baseline.x1.bounds must increase",
        ),
        (
            {name: {"bounds": [0.0], "shares": [0.2, 0.3]} for name in baseline.NAMES},
            "baseline.x1.shares must be non-negative and add up to 1",
        ),
        (
            {name: {"bounds": [0.0], "shares": [1.0]} for name in baseline.NAMES},
            "baseline.x1 must hold bounds (n numbers) and shares (n + 1 numbers)",
        ),
    ],
)
def test_a_bad_baseline_is_refused_naming_the_field(document: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        baseline.parse(document)
