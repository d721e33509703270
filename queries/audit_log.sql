-- name: AuditInsert :exec
INSERT INTO audit_log (actor_key_id, tenant_id, action, target, outcome, details)
VALUES (sqlc.narg('actor_key_id'), sqlc.narg('tenant_id'), @action, @target, @outcome, @details);

-- name: AuditList :many
-- AuditList pages backwards through the audit log, newest first, with optional filters.
SELECT l.*, t.name AS tenant_name
FROM audit_log l
LEFT JOIN tenants t ON t.id = l.tenant_id
WHERE (@before_id::bigint = 0 OR l.id < @before_id)
  AND (sqlc.narg('tenant_id')::bigint IS NULL OR l.tenant_id = sqlc.narg('tenant_id'))
  AND (sqlc.narg('action')::text IS NULL OR l.action = sqlc.narg('action'))
  AND (sqlc.narg('target')::text IS NULL OR l.target = sqlc.narg('target'))
  AND (sqlc.narg('since')::timestamptz IS NULL OR l.at >= sqlc.narg('since'))
ORDER BY l.id DESC
LIMIT @max;
