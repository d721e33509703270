-- name: ComponentCallbackInsert :exec
INSERT INTO component_callbacks (tenant_id, account_id, config_ciphertext, config_key_id)
VALUES (@tenant_id, @account_id, @config_ciphertext, @config_key_id::text);

-- name: ComponentCallbackGet :one
-- ComponentCallbackGet finds what the callback endpoint needs to check a push to a component.
SELECT a.id, a.tenant_id, a.appid, a.status, cc.config_ciphertext, cc.config_key_id
FROM accounts a
JOIN component_callbacks cc ON cc.account_id = a.id
WHERE a.appid = @appid
  AND a.kind = 'component';

-- name: CallbackNonceRecord :execrows
-- CallbackNonceRecord records a verified push's (timestamp, nonce); no row comes back when
-- the pair was seen before, which makes the push a replay.
INSERT INTO callback_nonces (tenant_id, account_id, timestamp, nonce)
VALUES (@tenant_id, @account_id, @timestamp, @nonce)
ON CONFLICT DO NOTHING;

-- name: CallbackNoncesPrune :execrows
-- CallbackNoncesPrune forgets nonces older than the freshness window: a push that old is
-- refused on its timestamp already.
DELETE FROM callback_nonces
WHERE seen_at < now() - make_interval(secs => @older_than_seconds::float8);

-- name: VerifyTicketStore :one
-- VerifyTicketStore keeps a component_verify_ticket WeChat pushed, unless a newer one is
-- stored already (pushes may arrive out of order): the newest wins, by the time WeChat made
-- it. A component whose access token has no live value is woken, so a component that
-- waited for its first ticket, or whose ticket had run out, gets a token at once. A live
-- token is left to its schedule: fetching a new one early would kill a value API nodes
-- still promise.
WITH written AS (
    UPDATE credentials c
    SET value_ciphertext   = @value_ciphertext,
        value_key_id       = @value_key_id::text,
        value_fingerprint  = @value_fingerprint::text,
        expires_at         = @expires_at,
        generation         = c.generation + 1,
        last_refreshed_at  = now(),
        last_error_code    = NULL,
        last_error_message = NULL
    WHERE c.account_id = @account_id
      AND c.kind = 'verify_ticket'
      AND (c.expires_at IS NULL OR c.expires_at < @expires_at)
    RETURNING c.account_id, c.generation
), woken AS (
    UPDATE credentials t
    SET replace_not_before = now()
    FROM written
    WHERE t.account_id = written.account_id
      AND t.kind = 'access_token'
      AND (t.expires_at IS NULL OR t.expires_at <= now())
      AND (t.claimed_until IS NULL OR t.claimed_until <= now())
    RETURNING t.account_id, t.kind
), woken_scheduled AS (
    UPDATE credential_schedule s
    SET refresh_at = now()
    FROM woken
    WHERE s.account_id = woken.account_id
      AND s.kind = woken.kind
      AND (s.refresh_at IS NULL OR s.refresh_at > now())
)
SELECT coalesce((SELECT generation FROM written), 0)::bigint AS generation;

-- name: AuthorizerUpsert :one
-- AuthorizerUpsert creates the account of an authorizer that authorized a component, or for
-- one authorized before (an update, or a new authorization after a revocation) stores the
-- refresh token and what it granted and makes it active again, unless an operator disabled
-- it. An appid that belongs to another component or another kind of account comes back
-- without a row.
INSERT INTO accounts AS a (tenant_id, appid, kind, component_account_id, secret_ciphertext, secret_key_id,
                           authorization_info, wechat_info, wechat_info_at)
VALUES (@tenant_id, @appid, 'authorizer', @component_account_id, @secret_ciphertext, @secret_key_id::text,
        @authorization_info, @wechat_info, sqlc.narg('wechat_info_at'))
ON CONFLICT (appid) DO UPDATE
SET secret_ciphertext  = excluded.secret_ciphertext,
    secret_key_id      = excluded.secret_key_id,
    authorization_info = excluded.authorization_info,
    wechat_info        = CASE WHEN excluded.wechat_info_at IS NULL THEN a.wechat_info ELSE excluded.wechat_info END,
    wechat_info_at     = coalesce(excluded.wechat_info_at, a.wechat_info_at),
    status             = CASE WHEN a.status = 'disabled' THEN 'disabled' ELSE 'active' END,
    status_reason      = CASE WHEN a.status = 'disabled' THEN a.status_reason ELSE '' END,
    updated_at         = now()
WHERE a.kind = 'authorizer'
  AND a.component_account_id = excluded.component_account_id
RETURNING a.*, (xmax = 0)::bool AS created;

-- name: AuthorizerRevoke :one
-- AuthorizerRevoke records that an authorizer withdrew its authorization from the
-- component: the account is unauthorized, its credentials are no longer refreshed, and API
-- nodes are told. No row comes back for an appid that is not this component's authorizer.
WITH revoked AS (
    UPDATE accounts
    SET status = 'unauthorized', status_reason = @reason::text, updated_at = now()
    WHERE appid = @appid
      AND kind = 'authorizer'
      AND component_account_id = @component_account_id
    RETURNING id
), unscheduled AS (
    UPDATE credential_schedule s
    SET refresh_at = NULL
    FROM revoked
    WHERE s.account_id = revoked.id
), notified AS (
    SELECT pg_notify('wxhub_changes', json_build_object('account_id', revoked.id, 'kind', 'account')::text)
    FROM revoked
)
SELECT revoked.id FROM revoked, (SELECT count(*) FROM notified) n;

-- name: AuthorizerContextDue :many
-- AuthorizerContextDue lists active authorizers whose context was last read from WeChat
-- before the cutoff (or never), oldest first, with their component's appid and id.
SELECT a.id, a.tenant_id, a.appid, c.appid AS component_appid, a.component_account_id::bigint AS component_account_id
FROM accounts a
JOIN accounts c ON c.id = a.component_account_id
WHERE a.kind = 'authorizer'
  AND a.status = 'active'
  AND (a.wechat_info_at IS NULL OR a.wechat_info_at < @cutoff)
ORDER BY a.wechat_info_at NULLS FIRST
LIMIT @max;

-- name: AuthorizerContextStore :one
-- AuthorizerContextStore keeps an authorizer's context as WeChat reported it, and reports
-- whether it changed; a change is announced to API nodes and app servers (NOTIFY).
WITH old AS (
    SELECT o.id, o.wechat_info, o.authorization_info FROM accounts o WHERE o.id = @account_id
), stored AS (
    UPDATE accounts a
    SET wechat_info = @wechat_info, authorization_info = @authorization_info, wechat_info_at = now(),
        updated_at = CASE WHEN old.wechat_info <> @wechat_info OR old.authorization_info <> @authorization_info
                          THEN now() ELSE a.updated_at END
    FROM old
    WHERE a.id = old.id
    RETURNING a.id, (old.wechat_info <> a.wechat_info OR old.authorization_info <> a.authorization_info) AS changed
), notified AS (
    SELECT pg_notify('wxhub_changes', json_build_object('account_id', stored.id, 'kind', 'account')::text)
    FROM stored
    WHERE stored.changed
)
SELECT stored.changed::bool FROM stored, (SELECT count(*) FROM notified) n;

-- name: AuthorizerTokenStore :one
-- AuthorizerTokenStore keeps the access token api_query_auth answered for an authorization
-- as the authorizer's current one. WeChat issued it, so the value it replaces dies after the
-- overlap: it is kept as the previous value until then, and the token is refreshed on its
-- schedule, never at once (a fetch now would kill the previous value while API nodes still
-- promise it). A claim in flight is left recorded: its write is fenced out by the new
-- generation, and the next claim holds its fetch as for any unfinished claim. Tickets that
-- wait for a first token are woken.
WITH written AS (
    UPDATE credentials c
    SET previous_ciphertext  = CASE WHEN c.expires_at > now() THEN c.value_ciphertext END,
        previous_key_id      = CASE WHEN c.expires_at > now() THEN c.value_key_id END,
        previous_expires_at  = CASE WHEN c.expires_at > now()
            THEN least(c.expires_at, now() + make_interval(secs => @previous_valid_seconds::float8)) END,
        value_ciphertext     = @value_ciphertext,
        value_key_id         = @value_key_id::text,
        value_fingerprint    = @value_fingerprint::text,
        expires_at           = @expires_at,
        generation           = c.generation + 1,
        replace_not_before   = now() + make_interval(secs => @refresh_in_seconds::float8),
        refresh_requested_at = NULL,
        attempts             = 0,
        last_error_code      = NULL,
        last_error_message   = NULL,
        last_refreshed_at    = now()
    WHERE c.account_id = @account_id
      AND c.kind = 'access_token'
    RETURNING c.account_id, c.kind, c.generation, c.replace_not_before
), scheduled AS (
    UPDATE credential_schedule s
    SET refresh_at = written.replace_not_before
    FROM written
    WHERE s.account_id = written.account_id
      AND s.kind = written.kind
), woken AS (
    UPDATE credentials d
    SET replace_not_before = now()
    FROM written, credential_schedule ds
    WHERE d.account_id = written.account_id
      AND d.kind <> 'access_token'
      AND d.generation = 0
      AND ds.account_id = d.account_id
      AND ds.kind = d.kind
      AND ds.refresh_at IS NULL
    RETURNING d.account_id, d.kind
), woken_scheduled AS (
    UPDATE credential_schedule s
    SET refresh_at = now()
    FROM woken
    WHERE s.account_id = woken.account_id
      AND s.kind = woken.kind
), notified AS (
    SELECT pg_notify('wxhub_changes', json_build_object('credentials',
               json_agg(json_build_array(w.account_id, w.kind, w.generation)))::text)
    FROM written w
)
SELECT written.generation FROM written, (SELECT count(*) FROM notified) n;

-- name: AuthorizationCodeLock :exec
-- AuthorizationCodeLock takes the transaction-level advisory lock of one authorization code
-- (by its SHA-256), which its exchange holds until it is recorded.
SELECT pg_advisory_xact_lock(hashtextextended('wxhub/authorization-code/' || encode(@code_sha256::bytea, 'hex'), 0));

-- name: AuthorizationCodeRecord :exec
-- AuthorizationCodeRecord remembers a code wxhub exchanged (or took with an event for a live
-- authorizer) and the authorizer it is for.
INSERT INTO authorization_codes (code_sha256, tenant_id, account_id, component_account_id)
VALUES (@code_sha256, @tenant_id, @account_id, @component_account_id)
ON CONFLICT DO NOTHING;

-- name: AuthorizationCodeAccount :one
-- AuthorizationCodeAccount finds the authorizer a code of this component is for, while the
-- code can still be alive at WeChat (an hour).
SELECT sqlc.embed(a)
FROM authorization_codes ac
JOIN accounts a ON a.id = ac.account_id
WHERE ac.code_sha256 = @code_sha256
  AND ac.component_account_id = @component_account_id
  AND ac.recorded_at > now() - interval '1 hour';

-- name: AuthorizationCodesPrune :execrows
-- AuthorizationCodesPrune forgets codes recorded longer ago than a code lives at WeChat.
DELETE FROM authorization_codes
WHERE recorded_at < now() - interval '1 hour';
