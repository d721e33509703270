-- +goose Up

-- WeChat hands every authorization code out twice: in the authorized event it pushes to
-- wxhub, and on the merchant's browser, which it sends to the platform's redirect page. A code
-- buys a grant once (api_query_auth answers 61009 the second time), so whichever asks second
-- would fail. wxhub records the codes it exchanged, by their SHA-256 and never in clear, and
-- answers the second asker (the gateway's api_query_auth, POST .../authorizations) from the
-- account the code created. A code is dead at WeChat within the hour, so rows older than a
-- few hours are pruned by the workers.
CREATE TABLE authorization_codes (
    code_sha256          bytea       PRIMARY KEY CONSTRAINT authorization_codes_sha256 CHECK (length(code_sha256) = 32),
    tenant_id            bigint      NOT NULL,
    account_id           bigint      NOT NULL,
    component_account_id bigint      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    exchanged_at         timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE INDEX authorization_codes_exchanged_at_idx ON authorization_codes (exchanged_at);

COMMENT ON TABLE authorization_codes IS 'Authorization codes wxhub exchanged recently (their SHA-256), and the authorizer each created, so that the code asked for again is answered from wxhub''s records instead of WeChat''s 61009.';
COMMENT ON COLUMN authorization_codes.code_sha256 IS 'SHA-256 of the authorization code; the code itself is never stored.';
COMMENT ON COLUMN authorization_codes.component_account_id IS 'The component whose authorization it was: a code is looked up only for its own component.';
COMMENT ON COLUMN authorization_codes.exchanged_at IS 'When wxhub exchanged the code; the workers prune rows older than a few hours.';

-- +goose Down
DROP TABLE authorization_codes;
