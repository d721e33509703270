-- +goose Up

-- An authorizer's context as WeChat reports it (api_get_authorizer_info): nickname, account
-- type, verification, principal name and the rest of authorizer_info. It is kept apart from
-- base_info, which app servers own and write, so that wxhub's daily refresh of what WeChat
-- says never overwrites theirs.
ALTER TABLE accounts
    ADD COLUMN wechat_info    jsonb NOT NULL DEFAULT '{}'
        CONSTRAINT accounts_wechat_info_object CHECK (jsonb_typeof(wechat_info) = 'object'),
    ADD COLUMN wechat_info_at timestamptz;

COMMENT ON COLUMN accounts.wechat_info IS 'For authorizers: authorizer_info as WeChat last reported it (nick_name, service_type_info, verify_type_info, principal_name, ...); wxhub writes it, app servers read it.';
COMMENT ON COLUMN accounts.wechat_info_at IS 'When wechat_info and authorization_info were last read from WeChat; the worker reads them again a day later.';

-- The worker's daily pass over authorizers walks this index: the oldest context first.
CREATE INDEX accounts_wechat_info_due ON accounts (wechat_info_at) WHERE kind = 'authorizer' AND status = 'active';

-- +goose Down
DROP INDEX accounts_wechat_info_due;
ALTER TABLE accounts DROP COLUMN wechat_info_at, DROP COLUMN wechat_info;
