-- Written by scripts/write-drift-sql.py from lr-492aeb6a025ab0d2's baseline; do not edit.
-- Population stability index per day of each feature and of the score against the model's training rows
-- (under 0.1 stable, over 0.2 act: docs/model-card.md), days with fewer than 200 scores left out.
WITH live AS (
  SELECT dt, 'x1' AS feature, CASE WHEN x1 <= -1.0 THEN 0 WHEN x1 <= -0.75 THEN 1 WHEN x1 <= -0.5 THEN 2 WHEN x1 <= -0.25 THEN 3 WHEN x1 <= 0.0 THEN 4 WHEN x1 <= 0.25 THEN 5 WHEN x1 <= 0.5 THEN 6 WHEN x1 <= 0.75 THEN 7 WHEN x1 <= 1.0 THEN 8 WHEN x1 <= 1.25 THEN 9 WHEN x1 <= 1.5 THEN 10 WHEN x1 <= 1.75 THEN 11 WHEN x1 <= 2.0 THEN 12 WHEN x1 <= 2.25 THEN 13 WHEN x1 <= 2.5 THEN 14 WHEN x1 <= 2.75 THEN 15 WHEN x1 <= 3.0 THEN 16 WHEN x1 <= 3.25 THEN 17 WHEN x1 <= 3.5 THEN 18 WHEN x1 <= 3.75 THEN 19 WHEN x1 <= 4.0 THEN 20 ELSE 21 END AS bucket
  FROM ${answers_view}
  WHERE status = 200 AND x1 IS NOT NULL
    AND dt >= CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar)
  UNION ALL
  SELECT dt, 'x2' AS feature, CASE WHEN x2 <= 0.0 THEN 0 WHEN x2 <= 0.2 THEN 1 WHEN x2 <= 0.4 THEN 2 WHEN x2 <= 0.6 THEN 3 WHEN x2 <= 0.8 THEN 4 WHEN x2 <= 1.0 THEN 5 WHEN x2 <= 1.2 THEN 6 WHEN x2 <= 1.4 THEN 7 WHEN x2 <= 1.6 THEN 8 WHEN x2 <= 1.8 THEN 9 WHEN x2 <= 2.0 THEN 10 WHEN x2 <= 2.2 THEN 11 WHEN x2 <= 2.4 THEN 12 WHEN x2 <= 2.6 THEN 13 WHEN x2 <= 2.8 THEN 14 WHEN x2 <= 3.0 THEN 15 ELSE 16 END AS bucket
  FROM ${answers_view}
  WHERE status = 200 AND x2 IS NOT NULL
    AND dt >= CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar)
  UNION ALL
  SELECT dt, 'p_bot' AS feature, CASE WHEN p_bot <= 0.05 THEN 0 WHEN p_bot <= 0.1 THEN 1 WHEN p_bot <= 0.15 THEN 2 WHEN p_bot <= 0.2 THEN 3 WHEN p_bot <= 0.25 THEN 4 WHEN p_bot <= 0.3 THEN 5 WHEN p_bot <= 0.35 THEN 6 WHEN p_bot <= 0.4 THEN 7 WHEN p_bot <= 0.45 THEN 8 WHEN p_bot <= 0.5 THEN 9 WHEN p_bot <= 0.55 THEN 10 WHEN p_bot <= 0.6 THEN 11 WHEN p_bot <= 0.65 THEN 12 WHEN p_bot <= 0.7 THEN 13 WHEN p_bot <= 0.75 THEN 14 WHEN p_bot <= 0.8 THEN 15 WHEN p_bot <= 0.85 THEN 16 WHEN p_bot <= 0.9 THEN 17 WHEN p_bot <= 0.95 THEN 18 ELSE 19 END AS bucket
  FROM ${answers_view}
  WHERE status = 200 AND p_bot IS NOT NULL
    AND dt >= CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar)
),
counts AS (
  SELECT dt, feature, bucket, count(*) AS n FROM live GROUP BY dt, feature, bucket
),
totals AS (
  SELECT dt, feature, sum(n) AS total FROM counts GROUP BY dt, feature HAVING sum(n) >= 200
),
train (feature, bucket, share) AS (
  VALUES
    ('x1', 0, 0.0),
    ('x1', 1, 0.0),
    ('x1', 2, 0.0),
    ('x1', 3, 0.000533),
    ('x1', 4, 0.003333),
    ('x1', 5, 0.007933),
    ('x1', 6, 0.021533),
    ('x1', 7, 0.036867),
    ('x1', 8, 0.047667),
    ('x1', 9, 0.078333),
    ('x1', 10, 0.1536),
    ('x1', 11, 0.2234),
    ('x1', 12, 0.225467),
    ('x1', 13, 0.135733),
    ('x1', 14, 0.051333),
    ('x1', 15, 0.012267),
    ('x1', 16, 0.001667),
    ('x1', 17, 0.000333),
    ('x1', 18, 0.0),
    ('x1', 19, 0.0),
    ('x1', 20, 0.0),
    ('x1', 21, 0.0),
    ('x2', 0, 0.0),
    ('x2', 1, 0.327933),
    ('x2', 2, 0.294333),
    ('x2', 3, 0.185933),
    ('x2', 4, 0.089067),
    ('x2', 5, 0.043733),
    ('x2', 6, 0.027867),
    ('x2', 7, 0.017867),
    ('x2', 8, 0.008267),
    ('x2', 9, 0.0032),
    ('x2', 10, 0.0016),
    ('x2', 11, 0.0002),
    ('x2', 12, 0.0),
    ('x2', 13, 0.0),
    ('x2', 14, 0.0),
    ('x2', 15, 0.0),
    ('x2', 16, 0.0),
    ('p_bot', 0, 0.5542),
    ('p_bot', 1, 0.110533),
    ('p_bot', 2, 0.052067),
    ('p_bot', 3, 0.0352),
    ('p_bot', 4, 0.021533),
    ('p_bot', 5, 0.018),
    ('p_bot', 6, 0.015),
    ('p_bot', 7, 0.011),
    ('p_bot', 8, 0.010133),
    ('p_bot', 9, 0.008867),
    ('p_bot', 10, 0.007533),
    ('p_bot', 11, 0.009),
    ('p_bot', 12, 0.007733),
    ('p_bot', 13, 0.0086),
    ('p_bot', 14, 0.007933),
    ('p_bot', 15, 0.009133),
    ('p_bot', 16, 0.0094),
    ('p_bot', 17, 0.014067),
    ('p_bot', 18, 0.017933),
    ('p_bot', 19, 0.072133)
),
grid AS (
  SELECT t.dt, train.feature, train.bucket, train.share, t.total
  FROM totals t JOIN train ON train.feature = t.feature
)
SELECT g.dt, g.feature,
  round(sum(
    (greatest(coalesce(c.n, 0) / CAST(g.total AS DOUBLE), 0.0001) - greatest(g.share, 0.0001))
    * ln(greatest(coalesce(c.n, 0) / CAST(g.total AS DOUBLE), 0.0001) / greatest(g.share, 0.0001))
  ), 4) AS psi,
  max(g.total) AS scores
FROM grid g LEFT JOIN counts c ON c.dt = g.dt AND c.feature = g.feature AND c.bucket = g.bucket
GROUP BY g.dt, g.feature
ORDER BY g.dt, g.feature
