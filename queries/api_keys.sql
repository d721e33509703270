-- name: ApiKeyCreate :one
INSERT INTO api_keys (lookup, hash, name, role, tenant_id, expires_at)
VALUES (@lookup, @hash, @name, @role, sqlc.narg('tenant_id'), sqlc.narg('expires_at'))
RETURNING *;

-- name: ApiKeyEnsureAdmin :one
-- ApiKeyEnsureAdmin makes sure an admin key with this hash exists (the bootstrap key from the
-- environment). A key that was revoked stays revoked: an operator who revoked a leaked key
-- must not see it come back at the next restart.
WITH inserted AS (
    INSERT INTO api_keys (lookup, hash, name, role)
    VALUES (@lookup, @hash, @name, 'admin')
    ON CONFLICT (lookup) DO NOTHING
    RETURNING revoked_at
)
SELECT (revoked_at IS NOT NULL)::bool AS revoked FROM inserted
UNION ALL
SELECT (revoked_at IS NOT NULL)::bool FROM api_keys WHERE lookup = @lookup AND NOT EXISTS (SELECT 1 FROM inserted);

-- name: ApiKeyGetByLookup :one
SELECT k.*, t.name AS tenant_name
FROM api_keys k
LEFT JOIN tenants t ON t.id = k.tenant_id
WHERE k.lookup = @lookup;

-- name: ApiKeyList :many
SELECT k.*, t.name AS tenant_name
FROM api_keys k
LEFT JOIN tenants t ON t.id = k.tenant_id
ORDER BY k.id;

-- name: ApiKeyRevoke :one
-- ApiKeyRevoke revokes a key and tells every API node, in one statement.
WITH revoked AS (
    UPDATE api_keys
    SET revoked_at = coalesce(revoked_at, now())
    WHERE id = @id
    RETURNING id, lookup
)
SELECT revoked.id, pg_notify('wxhub_changes', json_build_object('api_key', revoked.lookup)::text)::text AS notified
FROM revoked;

-- name: ApiKeyTouch :exec
-- ApiKeyTouch records use at most once a minute per key, to keep writes off the hot path.
UPDATE api_keys
SET last_used_at = now()
WHERE id = @id
  AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');
