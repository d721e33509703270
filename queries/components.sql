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
