-- +goose Up

-- Every tenant-owned table carries tenant_id so the schema can later be distributed by
-- tenant (Citus) without rewriting keys; foreign keys include tenant_id for the same reason
-- and so that a row can never point at another tenant's account.

CREATE TABLE tenants (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL UNIQUE
        CONSTRAINT tenants_name_format CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE tenants IS 'The domains that own WeChat accounts; API keys of role tenant are scoped to one.';
COMMENT ON COLUMN tenants.name IS 'Stable, human-chosen name used in the API (lowercase letters, digits, _ and -).';

CREATE TABLE accounts (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id            bigint      NOT NULL REFERENCES tenants (id),
    appid                text        NOT NULL UNIQUE
        CONSTRAINT accounts_appid_format CHECK (appid ~ '^[A-Za-z0-9_-]{1,64}$'),
    kind                 text        NOT NULL
        CONSTRAINT accounts_kind_valid CHECK (kind IN
            ('official_account', 'mini_program', 'wecom_app', 'component', 'authorizer')),
    status               text        NOT NULL DEFAULT 'active'
        CONSTRAINT accounts_status_valid CHECK (status IN
            ('active', 'disabled', 'failing', 'unauthorized')),
    corp_id              text,
    agent_id             bigint,
    component_account_id bigint,
    secret_ciphertext    bytea,
    secret_key_id        text,
    token_mode           text        NOT NULL DEFAULT 'stable'
        CONSTRAINT accounts_token_mode_valid CHECK (token_mode IN ('stable', 'classic')),
    tickets              text[]      NOT NULL DEFAULT '{}'
        CONSTRAINT accounts_tickets_valid CHECK (tickets <@ ARRAY['jsapi', 'wx_card', 'agent_config']),
    daily_limits         jsonb       NOT NULL DEFAULT '{}'
        CONSTRAINT accounts_daily_limits_object CHECK (jsonb_typeof(daily_limits) = 'object'),
    base_info            jsonb       NOT NULL DEFAULT '{}'
        CONSTRAINT accounts_base_info_object CHECK (jsonb_typeof(base_info) = 'object'),
    authorization_info   jsonb       NOT NULL DEFAULT '{}'
        CONSTRAINT accounts_authorization_info_object CHECK (jsonb_typeof(authorization_info) = 'object'),
    settings             jsonb       NOT NULL DEFAULT '{}'
        CONSTRAINT accounts_settings_object CHECK (jsonb_typeof(settings) = 'object'),
    settings_version     bigint      NOT NULL DEFAULT 1 CONSTRAINT accounts_settings_version_positive CHECK (settings_version > 0),
    status_reason        text        NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (corp_id, agent_id),
    FOREIGN KEY (tenant_id, component_account_id) REFERENCES accounts (tenant_id, id),
    CONSTRAINT accounts_secret_with_key CHECK ((secret_ciphertext IS NULL) = (secret_key_id IS NULL)),
    CONSTRAINT accounts_wecom_identity CHECK ((kind = 'wecom_app') = (corp_id IS NOT NULL AND agent_id IS NOT NULL)),
    CONSTRAINT accounts_authorizer_component CHECK ((kind = 'authorizer') = (component_account_id IS NOT NULL)),
    CONSTRAINT accounts_secret_required CHECK (kind = 'authorizer' OR secret_ciphertext IS NOT NULL)
);

COMMENT ON TABLE accounts IS 'One row per WeChat app wxhub keeps credentials for: official account, mini program, WeCom app, third-party platform (component) or an account that authorized a component (authorizer).';
COMMENT ON COLUMN accounts.appid IS 'The account''s key in the API: the WeChat appid, the component appid, or for a WeCom app an identifier chosen at creation (the pair corp_id, agent_id is what WeCom knows).';
COMMENT ON COLUMN accounts.kind IS 'official_account, mini_program, wecom_app, component or authorizer; decides which WeChat APIs refresh its credentials.';
COMMENT ON COLUMN accounts.status IS 'active: refreshed; disabled: by an operator, not refreshed; failing: WeChat rejects the configuration (see status_reason); unauthorized: the authorizer revoked the component.';
COMMENT ON COLUMN accounts.corp_id IS 'WeCom corp id (wecom_app only). WeCom tokens are per app, so corp_id alone never identifies a credential.';
COMMENT ON COLUMN accounts.agent_id IS 'WeCom agent id (wecom_app only).';
COMMENT ON COLUMN accounts.component_account_id IS 'For an authorizer: the component account whose token refreshes it.';
COMMENT ON COLUMN accounts.secret_ciphertext IS 'AES-256-GCM ciphertext of the AppSecret (corpsecret, component_appsecret), or of the authorizer refresh token for an authorizer. Never plain text.';
COMMENT ON COLUMN accounts.secret_key_id IS 'Id of the key in WXHUB_KEYS that encrypted secret_ciphertext; rotation re-encrypts rows whose id is not the current one.';
COMMENT ON COLUMN accounts.token_mode IS 'stable: cgi-bin/stable_token in normal mode (idempotent, preferred); classic: cgi-bin/token (every call kills the previous token after the overlap).';
COMMENT ON COLUMN accounts.tickets IS 'Which tickets wxhub keeps fresh for the account: jsapi, wx_card (official accounts), agent_config (WeCom).';
COMMENT ON COLUMN accounts.daily_limits IS 'Per-API daily call limits that override WeChat''s defaults, e.g. {"token": 200} for a test account.';
COMMENT ON COLUMN accounts.base_info IS 'Account base information as a JSON document (name, avatar, ...), owned by the app servers.';
COMMENT ON COLUMN accounts.authorization_info IS 'For authorizers: what the account granted (func_info) as WeChat reported it.';
COMMENT ON COLUMN accounts.settings IS 'Personalized settings as a JSON document; updated with optimistic concurrency on settings_version.';
COMMENT ON COLUMN accounts.settings_version IS 'Incremented on every settings change; the API exposes it as the ETag.';
COMMENT ON COLUMN accounts.status_reason IS 'Why the account is not active, in words (WeChat code and message for failing).';

CREATE TABLE credentials (
    tenant_id           bigint      NOT NULL,
    account_id          bigint      NOT NULL,
    kind                text        NOT NULL
        CONSTRAINT credentials_kind_valid CHECK (kind IN
            ('access_token', 'jsapi_ticket', 'wx_card_ticket', 'agent_config_ticket', 'verify_ticket')),
    value_ciphertext    bytea,
    value_key_id        text,
    value_fingerprint   text,
    expires_at          timestamptz,
    generation          bigint      NOT NULL DEFAULT 0 CONSTRAINT credentials_generation_nonnegative CHECK (generation >= 0),
    previous_ciphertext bytea,
    previous_key_id     text,
    previous_expires_at timestamptz,
    refresh_at          timestamptz DEFAULT now(),
    claimed_by          text,
    claimed_until       timestamptz,
    claim_seq           bigint      NOT NULL DEFAULT 0,
    refresh_requested_at timestamptz,
    last_request_at     timestamptz,
    attempts            integer     NOT NULL DEFAULT 0 CONSTRAINT credentials_attempts_nonnegative CHECK (attempts >= 0),
    last_error_code     integer,
    last_error_message  text,
    last_refreshed_at   timestamptz,
    PRIMARY KEY (account_id, kind),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT credentials_value_complete CHECK (
        (value_ciphertext IS NULL) = (value_key_id IS NULL)
        AND (value_ciphertext IS NULL) = (expires_at IS NULL)
        AND (value_ciphertext IS NULL) = (value_fingerprint IS NULL)
        AND (value_ciphertext IS NULL) = (generation = 0)),
    CONSTRAINT credentials_previous_complete CHECK (
        (previous_ciphertext IS NULL) = (previous_key_id IS NULL)
        AND (previous_ciphertext IS NULL) = (previous_expires_at IS NULL))
);

-- The claim query selects due rows ordered by refresh_at; this index matches it exactly.
CREATE INDEX credentials_refresh_at_idx ON credentials (refresh_at);

COMMENT ON TABLE credentials IS 'One row per account and credential kind: the current value (encrypted), its expiry and generation, the previous value while WeChat still accepts it, and the refresh schedule and state.';
COMMENT ON COLUMN credentials.kind IS 'access_token (also the component and authorizer tokens), jsapi_ticket, wx_card_ticket, agent_config_ticket, verify_ticket (the component_verify_ticket WeChat pushes).';
COMMENT ON COLUMN credentials.value_ciphertext IS 'AES-256-GCM ciphertext of the current value; NULL until the first successful fetch. A refresh never blanks it.';
COMMENT ON COLUMN credentials.value_fingerprint IS 'Short hash prefix of the plain value, so operators can match a token seen elsewhere without decrypting.';
COMMENT ON COLUMN credentials.expires_at IS 'When WeChat stops accepting the current value, from the expires_in WeChat returned.';
COMMENT ON COLUMN credentials.generation IS 'Incremented by every write of a new value; writes are fenced on the generation the writer read, so a stale refresher changes nothing.';
COMMENT ON COLUMN credentials.previous_ciphertext IS 'The value before the current one, kept while WeChat still accepts it (until previous_expires_at).';
COMMENT ON COLUMN credentials.refresh_at IS 'When a worker should next refresh the value; a claim moves it forward by the claim lease, so a crashed worker''s claim comes due again. NULL: not scheduled (a ticket waiting for the account''s first access token).';
COMMENT ON COLUMN credentials.claimed_by IS 'The worker that holds or last held the claim (for operators; correctness rests on generation and claim_seq).';
COMMENT ON COLUMN credentials.claimed_until IS 'End of the current claim''s lease; while it is in the future no other credential of the account is claimed, so one account is refreshed by one worker at a time.';
COMMENT ON COLUMN credentials.claim_seq IS 'Incremented by every claim; a worker records failures only while the sequence is still its own.';
COMMENT ON COLUMN credentials.last_request_at IS 'When an app server last caused a requested refresh; requests from app servers closer together than a minute are not honoured, so a misbehaving client cannot drain the quota.';
COMMENT ON COLUMN credentials.refresh_requested_at IS 'Set when an app server reported the current value rejected; the next refresh may use the quota reserve kept for such requests.';
COMMENT ON COLUMN credentials.attempts IS 'Consecutive failed refresh attempts; reset to 0 on success and used for backoff.';
COMMENT ON COLUMN credentials.last_error_code IS 'WeChat errcode of the last failed attempt (or a negative wxhub code for network errors); NULL after a success.';
COMMENT ON COLUMN credentials.last_error_message IS 'WeChat errmsg (or the network error) of the last failed attempt, without any secret.';

CREATE TABLE upstream_calls (
    tenant_id  bigint  NOT NULL,
    account_id bigint  NOT NULL,
    api        text    NOT NULL CONSTRAINT upstream_calls_api_format CHECK (api ~ '^[a-z_]{1,64}$'),
    day        date    NOT NULL,
    calls      integer NOT NULL DEFAULT 0 CONSTRAINT upstream_calls_calls_nonnegative CHECK (calls >= 0),
    daily_limit integer NOT NULL CONSTRAINT upstream_calls_daily_limit_nonnegative CHECK (daily_limit >= 0),
    PRIMARY KEY (account_id, api, day),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE CASCADE
);

COMMENT ON TABLE upstream_calls IS 'Quota ledger: how many calls wxhub made to one WeChat API for one account on one quota day.';
COMMENT ON COLUMN upstream_calls.api IS 'WeChat API name as wxhub counts it: token, stable_token, getticket, ...';
COMMENT ON COLUMN upstream_calls.day IS 'WeChat''s quota day: the calendar day in China time (UTC+8).';
COMMENT ON COLUMN upstream_calls.calls IS 'Calls counted before they were made, so a crash never under-counts.';
COMMENT ON COLUMN upstream_calls.daily_limit IS 'The limit wxhub enforced at the last count (WeChat''s limit, or the account''s override, minus the reserve).';

CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lookup       text        NOT NULL UNIQUE,
    hash         bytea       NOT NULL,
    name         text        NOT NULL CONSTRAINT api_keys_name_length CHECK (length(name) BETWEEN 1 AND 200),
    role         text        NOT NULL CONSTRAINT api_keys_role_valid CHECK (role IN ('admin', 'tenant')),
    tenant_id    bigint REFERENCES tenants (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    CONSTRAINT api_keys_tenant_scope CHECK ((role = 'admin') = (tenant_id IS NULL))
);

COMMENT ON TABLE api_keys IS 'API keys for the REST API. Only a hash of the secret part is stored; the key is shown once at creation.';
COMMENT ON COLUMN api_keys.lookup IS 'Non-secret part of the key used to find the row; the secret part is compared against hash in constant time.';
COMMENT ON COLUMN api_keys.hash IS 'SHA-256 of the whole key.';
COMMENT ON COLUMN api_keys.role IS 'admin: everything; tenant: credentials and settings of its tenant''s accounts only.';
COMMENT ON COLUMN api_keys.tenant_id IS 'The tenant a tenant key is scoped to; NULL for admin keys.';
COMMENT ON COLUMN api_keys.last_used_at IS 'Updated at most once a minute per key.';

CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_key_id bigint REFERENCES api_keys (id),
    tenant_id    bigint REFERENCES tenants (id),
    action       text        NOT NULL CONSTRAINT audit_log_action_format CHECK (action ~ '^[a-z_.]{1,64}$'),
    target       text        NOT NULL,
    outcome      text        NOT NULL CONSTRAINT audit_log_outcome_valid CHECK (outcome IN ('success', 'failure')),
    details      jsonb       NOT NULL DEFAULT '{}'
        CONSTRAINT audit_log_details_object CHECK (jsonb_typeof(details) = 'object')
);

CREATE INDEX audit_log_tenant_at_idx ON audit_log (tenant_id, at);

COMMENT ON TABLE audit_log IS 'Who changed what: accounts, secrets, settings, keys and forced refreshes. Never holds a secret.';
COMMENT ON COLUMN audit_log.actor_key_id IS 'The API key that acted; NULL for wxhub itself (bootstrap, workers).';
COMMENT ON COLUMN audit_log.action IS 'What was done, e.g. account.create, api_key.revoke, credential.force_refresh.';
COMMENT ON COLUMN audit_log.target IS 'What it was done to: an appid, a key id, a tenant name.';

-- +goose Down
DROP TABLE audit_log;
DROP TABLE api_keys;
DROP TABLE upstream_calls;
DROP TABLE credentials;
DROP TABLE accounts;
DROP TABLE tenants;
