-- +goose Up

-- Most updates of a credential can be heap-only (HOT): PostgreSQL then writes no index entry
-- and the old version is pruned within its page. That needs two things. The update must not
-- change an indexed column: a claim now leaves refresh_at (indexed for the claim's scan)
-- alone and leases through claimed_until. And the page must have room for the new version:
-- pages are filled to 70 % (rows written from now on; VACUUM FULL or pg_repack applies it
-- to existing ones).
ALTER TABLE credentials SET (fillfactor = 70);

COMMENT ON COLUMN credentials.refresh_at IS 'When a worker should next claim the credential. Claims leave it alone (so they can be HOT updates) and lease through claimed_until; a claim''s outcome sets it again, and a vanished worker''s claim comes due when its lease runs out. Never earlier than orphan_hold_until. NULL: not scheduled (a ticket waiting for the account''s first access token, a disabled account).';
COMMENT ON COLUMN credentials.claimed_until IS 'End of the current claim''s lease: until then no other claim takes the credential, and no other credential of the account is claimed, so one account is refreshed by one worker at a time.';

-- +goose Down
COMMENT ON COLUMN credentials.claimed_until IS 'End of the current claim''s lease; while it is in the future no other credential of the account is claimed, so one account is refreshed by one worker at a time.';
COMMENT ON COLUMN credentials.refresh_at IS 'When a worker should next claim the credential; a claim moves it forward by the claim lease, so a crashed worker''s claim comes due again. Never earlier than orphan_hold_until. NULL: not scheduled (a ticket waiting for the account''s first access token, a disabled account).';
ALTER TABLE credentials RESET (fillfactor);
