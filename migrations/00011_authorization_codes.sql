-- +goose Up

-- WeChat hands every authorization code out twice: in the authorized (or updateauthorized)
-- event it pushes to wxhub, and on the merchant's browser, which it sends to the platform's
-- redirect page. A code buys a grant once (api_query_auth answers 61009 the second time), so
-- whichever asks second would fail. wxhub records the codes it exchanged or took with an
-- event, by their SHA-256 and never in clear, and answers the second asker (the gateway's
-- api_query_auth, POST .../authorizations) from the account the code is for. A code is dead
-- at WeChat within the hour, so older rows are not answered and are pruned by the workers.
CREATE TABLE authorization_codes (
    code_sha256          bytea       PRIMARY KEY CONSTRAINT authorization_codes_sha256 CHECK (length(code_sha256) = 32),
    tenant_id            bigint      NOT NULL,
    account_id           bigint      NOT NULL,
    component_account_id bigint      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    recorded_at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE INDEX authorization_codes_recorded_at_idx ON authorization_codes (recorded_at);
-- For the cascades when an account is deleted or moved.
CREATE INDEX authorization_codes_account_idx ON authorization_codes (tenant_id, account_id);
CREATE INDEX authorization_codes_component_idx ON authorization_codes (component_account_id);

COMMENT ON TABLE authorization_codes IS 'Authorization codes wxhub exchanged or took with an event in the last hour (their SHA-256), and the authorizer each is for, so that the code asked for again is answered from wxhub''s records instead of WeChat''s 61009.';
COMMENT ON COLUMN authorization_codes.code_sha256 IS 'SHA-256 of the authorization code; the code itself is never stored.';
COMMENT ON COLUMN authorization_codes.component_account_id IS 'The component whose authorization it was: a code is looked up only for its own component.';
COMMENT ON COLUMN authorization_codes.recorded_at IS 'When wxhub exchanged or received the code; a code is answered for an hour after (WeChat''s lifetime of a code), and the workers prune older rows.';

-- +goose Down
DROP TABLE authorization_codes;
