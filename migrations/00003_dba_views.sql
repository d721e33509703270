-- +goose Up

-- Views for DBAs and operators: what is due, how each account fares, and today's quota.
-- None has a secret, a token or a ciphertext column; the fingerprint identifies a value
-- without revealing it.

CREATE VIEW wxhub_credentials_due AS
SELECT a.appid, c.kind, c.refresh_at, now() - c.refresh_at AS overdue_by, c.expires_at,
       c.claimed_by, c.claimed_until, c.orphan_hold_until, c.attempts, c.last_error_code
FROM credentials c
JOIN accounts a ON a.id = c.account_id
WHERE c.refresh_at <= now();

COMMENT ON VIEW wxhub_credentials_due IS 'Credentials whose refresh is due now (claimed or not), oldest first when ordered by refresh_at; no secret or value columns.';

CREATE VIEW wxhub_account_health AS
SELECT a.appid, t.name AS tenant, a.kind, a.status, a.status_reason,
       count(c.kind) AS credentials,
       count(c.kind) FILTER (WHERE c.expires_at IS NULL OR c.expires_at <= now()) AS without_valid_value,
       min(c.expires_at) AS first_expiry,
       max(c.attempts) AS max_attempts,
       max(c.last_refreshed_at) AS last_refreshed_at
FROM accounts a
JOIN tenants t ON t.id = a.tenant_id
LEFT JOIN credentials c ON c.account_id = a.id
GROUP BY a.id, t.name;

COMMENT ON VIEW wxhub_account_health IS 'One row per account: its status, how many of its credentials hold no valid value, the earliest expiry, the worst run of failed attempts; no secret or value columns.';

CREATE VIEW wxhub_quota_today AS
SELECT a.appid, u.api, u.day, u.calls, u.daily_limit,
       round(100.0 * u.calls / nullif(u.daily_limit, 0), 1) AS percent_used
FROM upstream_calls u
JOIN accounts a ON a.id = u.account_id
WHERE u.day = ((now() AT TIME ZONE 'UTC') + interval '8 hours')::date;

COMMENT ON VIEW wxhub_quota_today IS 'Calls wxhub counted today (WeChat''s quota day, China time) per account and API, against the limit it enforces.';

-- +goose Down
DROP VIEW wxhub_quota_today;
DROP VIEW wxhub_account_health;
DROP VIEW wxhub_credentials_due;
