-- name: CredentialInsert :one
-- CredentialInsert creates the empty row of a credential the account needs, with its
-- schedule. A credential created due is refreshed at once (an access token); the others
-- wait (refresh_at NULL): tickets until the first access token is written, a component's
-- access token until WeChat pushes its first verify ticket, the verify ticket for good
-- (WeChat pushes it; nothing fetches it).
WITH inserted AS (
    INSERT INTO credentials (tenant_id, account_id, kind, replace_not_before)
    VALUES (@tenant_id, @account_id, @kind,
        CASE WHEN @due::bool THEN coalesce(sqlc.narg('now')::timestamptz, now()) END)
    ON CONFLICT (account_id, kind) DO NOTHING
    RETURNING *
), scheduled AS (
    INSERT INTO credential_schedule (tenant_id, account_id, kind, refresh_at)
    SELECT inserted.tenant_id, inserted.account_id, inserted.kind, inserted.replace_not_before
    FROM inserted
    RETURNING credential_schedule.account_id, credential_schedule.kind, credential_schedule.refresh_at
)
SELECT inserted.*, scheduled.refresh_at
FROM inserted
JOIN scheduled ON scheduled.account_id = inserted.account_id AND scheduled.kind = inserted.kind;

-- name: CredentialGet :one
SELECT c.*, s.refresh_at
FROM credentials c
JOIN credential_schedule s ON s.account_id = c.account_id AND s.kind = c.kind
WHERE c.account_id = @account_id
  AND c.kind = @kind;

-- name: CredentialLockDue :many
-- CredentialLockDue is the first step of a claim: it locks up to max due credentials, oldest
-- due first, skipping rows other workers hold and credentials whose claim's lease has not
-- run out, and returns what a refresh needs. The subquery walks the schedule's refresh_at
-- index and stops at the limit, however large the backlog. It locks both rows of each
-- credential: a row changed by a transaction that committed after this statement began is
-- checked again in its new version only if it is locked, so a credential whose write just
-- committed (a new value, refresh_at an hour away) would otherwise still be taken for due
-- and fetched again at once (the long campaign found two such second tokens). SKIP LOCKED
-- never waits, so locking the schedule row here cannot deadlock with a statement that
-- holds the credential's lock and changes its schedule row (migration 00007).
WITH due AS (
    SELECT c.account_id, c.kind, c.tenant_id, c.generation, c.value_ciphertext, c.value_key_id,
           c.expires_at, c.refresh_requested_at, c.attempts, s.refresh_at,
           (c.claimed_by IS NOT NULL OR c.orphan_hold_until IS NOT NULL)::bool AS orphan_possible
    FROM credential_schedule s
    JOIN credentials c ON c.account_id = s.account_id AND c.kind = s.kind
    WHERE s.refresh_at <= coalesce(sqlc.narg('now')::timestamptz, now())
      AND (c.claimed_until IS NULL OR c.claimed_until <= coalesce(sqlc.narg('now')::timestamptz, now()))
    ORDER BY s.refresh_at
    LIMIT @max
    FOR UPDATE OF c, s SKIP LOCKED
)
SELECT due.account_id, due.kind, due.tenant_id, due.generation, due.value_ciphertext, due.value_key_id,
       due.expires_at, due.refresh_requested_at, due.attempts, due.orphan_possible,
       a.appid, a.kind AS account_kind, a.status AS account_status, a.token_mode, a.daily_limits,
       a.corp_id, a.secret_ciphertext, a.secret_key_id, ca.appid AS component_appid,
       t.account_id AS token_account_id, t.kind AS token_kind,
       t.value_ciphertext AS token_ciphertext, t.value_key_id AS token_key_id, t.expires_at AS token_expires_at,
       t.generation AS token_generation
FROM due
JOIN accounts a ON a.id = due.account_id
LEFT JOIN accounts ca ON ca.id = a.component_account_id
-- What the refresh is fetched with: a ticket with the account's access token, a component's
-- access token with the verify ticket WeChat pushed, an authorizer's access token with its
-- component's access token.
LEFT JOIN credentials t
    ON t.account_id = CASE WHEN due.kind = 'access_token' AND a.kind = 'authorizer'
                           THEN a.component_account_id ELSE due.account_id END
    AND t.kind = CASE WHEN due.kind <> 'access_token' THEN 'access_token'
                      WHEN a.kind = 'component' THEN 'verify_ticket'
                      WHEN a.kind = 'authorizer' THEN 'access_token' END
ORDER BY due.refresh_at;

-- name: CredentialUnschedule :exec
-- CredentialUnschedule stops refreshing credentials (locked by the claim) of accounts that
-- are disabled or unauthorized; enabling an account schedules them again.
UPDATE credential_schedule
SET refresh_at = NULL
WHERE (account_id, kind) IN (SELECT unnest(@account_ids::bigint[]), unnest(@kinds::text[]))
  AND refresh_at <= now();

-- name: AccountTryLock :many
-- AccountTryLock takes the transaction-level advisory lock of each account it can, and
-- returns those. Every claim of an account's credentials happens under this lock, so two
-- claimers never both see the account idle.
SELECT id::bigint
FROM unnest(@account_ids::bigint[]) AS id
WHERE pg_try_advisory_xact_lock(hashtextextended('wxhub/account/' || id::text, 0));

-- name: CredentialHold :many
-- CredentialHold is a step of a claim, for credentials whose every fetch kills the previous
-- value after the overlap (classic tokens, tickets). WeChat keeps only one superseded value
-- alive, so a fetch also kills the value before the previous one at once, and API nodes may
-- still promise both. No fetch happens before:
--   - previous_expires_at, when the value the current one replaced dies on its own (a
--     replacement fetched sooner would kill it while it is still promised);
--   - the end of an orphan hold, when the credential may have an orphan: a value WeChat
--     issued that wxhub never saw, because the previous claim's worker vanished (its claim
--     is still recorded) or its call's answer was lost. The stored value may then no longer
--     be WeChat's newest, and the next fetch could kill it at once, so the hold lasts until
--     the nodes have stopped promising it: hold_seconds (the overlap and a margin) after
--     replace_not_before. It is kept until a write clears it.
--   - when a claim is unfinished, also the end of its lease plus call_seconds (the longest
--     a call may run, and a margin for clocks): its worker starts a call only inside its
--     lease, and a call it started then may still reach WeChat until the call ends. Fetched
--     before that, the new value could be superseded by the old claim's call, which the
--     claim fence keeps out of wxhub: the stored value would die while still promised.
-- Rows still held come back with held set and must not be claimed. Only rows whose hold or
-- schedule changes are written.
WITH hold AS (
    SELECT c.account_id, c.kind, c.previous_expires_at, c.orphan_hold_until,
           CASE WHEN c.generation > 0 AND (c.claimed_by IS NOT NULL OR c.orphan_hold_until IS NOT NULL)
               THEN greatest(coalesce(c.orphan_hold_until, c.replace_not_before + make_interval(secs => @hold_seconds::float8)),
                             CASE WHEN c.claimed_by IS NOT NULL THEN c.claimed_until + make_interval(secs => @call_seconds::float8) END)
           END AS orphan_until
    FROM credentials c
    WHERE (c.account_id, c.kind) IN (SELECT unnest(@account_ids::bigint[]), unnest(@kinds::text[]))
), marked AS (
    UPDATE credentials c
    SET orphan_hold_until = hold.orphan_until
    FROM hold
    WHERE c.account_id = hold.account_id
      AND c.kind = hold.kind
      AND hold.orphan_hold_until IS DISTINCT FROM hold.orphan_until
), scheduled AS (
    UPDATE credential_schedule s
    SET refresh_at = greatest(s.refresh_at, hold.orphan_until, hold.previous_expires_at)
    FROM hold
    WHERE s.account_id = hold.account_id
      AND s.kind = hold.kind
      AND s.refresh_at < greatest(s.refresh_at, hold.orphan_until, hold.previous_expires_at)
)
SELECT hold.account_id, hold.kind,
    coalesce(greatest(hold.orphan_until, hold.previous_expires_at) > coalesce(sqlc.narg('now')::timestamptz, now()), false)::bool AS held
FROM hold;

-- name: CredentialClaim :many
-- CredentialClaim is the second step of a claim, for credentials whose account lock is held
-- (at most one per account). It skips accounts with a credential already in flight, counts
-- the upstream call in the quota ledger unless that would pass the limit, and leases the
-- counted ones to this worker. The lease leaves refresh_at, the one indexed column, alone,
-- so the update can be heap-only (HOT): the credential is due again when the lease runs out
-- (a vanished worker's claim), unless its outcome reschedules it first. Each input row comes back with whether it was claimed (and
-- the quota day its call was counted on), and why not.
WITH input AS (
    SELECT unnest(@account_ids::bigint[]) AS account_id, unnest(@kinds::text[]) AS kind,
           unnest(@apis::text[]) AS api, unnest(@daily_limits::int[]) AS daily_limit
), idle AS (
    SELECT i.*, c.tenant_id
    FROM input i
    JOIN credentials c ON c.account_id = i.account_id AND c.kind = i.kind
    WHERE NOT EXISTS (
        SELECT 1 FROM credentials o
        WHERE o.account_id = i.account_id
          AND o.claimed_until > coalesce(sqlc.narg('now')::timestamptz, now()))
), counted AS (
    INSERT INTO upstream_calls AS u (tenant_id, account_id, api, day, calls, daily_limit)
    SELECT idle.tenant_id, idle.account_id, idle.api,
           ((coalesce(sqlc.narg('now')::timestamptz, now()) AT TIME ZONE 'UTC') + interval '8 hours')::date,
           1, idle.daily_limit
    FROM idle
    WHERE idle.daily_limit > 0
    ON CONFLICT (account_id, api, day) DO UPDATE
        SET calls = u.calls + 1, daily_limit = excluded.daily_limit
        WHERE u.calls < excluded.daily_limit
    RETURNING u.account_id, u.api, u.day
), claimed AS (
    UPDATE credentials c
    SET claimed_until = coalesce(sqlc.narg('now')::timestamptz, now()) + make_interval(secs => @lease_seconds::float8),
        claimed_by = @worker::text,
        claim_seq = c.claim_seq + 1
    FROM idle
    JOIN counted ON counted.account_id = idle.account_id AND counted.api = idle.api
    WHERE c.account_id = idle.account_id AND c.kind = idle.kind
    RETURNING c.account_id, c.kind, c.claim_seq, counted.day
)
SELECT i.account_id::bigint AS account_id, i.kind::text AS kind, i.api::text AS api,
       (claimed.claim_seq IS NOT NULL)::bool AS claimed,
       coalesce(claimed.claim_seq, 0)::bigint AS claim_seq,
       claimed.day AS quota_day,
       (idle.account_id IS NULL)::bool AS busy
FROM input i
LEFT JOIN idle ON idle.account_id = i.account_id AND idle.kind = i.kind
LEFT JOIN claimed ON claimed.account_id = i.account_id AND claimed.kind = i.kind;

-- name: CredentialDeferToNextQuotaDay :exec
-- CredentialDeferToNextQuotaDay parks credentials whose API has no quota left today until
-- shortly after the next quota day starts (China midnight), and says why.
WITH next_day AS (
    SELECT ((date_trunc('day', (coalesce(sqlc.narg('now')::timestamptz, now()) AT TIME ZONE 'UTC') + interval '8 hours')
             + interval '1 day' - interval '8 hours') AT TIME ZONE 'UTC') AS at
), deferred AS (
    UPDATE credentials c
    SET replace_not_before = CASE WHEN c.orphan_hold_until IS NULL THEN next_day.at ELSE c.replace_not_before END,
        last_error_code = @error_code::int,
        last_error_message = @message::text
    FROM next_day, credential_schedule s
    WHERE (c.account_id, c.kind) IN (SELECT unnest(@account_ids::bigint[]), unnest(@kinds::text[]))
      AND s.account_id = c.account_id
      AND s.kind = c.kind
      AND s.refresh_at <= coalesce(sqlc.narg('now')::timestamptz, now())
    RETURNING c.account_id, c.kind
)
UPDATE credential_schedule s
SET refresh_at = next_day.at + make_interval(secs => random() * @jitter_seconds::float8)
FROM deferred, next_day
WHERE s.account_id = deferred.account_id
  AND s.kind = deferred.kind;

-- name: CredentialDeferToNextWindow :exec
-- CredentialDeferToNextWindow parks credentials whose API has no calls left in the hourly
-- ledger's current window (see UpstreamCallsHourlyCount) until shortly after the next
-- window starts, and says why.
WITH next_window AS (
    SELECT to_timestamp((floor(extract(epoch FROM coalesce(sqlc.narg('now')::timestamptz, now())) / @window_seconds::float8) + 1)
                        * @window_seconds::float8) AS at
), deferred AS (
    UPDATE credentials c
    SET replace_not_before = CASE WHEN c.orphan_hold_until IS NULL THEN next_window.at ELSE c.replace_not_before END,
        last_error_code = @error_code::int,
        last_error_message = @message::text
    FROM next_window, credential_schedule s
    WHERE (c.account_id, c.kind) IN (SELECT unnest(@account_ids::bigint[]), unnest(@kinds::text[]))
      AND s.account_id = c.account_id
      AND s.kind = c.kind
      AND s.refresh_at <= coalesce(sqlc.narg('now')::timestamptz, now())
    RETURNING c.account_id, c.kind
)
UPDATE credential_schedule s
SET refresh_at = next_window.at + make_interval(secs => random() * @jitter_seconds::float8)
FROM deferred, next_window
WHERE s.account_id = deferred.account_id
  AND s.kind = deferred.kind;

-- name: CredentialWriteFenced :many
-- CredentialWriteFenced stores newly fetched values, a batch of credentials in one statement
-- and so one transaction: for each, the value, its expiry, generation+1, the value it
-- replaces kept as the previous one while WeChat still accepts it, and the next refresh
-- time; then one NOTIFY to API nodes per hundred credentials written (a payload stays far
-- below NOTIFY's 8000 bytes). Each row is fenced on its own: it is stored only while its
-- claim is still the worker's own (no later claim took it over) and its generation is still
-- the one the claim read, so a worker that lost a claim changes nothing there. A row comes
-- back for each value stored, and for each retry of a write that was committed but whose
-- answer was lost (replayed); a credential without a row was fenced. The next refresh time
-- is also the earliest time a replacement may be fetched (replace_not_before), and any
-- orphan hold ends: the stored value is WeChat's newest. A new access token also wakes the
-- account's tickets that wait for a first one, any write clears a failing status, and an
-- authorizer's new refresh token is stored with its access token.
WITH input AS (
    SELECT unnest(@account_ids::bigint[]) AS account_id, unnest(@kinds::text[]) AS kind,
           unnest(@claim_seqs::bigint[]) AS claim_seq, unnest(@generations::bigint[]) AS generation,
           unnest(@value_ciphertexts::bytea[]) AS value_ciphertext, unnest(@value_key_ids::text[]) AS value_key_id,
           unnest(@value_fingerprints::text[]) AS value_fingerprint, unnest(@expires_ats::timestamptz[]) AS expires_at,
           unnest(@refresh_in_seconds::float8[]) AS refresh_in_seconds,
           unnest(@previous_valid_seconds::float8[]) AS previous_valid_seconds,
           unnest(@secret_ciphertexts::bytea[]) AS secret_ciphertext, unnest(@secret_key_ids::text[]) AS secret_key_id
), written AS (
    UPDATE credentials c
    SET previous_ciphertext  = CASE WHEN c.expires_at > now() THEN c.value_ciphertext END,
        previous_key_id      = CASE WHEN c.expires_at > now() THEN c.value_key_id END,
        previous_expires_at  = CASE WHEN c.expires_at > now()
            THEN least(c.expires_at, now() + make_interval(secs => i.previous_valid_seconds)) END,
        value_ciphertext     = i.value_ciphertext,
        value_key_id         = i.value_key_id,
        value_fingerprint    = i.value_fingerprint,
        expires_at           = i.expires_at,
        generation           = c.generation + 1,
        replace_not_before   = now() + make_interval(secs => i.refresh_in_seconds),
        orphan_hold_until    = NULL,
        claimed_by           = NULL,
        claimed_until        = NULL,
        refresh_requested_at = NULL,
        attempts             = 0,
        last_error_code      = NULL,
        last_error_message   = NULL,
        last_refreshed_at    = now()
    FROM input i
    WHERE c.account_id = i.account_id
      AND c.kind = i.kind
      AND c.claim_seq = i.claim_seq
      AND c.generation = i.generation
    RETURNING c.account_id, c.kind, c.claim_seq, c.generation, c.expires_at, c.replace_not_before AS refresh_at
), scheduled AS (
    UPDATE credential_schedule s
    SET refresh_at = written.refresh_at
    FROM written
    WHERE s.account_id = written.account_id
      AND s.kind = written.kind
), woken AS (
    UPDATE credentials d
    SET replace_not_before = now()
    FROM written, credential_schedule ds
    WHERE written.kind = 'access_token'
      AND d.account_id = written.account_id
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
), accounts_written AS (
    -- A failing account recovers; an authorizer keeps the refresh token WeChat answered with
    -- the access token (secret_key_id '' when there is none to keep), in this statement, so
    -- the token stored is never one whose refresh token was lost.
    UPDATE accounts a
    SET status            = CASE WHEN a.status = 'failing' THEN 'active' ELSE a.status END,
        status_reason     = CASE WHEN a.status = 'failing' THEN '' ELSE a.status_reason END,
        secret_ciphertext = CASE WHEN i.secret_key_id <> '' THEN i.secret_ciphertext ELSE a.secret_ciphertext END,
        secret_key_id     = CASE WHEN i.secret_key_id <> '' THEN i.secret_key_id ELSE a.secret_key_id END,
        updated_at        = now()
    FROM written
    JOIN input i ON i.account_id = written.account_id AND i.kind = written.kind
    WHERE a.id = written.account_id
      AND (a.status = 'failing' OR i.secret_key_id <> '')
), notified AS (
    SELECT pg_notify('wxhub_changes', json_build_object('credentials',
               json_agg(json_build_array(n.account_id, n.kind, n.generation)))::text)
    FROM (SELECT w.account_id, w.kind, w.generation, (row_number() OVER () - 1) / 100 AS chunk
          FROM written w) n
    GROUP BY n.chunk
)
SELECT w.account_id, w.kind, w.claim_seq, w.generation, w.expires_at, false AS replayed
FROM written w
WHERE (SELECT count(*) FROM notified) > 0
UNION ALL
-- Every statement of the batch sees the rows as they were before it, so a credential found
-- one generation past the one its claim read, under the same claim and with the same value,
-- was stored by an earlier attempt of this very write.
SELECT c.account_id, c.kind, c.claim_seq, c.generation, c.expires_at, true AS replayed
FROM input i
JOIN credentials c ON c.account_id = i.account_id AND c.kind = i.kind
WHERE c.claim_seq = i.claim_seq
  AND c.generation - 1 = i.generation
  AND c.value_fingerprint = i.value_fingerprint;

-- name: CredentialReschedule :execrows
-- CredentialReschedule ends a claim without a new value (WeChat returned the value already
-- stored) and sets the next attempt. It is fenced on the claim, like every claim outcome,
-- and it notifies, so a caller waiting on a requested refresh learns the value stands.
WITH rescheduled AS (
    UPDATE credentials
    SET replace_not_before   = CASE WHEN orphan_hold_until IS NULL
            THEN now() + make_interval(secs => @refresh_in_seconds::float8) ELSE replace_not_before END,
        claimed_by           = NULL,
        claimed_until        = NULL,
        refresh_requested_at = NULL,
        attempts             = 0
    WHERE credentials.account_id = @account_id
      AND credentials.kind = @kind
      AND credentials.claim_seq = @claim_seq
    RETURNING credentials.account_id, credentials.kind, credentials.generation, credentials.orphan_hold_until
), scheduled AS (
    UPDATE credential_schedule s
    SET refresh_at = greatest(now() + make_interval(secs => @refresh_in_seconds::float8), rescheduled.orphan_hold_until)
    FROM rescheduled
    WHERE s.account_id = rescheduled.account_id
      AND s.kind = rescheduled.kind
)
SELECT pg_notify('wxhub_changes', json_build_object(
    'account_id', account_id, 'kind', kind, 'generation', generation)::text)
FROM rescheduled;

-- name: CredentialRecordFailure :execrows
-- CredentialRecordFailure ends a failed claim: it stores WeChat's code and message (never a
-- secret), counts the attempt and sets when to retry. The current value is left alone. A
-- failure WeChat answered issued nothing, so no replacement is fetched before the retry; a
-- failure without an answer (uncertain: the connection was lost, perhaps after WeChat issued
-- a value) of a rotating credential starts an orphan hold instead, hold_seconds after
-- replace_not_before, and the retry waits for it.
WITH hold AS (
    SELECT h.account_id, h.kind,
           CASE WHEN h.orphan_hold_until IS NOT NULL THEN h.orphan_hold_until
                WHEN @uncertain::bool AND h.generation > 0
                THEN h.replace_not_before + make_interval(secs => @hold_seconds::float8) END AS until
    FROM credentials h
    WHERE h.account_id = @account_id
      AND h.kind = @kind
), failed AS (
    UPDATE credentials c
    SET replace_not_before = CASE WHEN hold.until IS NULL
            THEN now() + make_interval(secs => @retry_in_seconds::float8) ELSE c.replace_not_before END,
        orphan_hold_until  = hold.until,
        claimed_by         = NULL,
        claimed_until      = NULL,
        attempts           = c.attempts + 1,
        last_error_code    = @error_code::int,
        last_error_message = @error_message::text
    FROM hold
    WHERE c.account_id = hold.account_id
      AND c.kind = hold.kind
      AND c.claim_seq = @claim_seq
    RETURNING c.account_id, c.kind, hold.until
), scheduled AS (
    UPDATE credential_schedule s
    SET refresh_at = greatest(now() + make_interval(secs => @retry_in_seconds::float8), failed.until)
    FROM failed
    WHERE s.account_id = failed.account_id
      AND s.kind = failed.kind
)
SELECT failed.account_id FROM failed;

-- name: CredentialRequestRefresh :execrows
-- CredentialRequestRefresh makes a credential due now because its value was reported
-- rejected, an app server needs a longer-lived one, or the nodes can no longer promise it.
-- It only acts while the reported generation is still current (compare and refresh), no
-- refresh is in flight (its result answers the report anyway), and the last request is
-- older than the minimum interval, so a client that reports every value it gets cannot drain
-- the daily quota. The replacement may now be fetched at once (replace_not_before), unless
-- a hold says to wait (see CredentialHold); the NOTIFY makes the nodes shorten what they
-- promise. When WeChat rejected the current value (dead), every older value is dead too, so
-- there is nothing left to protect and the holds end. A credential already due keeps its
-- place in the queue: after an outage, the oldest due are the ones nodes wait for. After
-- WeChat answered 45009 (the day's quota is spent) nothing is fetched before the quota day
-- turns, requests included: every call would be refused, and may count.
WITH requested AS (
    UPDATE credentials c
    SET orphan_hold_until = CASE WHEN @dead::bool AND c.orphan_hold_until > now() THEN now() ELSE c.orphan_hold_until END,
        previous_expires_at = CASE WHEN @dead::bool AND c.previous_expires_at > now() THEN now() ELSE c.previous_expires_at END,
        replace_not_before = CASE WHEN c.orphan_hold_until IS NULL
            THEN least(coalesce(c.replace_not_before, now()), now()) ELSE c.replace_not_before END,
        refresh_requested_at = now(),
        last_request_at = now()
    FROM credential_schedule s
    WHERE c.account_id = @account_id
      AND c.kind = @kind
      AND s.account_id = c.account_id
      AND s.kind = c.kind
      AND c.generation = @generation
      AND (c.claimed_until IS NULL OR c.claimed_until <= now())
      AND (c.last_request_at IS NULL OR c.last_request_at < now() - make_interval(secs => @min_interval_seconds::float8))
      AND NOT coalesce(c.last_error_code = 45009 AND s.refresh_at > now(), false)
    RETURNING c.account_id, c.kind, c.generation, c.orphan_hold_until
), scheduled AS (
    -- A dead report ends the hold (orphan_hold_until is now); otherwise the hold is unchanged.
    UPDATE credential_schedule s
    SET refresh_at = CASE WHEN @dead::bool THEN least(s.refresh_at, now())
                          ELSE greatest(least(s.refresh_at, now()), requested.orphan_hold_until) END
    FROM requested
    WHERE s.account_id = requested.account_id
      AND s.kind = requested.kind
)
SELECT pg_notify('wxhub_changes', json_build_object(
    'account_id', account_id, 'kind', kind, 'generation', generation)::text)
FROM requested;

-- name: CredentialCountDue :one
-- CredentialCountDue is the backlog: credentials that are due and not claimed.
SELECT count(*)
FROM credential_schedule s
JOIN credentials c ON c.account_id = s.account_id AND c.kind = s.kind
WHERE s.refresh_at <= now()
  AND (c.claimed_until IS NULL OR c.claimed_until <= now());

-- name: CredentialPostpone :exec
-- CredentialPostpone moves due credentials that cannot be refreshed now (no refresher for
-- their kind yet) out of the way of the others, and says why.
WITH postponed AS (
    UPDATE credentials c
    SET replace_not_before = CASE WHEN c.orphan_hold_until IS NULL
            THEN now() + make_interval(secs => @postpone_seconds::float8) ELSE c.replace_not_before END,
        last_error_message = @message::text
    FROM credential_schedule s
    WHERE (c.account_id, c.kind) IN (SELECT unnest(@account_ids::bigint[]), unnest(@kinds::text[]))
      AND s.account_id = c.account_id
      AND s.kind = c.kind
      AND s.refresh_at <= now()
    RETURNING c.account_id, c.kind, c.orphan_hold_until
)
UPDATE credential_schedule s
SET refresh_at = greatest(now() + make_interval(secs => @postpone_seconds::float8), postponed.orphan_hold_until)
FROM postponed
WHERE s.account_id = postponed.account_id
  AND s.kind = postponed.kind;

-- name: CredentialGetByAppID :one
-- CredentialGetByAppID is what API nodes load into their cache: the credential with its
-- account's identity and status, whether a requested refresh is still pending, the last
-- failure with the next attempt, so a node can tell a client at once why no value comes, and
-- whether a fetch of a replacement may have begun before the read (read_at, the database's
-- time at the start of the read).
SELECT c.account_id, c.tenant_id, c.kind, c.generation, c.value_ciphertext, c.value_key_id, c.expires_at,
       c.replace_not_before, (c.refresh_requested_at IS NOT NULL)::bool AS refresh_requested, a.appid, a.kind AS account_kind, a.status AS account_status, a.token_mode,
       a.status_reason, c.last_error_code, s.refresh_at, coalesce(c.claimed_until > now(), false)::bool AS refreshing,
       (c.claimed_by IS NOT NULL OR c.orphan_hold_until IS NOT NULL)::bool AS fetch_may_have_started, now()::timestamptz AS read_at
FROM accounts a
JOIN credentials c ON c.account_id = a.id
JOIN credential_schedule s ON s.account_id = c.account_id AND s.kind = c.kind
WHERE a.appid = @appid
  AND c.kind = @kind;

-- name: CredentialListByAccount :many
SELECT c.*, s.refresh_at
FROM credentials c
JOIN credential_schedule s ON s.account_id = c.account_id AND s.kind = c.kind
WHERE c.account_id = @account_id
ORDER BY c.kind;

-- name: CredentialLockAccount :exec
-- CredentialLockAccount locks an account's credentials before anything changes the account
-- row. A credential write locks the credential, then its account (to clear a failing
-- status); taking the locks in the same order everywhere keeps the two from deadlocking.
SELECT 1
FROM credentials
WHERE account_id = @account_id
ORDER BY kind
FOR UPDATE;

-- name: CredentialExpireAll :execrows
-- CredentialExpireAll makes every stored value expired and due now. Only `wxhub dev` uses it:
-- its simulator starts empty, so the values an earlier run stored mean nothing to it, and
-- must not be handed out before the worker fetches new ones. No claim of the earlier run can
-- have reached this simulator, so none is left standing.
WITH expired AS (
    UPDATE credentials
    SET expires_at = CASE WHEN expires_at > now() THEN now() ELSE expires_at END,
        previous_expires_at = CASE WHEN previous_expires_at > now() THEN now() ELSE previous_expires_at END,
        replace_not_before = now(),
        orphan_hold_until = NULL,
        claimed_by = NULL,
        claimed_until = NULL
    WHERE generation > 0 OR claimed_by IS NOT NULL
    RETURNING account_id, kind
), scheduled AS (
    UPDATE credential_schedule s
    SET refresh_at = now()
    FROM expired
    WHERE s.account_id = expired.account_id
      AND s.kind = expired.kind
      AND s.refresh_at IS NOT NULL
)
SELECT expired.account_id FROM expired;

-- name: CredentialDeleteKinds :execrows
-- CredentialDeleteKinds drops credentials the account no longer wants (tickets).
DELETE FROM credentials
WHERE account_id = @account_id
  AND kind = ANY(@kinds::text[]);

-- name: CredentialWakeNewTickets :exec
-- CredentialWakeNewTickets makes an account's tickets that have never been fetched due now
-- when the account already has a valid access token: a ticket otherwise waits for the next
-- access token write.
WITH woken AS (
    UPDATE credentials c
    SET replace_not_before = now()
    FROM credential_schedule s
    WHERE c.account_id = @account_id
      AND c.kind <> 'access_token'
      AND c.generation = 0
      AND s.account_id = c.account_id
      AND s.kind = c.kind
      AND s.refresh_at IS NULL
      AND EXISTS (SELECT 1 FROM credentials t
                  WHERE t.account_id = c.account_id AND t.kind = 'access_token' AND t.expires_at > now())
    RETURNING c.account_id, c.kind
)
UPDATE credential_schedule s
SET refresh_at = now()
FROM woken
WHERE s.account_id = woken.account_id
  AND s.kind = woken.kind;
