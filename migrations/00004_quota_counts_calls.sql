-- +goose Up

-- The quota ledger counts calls WeChat saw: a claim counts its call before making it (a
-- crash never under-counts), and a claim that ends without calling gives the count back.
COMMENT ON COLUMN upstream_calls.calls IS 'Calls made to the API on this quota day: counted by the claim before the call, so a crash never under-counts, and given back when the claim ended before calling WeChat (secret not decryptable, ticket without an access token, claim too late to call).';
COMMENT ON VIEW wxhub_quota_today IS 'Calls wxhub made today (WeChat''s quota day, China time) per account and API, against the limit it enforces.';

-- +goose Down
COMMENT ON VIEW wxhub_quota_today IS 'Calls wxhub counted today (WeChat''s quota day, China time) per account and API, against the limit it enforces.';
COMMENT ON COLUMN upstream_calls.calls IS 'Calls counted before they were made, so a crash never under-counts.';
