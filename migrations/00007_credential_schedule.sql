-- +goose Up

-- When each credential is next due moves to a table of its own. refresh_at is the one
-- column of a credential the claim's scan needs an index on, and an update that changes an
-- indexed column cannot be heap-only (HOT). Every write of a new value changes it, so while
-- it lived in credentials no write was HOT: each left a dead row version and a new entry in
-- both indexes. Apart, the credentials table has only its primary key, whose columns never
-- change, so claims and writes there are HOT; the narrow schedule row takes the index
-- update instead.
--
-- Lock order: a statement that changes a schedule row has locked, or is updating, the
-- credential's row first; the claim's scan, which locks both, skips rows locked by others
-- rather than waiting. So the two tables cannot deadlock each other.
CREATE TABLE credential_schedule (
    tenant_id  bigint      NOT NULL,
    account_id bigint      NOT NULL,
    kind       text        NOT NULL,
    refresh_at timestamptz,
    PRIMARY KEY (account_id, kind),
    FOREIGN KEY (account_id, kind) REFERENCES credentials (account_id, kind) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id) ON DELETE CASCADE ON UPDATE CASCADE
) WITH (fillfactor = 70);

CREATE INDEX credential_schedule_refresh_at_idx ON credential_schedule (refresh_at);

-- A claim writes a new version of each credential it takes, all in one transaction, so the
-- old versions cannot be pruned to make room before it commits: a page needs free space
-- for a new version of most of its rows. Half-full pages give it that.
ALTER TABLE credentials SET (fillfactor = 50);

INSERT INTO credential_schedule (tenant_id, account_id, kind, refresh_at)
SELECT tenant_id, account_id, kind, refresh_at FROM credentials;

COMMENT ON TABLE credential_schedule IS 'When each credential is next due, apart from the credential so that the frequent updates of credentials (claims, writes) are heap-only; one row per credentials row.';
COMMENT ON COLUMN credential_schedule.kind IS 'The credential''s kind, as in credentials.kind.';
COMMENT ON COLUMN credential_schedule.refresh_at IS 'When a worker should next claim the credential. Claims leave it alone and lease through credentials.claimed_until; a claim''s outcome sets it again, and a vanished worker''s claim comes due when its lease runs out. Never earlier than credentials.orphan_hold_until. NULL: not scheduled (a ticket waiting for the account''s first access token, a disabled account).';

DROP VIEW wxhub_credentials_due;
ALTER TABLE credentials DROP COLUMN refresh_at;

CREATE VIEW wxhub_credentials_due AS
SELECT a.appid, c.kind, s.refresh_at, now() - s.refresh_at AS overdue_by, c.expires_at,
       c.claimed_by, c.claimed_until, c.orphan_hold_until, c.attempts, c.last_error_code
FROM credential_schedule s
JOIN credentials c ON c.account_id = s.account_id AND c.kind = s.kind
JOIN accounts a ON a.id = s.account_id
WHERE s.refresh_at <= now();

COMMENT ON VIEW wxhub_credentials_due IS 'Credentials whose refresh is due now (claimed or not), oldest first when ordered by refresh_at; no secret or value columns.';

-- +goose Down
ALTER TABLE credentials SET (fillfactor = 70);
DROP VIEW wxhub_credentials_due;
ALTER TABLE credentials ADD COLUMN refresh_at timestamptz DEFAULT now();
UPDATE credentials c SET refresh_at = s.refresh_at
FROM credential_schedule s
WHERE s.account_id = c.account_id AND s.kind = c.kind;
CREATE INDEX credentials_refresh_at_idx ON credentials (refresh_at);
COMMENT ON COLUMN credentials.refresh_at IS 'When a worker should next claim the credential. Claims leave it alone (so they can be HOT updates) and lease through claimed_until; a claim''s outcome sets it again, and a vanished worker''s claim comes due when its lease runs out. Never earlier than orphan_hold_until. NULL: not scheduled (a ticket waiting for the account''s first access token, a disabled account).';
DROP TABLE credential_schedule;

CREATE VIEW wxhub_credentials_due AS
SELECT a.appid, c.kind, c.refresh_at, now() - c.refresh_at AS overdue_by, c.expires_at,
       c.claimed_by, c.claimed_until, c.orphan_hold_until, c.attempts, c.last_error_code
FROM credentials c
JOIN accounts a ON a.id = c.account_id
WHERE c.refresh_at <= now();

COMMENT ON VIEW wxhub_credentials_due IS 'Credentials whose refresh is due now (claimed or not), oldest first when ordered by refresh_at; no secret or value columns.';
