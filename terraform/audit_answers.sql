CREATE OR REPLACE VIEW audit_answers AS
WITH refused AS (SELECT DISTINCT id, ts FROM audit_records WHERE error_code = 'audit_unavailable')
SELECT r.* FROM audit_records r
LEFT JOIN refused f ON f.id = r.id AND f.ts = r.ts AND r.status <> 503
WHERE f.id IS NULL
