-- name: StatusAccountCounts :many
-- StatusAccountCounts counts accounts by status, for the status page; tenant_id NULL counts
-- every tenant's.
SELECT status, count(*)::bigint AS accounts
FROM accounts
WHERE sqlc.narg('tenant_id')::bigint IS NULL OR tenant_id = sqlc.narg('tenant_id')::bigint
GROUP BY status
ORDER BY status;

-- name: StatusTroubledAccounts :many
-- StatusTroubledAccounts lists the accounts that are not active, or whose credentials fail
-- or have no valid value, worst first, with the last WeChat errcode: what the status page
-- shows. No secret or value column.
SELECT a.appid, t.name AS tenant, a.kind, a.status, a.status_reason,
       count(c.kind) FILTER (WHERE c.expires_at IS NULL OR c.expires_at <= now())::bigint AS without_valid_value,
       coalesce(max(c.attempts), 0)::int AS max_attempts,
       coalesce((array_agg(c.last_error_code ORDER BY c.attempts DESC) FILTER (WHERE c.last_error_code IS NOT NULL))[1], 0)::int AS last_error_code,
       coalesce((array_agg(c.last_error_message ORDER BY c.attempts DESC) FILTER (WHERE c.last_error_code IS NOT NULL))[1], '')::text AS last_error_message
FROM accounts a
JOIN tenants t ON t.id = a.tenant_id
LEFT JOIN credentials c ON c.account_id = a.id
WHERE sqlc.narg('tenant_id')::bigint IS NULL OR a.tenant_id = sqlc.narg('tenant_id')::bigint
GROUP BY a.id, t.name
HAVING a.status <> 'active'
    OR max(c.attempts) > 0
    OR count(c.kind) FILTER (WHERE c.expires_at IS NULL OR c.expires_at <= now()) > 0
ORDER BY (a.status <> 'active') DESC, max(c.attempts) DESC NULLS LAST, a.appid
LIMIT @max;

-- name: StatusDue :one
-- StatusDue counts the credentials due now and those overdue by more than a minute (no claim
-- working on them), for the status page.
SELECT count(*) FILTER (WHERE s.refresh_at <= now())::bigint AS due,
       count(*) FILTER (WHERE greatest(s.refresh_at, c.claimed_until) < now() - interval '1 minute')::bigint AS overdue
FROM credential_schedule s
JOIN credentials c ON c.account_id = s.account_id AND c.kind = s.kind
WHERE sqlc.narg('tenant_id')::bigint IS NULL OR c.tenant_id = sqlc.narg('tenant_id')::bigint;

-- name: StatusQuotaToday :many
-- StatusQuotaToday lists today's busiest quotas (WeChat's quota day, China time), for the
-- status page.
SELECT a.appid, u.api, u.calls, u.daily_limit
FROM upstream_calls u
JOIN accounts a ON a.id = u.account_id
WHERE u.day = ((now() AT TIME ZONE 'UTC') + interval '8 hours')::date
  AND (sqlc.narg('tenant_id')::bigint IS NULL OR u.tenant_id = sqlc.narg('tenant_id')::bigint)
ORDER BY u.calls::float8 / greatest(u.daily_limit, 1) DESC, a.appid
LIMIT @max;
