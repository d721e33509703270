-- +goose Up

-- A third-party platform (component) receives WeChat's pushes (component_verify_ticket,
-- authorization events) at wxhub's callback endpoint, signed with its callback token and
-- encrypted with its EncodingAESKey. Both are secrets: they are kept sealed by the key ring
-- like AppSecrets, as one JSON document (token, current key, previous key) so that a key
-- change replaces them together.
CREATE TABLE component_callbacks (
    tenant_id         bigint      NOT NULL,
    account_id        bigint      PRIMARY KEY,
    config_ciphertext bytea       NOT NULL,
    config_key_id     text        NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE CASCADE ON UPDATE CASCADE
);

COMMENT ON TABLE component_callbacks IS 'For each component account: its callback token and EncodingAESKeys (current and previous), sealed as one JSON document. Never plain text.';
COMMENT ON COLUMN component_callbacks.config_ciphertext IS 'AES-256-GCM ciphertext of {"token", "aes_key", "previous_aes_key"}: the callback token and the current and previous EncodingAESKey.';
COMMENT ON COLUMN component_callbacks.config_key_id IS 'Id of the key in WXHUB_KEYS that sealed config_ciphertext.';

-- A signed push is accepted once: its (timestamp, nonce) pair is recorded, and the same pair
-- again is a replay. Pushes older than the freshness window are refused on their timestamp,
-- so rows older than the window can be pruned.
CREATE TABLE callback_nonces (
    tenant_id  bigint      NOT NULL,
    account_id bigint      NOT NULL,
    timestamp  bigint      NOT NULL,
    nonce      text        NOT NULL,
    seen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, timestamp, nonce),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE INDEX callback_nonces_seen_at_idx ON callback_nonces (seen_at);

COMMENT ON COLUMN callback_nonces.timestamp IS 'The push''s timestamp query parameter (Unix seconds, as WeChat signed it).';
COMMENT ON COLUMN callback_nonces.nonce IS 'The push''s nonce query parameter.';
COMMENT ON COLUMN callback_nonces.seen_at IS 'When wxhub accepted the push; rows older than the freshness window are pruned by the workers.';
COMMENT ON TABLE callback_nonces IS 'The (timestamp, nonce) of every signed push accepted recently, so a replayed push is refused; pruned after the freshness window.';

-- +goose Down
DROP TABLE callback_nonces;
DROP TABLE component_callbacks;
