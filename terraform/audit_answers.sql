CREATE OR REPLACE VIEW audit_answers AS
WITH refused AS (
  SELECT DISTINCT id, ts FROM audit_records
  WHERE dt >= CAST(CAST(current_date - INTERVAL '8' DAY AS date) AS varchar)
    AND error_code = 'audit_unavailable'
)
SELECT r.* FROM audit_records r
LEFT JOIN refused f ON f.id = r.id AND f.ts = r.ts AND r.status <> 503
WHERE r.dt >= CAST(CAST(current_date - INTERVAL '8' DAY AS date) AS varchar)
  AND f.id IS NULL
