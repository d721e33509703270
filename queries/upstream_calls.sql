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

-- name: UpstreamCallsHourlyCount :many
-- UpstreamCallsHourlyCount is a step of a claim: it counts one call per input row in the
-- hourly ledger's current window, unless that would pass the row's limit, and returns the
-- rows it counted with their window. The window is the database's time truncated to
-- window_seconds since the epoch (the clock hour for 3600). A scope and API appear at most
-- once in the input.
WITH input AS (
    SELECT unnest(@scopes::text[]) AS scope, unnest(@apis::text[]) AS api,
           unnest(@hourly_limits::int[]) AS hourly_limit
), win AS (
    SELECT to_timestamp(floor(extract(epoch FROM coalesce(sqlc.narg('now')::timestamptz, now())) / @window_seconds::float8)
                        * @window_seconds::float8) AS start
)
INSERT INTO upstream_calls_hourly AS u (scope, api, window_start, calls, hourly_limit)
SELECT input.scope, input.api, win.start, 1, input.hourly_limit
FROM input, win
WHERE input.hourly_limit > 0
ON CONFLICT (scope, api, window_start) DO UPDATE
    SET calls = u.calls + 1, hourly_limit = excluded.hourly_limit
    WHERE u.calls < excluded.hourly_limit
RETURNING u.scope, u.api, u.window_start;

-- name: UpstreamCallsHourlyRefund :execrows
-- UpstreamCallsHourlyRefund gives back a call counted in the hourly ledger by a claim that
-- did not call: it was not claimed after all (busy, over the daily limit), or it ended
-- before calling WeCom.
UPDATE upstream_calls_hourly
SET calls = calls - 1
WHERE scope = @scope
  AND api = @api
  AND window_start = @window_start
  AND calls > 0;

-- name: UpstreamCallsHourlyPrune :execrows
-- UpstreamCallsHourlyPrune deletes the hourly ledger's windows that began before the
-- retention: only the current window decides anything.
DELETE FROM upstream_calls_hourly
WHERE window_start < now() - make_interval(hours => @keep_hours::int);

-- name: UpstreamCallsRecord :exec
-- UpstreamCallsRecord counts a call made outside a claim's own count: a worker's second call
-- within one claim (an authorizer's refresh token recovered) or a call an API node makes on
-- a request's behalf. The call was made, so it is counted even past the limit.
INSERT INTO upstream_calls AS u (tenant_id, account_id, api, day, calls, daily_limit)
VALUES (@tenant_id, @account_id, @api, ((now() AT TIME ZONE 'UTC') + interval '8 hours')::date, 1, @daily_limit)
ON CONFLICT (account_id, api, day) DO UPDATE SET calls = u.calls + 1;
