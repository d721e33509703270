-- name: AccountCreate :one
INSERT INTO accounts (
    tenant_id, appid, kind, corp_id, agent_id, component_account_id,
    secret_ciphertext, secret_key_id, token_mode, tickets, daily_limits
) VALUES (
    @tenant_id, @appid, @kind, sqlc.narg('corp_id'), sqlc.narg('agent_id'), sqlc.narg('component_account_id'),
    sqlc.narg('secret_ciphertext'), sqlc.narg('secret_key_id'), @token_mode, @tickets::text[], @daily_limits
)
RETURNING *;

-- name: AccountGetByAppID :one
SELECT *
FROM accounts
WHERE appid = @appid;

-- name: AccountSetStatus :exec
-- AccountSetStatus records whether WeChat accepts the account's configuration. It never
-- overrides an operator's disabled or WeChat's unauthorized.
UPDATE accounts
SET status = @status::text,
    status_reason = @status_reason::text,
    updated_at = now()
WHERE id = @id
  AND status IN ('active', 'failing')
  AND (status <> @status::text OR status_reason <> @status_reason::text);

-- name: AccountList :many
-- AccountList pages through accounts in id order, after the cursor, with optional filters.
SELECT *
FROM accounts
WHERE id > @after_id
  AND (sqlc.narg('tenant_id')::bigint IS NULL OR tenant_id = sqlc.narg('tenant_id'))
  AND (sqlc.narg('kind')::text IS NULL OR kind = sqlc.narg('kind'))
  AND (sqlc.narg('status')::text IS NULL OR status = sqlc.narg('status'))
ORDER BY id
LIMIT @max;

-- name: AccountUpdate :one
-- AccountUpdate changes the fields given (NULL keeps the current value).
UPDATE accounts
SET secret_ciphertext = coalesce(sqlc.narg('secret_ciphertext'), secret_ciphertext),
    secret_key_id     = coalesce(sqlc.narg('secret_key_id'), secret_key_id),
    token_mode        = coalesce(sqlc.narg('token_mode'), token_mode),
    daily_limits      = coalesce(sqlc.narg('daily_limits'), daily_limits),
    base_info         = coalesce(sqlc.narg('base_info'), base_info),
    updated_at        = now()
WHERE id = @id
RETURNING *;

-- name: AccountSetEnabled :one
-- AccountSetEnabled disables an account (its credentials stop being refreshed, the current
-- values stay readable) or enables it again (its credentials are due at once).
WITH changed AS (
    UPDATE accounts
    SET status = CASE WHEN @enabled::bool THEN 'active' ELSE 'disabled' END,
        status_reason = CASE WHEN @enabled::bool THEN '' ELSE 'disabled by an operator' END,
        updated_at = now()
    WHERE accounts.id = @id
    RETURNING *
), replaceable AS (
    UPDATE credentials c
    SET replace_not_before = CASE WHEN @enabled::bool AND c.orphan_hold_until IS NULL
            THEN least(coalesce(c.replace_not_before, now()), now()) ELSE c.replace_not_before END
    FROM changed
    WHERE c.account_id = changed.id
    RETURNING c.account_id, c.kind, c.orphan_hold_until
), scheduled AS (
    UPDATE credential_schedule s
    SET refresh_at = CASE WHEN @enabled::bool THEN greatest(now(), replaceable.orphan_hold_until) END
    FROM replaceable
    WHERE s.account_id = replaceable.account_id
      AND s.kind = replaceable.kind
)
SELECT * FROM changed;

-- name: AccountDelete :execrows
DELETE FROM accounts
WHERE id = @id;

-- name: AccountSettingsUpdate :one
-- AccountSettingsUpdate replaces the settings document if the version is still the one the
-- caller read (optimistic concurrency); no row means the version was stale.
UPDATE accounts
SET settings = @settings,
    settings_version = settings_version + 1,
    updated_at = now()
WHERE id = @id
  AND settings_version = @expected_version
RETURNING settings, settings_version;

-- name: AccountNotify :exec
-- AccountNotify tells API nodes an account changed (status, deletion), inside the changing
-- transaction.
SELECT pg_notify('wxhub_changes', json_build_object('account_id', @account_id::bigint, 'kind', 'account')::text);

-- name: AccountMoveTenant :one
-- AccountMoveTenant gives the account to another tenant; its credentials and quota ledger
-- follow (ON UPDATE CASCADE).
UPDATE accounts
SET tenant_id = @tenant_id, updated_at = now()
WHERE id = @id
RETURNING *;

-- name: AccountSetTickets :one
-- AccountSetTickets records which tickets wxhub keeps fresh for the account.
UPDATE accounts
SET tickets = @tickets::text[], updated_at = now()
WHERE id = @id
RETURNING *;

-- name: AccountListByCorp :many
-- AccountListByCorp lists the WeCom apps of a corp, for the gateway, which knows a WeCom
-- caller by corp id and corpsecret only.
SELECT *
FROM accounts
WHERE corp_id = @corp_id
  AND kind = 'wecom_app'
ORDER BY agent_id;
