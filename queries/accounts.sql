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
