-- name: UpstreamCallsToday :many
-- UpstreamCallsToday lists the calls counted for an account on the current quota day,
-- which is WeChat's: the calendar day in China time (UTC+8).
SELECT api, calls
FROM upstream_calls
WHERE account_id = @account_id
  AND day = ((coalesce(sqlc.narg('now')::timestamptz, now()) AT TIME ZONE 'UTC') + interval '8 hours')::date
ORDER BY api;

-- name: UpstreamCallsPrune :execrows
-- UpstreamCallsPrune deletes the quota ledger's days older than the retention: only the
-- current quota day decides anything, the rest is history for operators.
DELETE FROM upstream_calls
WHERE day < ((now() AT TIME ZONE 'UTC') + interval '8 hours')::date - @keep_days::int;

-- name: UpstreamCallsRefund :execrows
-- UpstreamCallsRefund gives back a call counted by a claim that ended without calling WeChat
-- (the secret did not decrypt, a ticket had no access token, the claim came too late to
-- call safely): the ledger counts calls WeChat saw, not claims. It runs in the transaction
-- that records the claim's failure, which is fenced on the claim, so a claim is refunded at
-- most once, and only on the day its call was counted.
UPDATE upstream_calls
SET calls = calls - 1
WHERE account_id = @account_id
  AND api = @api
  AND day = @day
  AND calls > 0;
