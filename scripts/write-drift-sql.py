"""Write terraform/feature_drift.sql: PSI per day of x1, x2 and p_bot against the shipped model's baseline.

    .venv/bin/python scripts/write-drift-sql.py      # after `make model`; tests/integration/test_audit_sql.py
                                                     # fails while the file and the artifact disagree

The statistic is the one the service emits each EMF interval (src/botscore/model/baseline.py): the
same buckets (value <= bound), the same floor for empty shares. Athena gets it as the saved query
`feature-drift-per-day` (terraform/analytics.tf, through templatefile: `${answers_view}` is the view
the other saved queries read). A model promoted from the registry has a baseline
of its own: its figures come from CloudWatch (DriftX1, DriftX2, DriftScore); this query compares
with the image's model.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from botscore.model import artifact  # noqa: E402
from botscore.model.baseline import PSI_FLOOR, Distribution  # noqa: E402
from botscore.settings import SHIPPED_MODEL  # noqa: E402

OUTPUT = ROOT / "terraform" / "feature_drift.sql"
COLUMNS = {"x1": "x1", "x2": "x2", "p_bot": "p_bot"}


def _bucket(column: str, distribution: Distribution) -> str:
    cases = " ".join(f"WHEN {column} <= {bound!r} THEN {i}" for i, bound in enumerate(distribution.bounds))
    return f"CASE {cases} ELSE {len(distribution.bounds)} END"


def render() -> str:
    model = artifact.load(SHIPPED_MODEL)
    assert model.baseline is not None, "the shipped model has no baseline: make model"
    live = "\n  UNION ALL\n".join(
        f"  SELECT dt, '{name}' AS feature, {_bucket(column, model.baseline[name])} AS bucket\n"
        f"  FROM ${{answers_view}}\n"
        f"  WHERE status = 200 AND {column} IS NOT NULL\n"
        "    AND dt >= CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar)"
        for name, column in COLUMNS.items()
    )
    train = ",\n    ".join(
        f"('{name}', {i}, {share!r})" for name in COLUMNS for i, share in enumerate(model.baseline[name].shares)
    )
    return f"""-- Written by scripts/write-drift-sql.py from {model.version}'s baseline; do not edit.
-- Population stability index per day of each feature and of the score against the model's training rows
-- (under 0.1 stable, over 0.2 act: docs/model-card.md), days with fewer than 200 scores left out.
WITH live AS (
{live}
),
counts AS (
  SELECT dt, feature, bucket, count(*) AS n FROM live GROUP BY dt, feature, bucket
),
totals AS (
  SELECT dt, feature, sum(n) AS total FROM counts GROUP BY dt, feature HAVING sum(n) >= 200
),
train (feature, bucket, share) AS (
  VALUES
    {train}
),
grid AS (
  SELECT t.dt, train.feature, train.bucket, train.share, t.total
  FROM totals t JOIN train ON train.feature = t.feature
)
SELECT g.dt, g.feature,
  round(sum(
    (greatest(coalesce(c.n, 0) / CAST(g.total AS DOUBLE), {PSI_FLOOR!r}) - greatest(g.share, {PSI_FLOOR!r}))
    * ln(greatest(coalesce(c.n, 0) / CAST(g.total AS DOUBLE), {PSI_FLOOR!r}) / greatest(g.share, {PSI_FLOOR!r}))
  ), 4) AS psi,
  max(g.total) AS scores
FROM grid g LEFT JOIN counts c ON c.dt = g.dt AND c.feature = g.feature AND c.bucket = g.bucket
GROUP BY g.dt, g.feature
ORDER BY g.dt, g.feature
"""


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
