-- +goose Up

-- The gateway knows whose call it forwards by the token the caller presents, which must be
-- one a gateway handed out. Values are stored encrypted under a random nonce and cannot be
-- searched, and an index on credentials that changes with every value would end the
-- heap-only updates of the refresh path; so each node records the tokens it hands out here
-- (by SHA-256, never in clear), and a node asked with a token it did not hand out itself
-- finds it here. An app's SDK that caches its token then works behind a load balancer that
-- spreads its calls over every node. Rows are pruned by the workers once the token expires.
CREATE TABLE gateway_tokens (
    token_sha256 bytea       PRIMARY KEY CONSTRAINT gateway_tokens_sha256 CHECK (length(token_sha256) = 32),
    tenant_id    bigint      NOT NULL,
    account_id   bigint      NOT NULL,
    valid_until  timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE INDEX gateway_tokens_valid_until_idx ON gateway_tokens (valid_until);
-- For the cascade when an account is deleted or moved.
CREATE INDEX gateway_tokens_account_idx ON gateway_tokens (tenant_id, account_id);

COMMENT ON TABLE gateway_tokens IS 'Access tokens the WeChat-compatible gateway handed out (their SHA-256) and whose they are, so that every node recognises a token any node handed out; pruned after the token expires.';
COMMENT ON COLUMN gateway_tokens.token_sha256 IS 'SHA-256 of the token; the token itself is never stored here.';
COMMENT ON COLUMN gateway_tokens.valid_until IS 'When the token expires at WeChat; the gateway stops accepting it then, and the workers prune the row.';

-- +goose Down
DROP TABLE gateway_tokens;
