-- +goose Up

-- WeCom limits its tickets per hour, not per day: 400 corp jsapi tickets per corp and 100
-- agent_config tickets per app. This ledger counts those calls per window the way
-- upstream_calls counts daily ones: a claim counts its call before making it (a crash never
-- under-counts), refuses to pass the limit, and gives the count back when it ended without
-- calling. A corp's scope covers every app of the corp whichever tenant holds it, because
-- WeCom's limit does; so the table is keyed by scope, not by tenant, and holds no secret.
CREATE TABLE upstream_calls_hourly (
    scope        text        NOT NULL,
    api          text        NOT NULL,
    window_start timestamptz NOT NULL,
    calls        integer     NOT NULL DEFAULT 0 CONSTRAINT upstream_calls_hourly_calls_nonnegative CHECK (calls >= 0),
    hourly_limit integer     NOT NULL CONSTRAINT upstream_calls_hourly_limit_positive CHECK (hourly_limit > 0),
    PRIMARY KEY (scope, api, window_start)
);

COMMENT ON TABLE upstream_calls_hourly IS 'Calls wxhub made per scope (corp:<corp_id> or account:<id>), API and limit window (the clock hour), for WeCom''s hourly ticket limits.';
COMMENT ON COLUMN upstream_calls_hourly.scope IS 'What the limit counts for: corp:<corp_id> for the corp''s jsapi ticket, account:<id> for an app''s agent_config ticket.';
COMMENT ON COLUMN upstream_calls_hourly.api IS 'The WeCom API called: wecom_get_jsapi_ticket or wecom_agent_ticket.';
COMMENT ON COLUMN upstream_calls_hourly.window_start IS 'Start of the window the calls were made in: the clock hour, or a shorter window in tests.';
COMMENT ON COLUMN upstream_calls_hourly.calls IS 'Calls made in the window: counted by the claim before the call, given back when the claim ended without calling WeCom.';
COMMENT ON COLUMN upstream_calls_hourly.hourly_limit IS 'The limit wxhub enforced in the window.';

-- A corp's jsapi ticket is the corp's: each fetch kills the previous one after the overlap,
-- whichever app fetched it, so two apps of a corp that each kept one would kill each
-- other's. One app of a corp keeps it (tickets contains jsapi); the others ask that app.
CREATE UNIQUE INDEX accounts_corp_jsapi_keeper ON accounts (corp_id)
    WHERE kind = 'wecom_app' AND 'jsapi' = ANY (tickets);

COMMENT ON COLUMN accounts.tickets IS 'Which tickets wxhub keeps fresh for the account: jsapi, wx_card (official accounts), agent_config (WeCom). For a WeCom app jsapi is the corp''s ticket, kept by at most one app of the corp (accounts_corp_jsapi_keeper).';

-- +goose Down
COMMENT ON COLUMN accounts.tickets IS 'Which tickets wxhub keeps fresh for the account: jsapi, wx_card (official accounts), agent_config (WeCom).';
DROP INDEX accounts_corp_jsapi_keeper;
DROP TABLE upstream_calls_hourly;
