-- +goose Up

-- A value that rotates (a classic token, a ticket) dies once WeChat has issued its successor
-- and the overlap has passed. API nodes promise such a value to clients only until the
-- overlap after the earliest time wxhub may ask for a successor, and wxhub must never ask
-- earlier than that. These two columns make that contract explicit instead of deriving it
-- from refresh_at, which a claim moves forward by its lease.
ALTER TABLE credentials
    ADD COLUMN replace_not_before timestamptz,
    ADD COLUMN orphan_hold_until timestamptz;

UPDATE credentials SET replace_not_before = refresh_at;

COMMENT ON COLUMN credentials.replace_not_before IS 'wxhub asks WeChat for a replacement of the current value no earlier than this; API nodes promise a rotating value (classic token, ticket) only until this plus the overlap. Claims leave it alone; a requested refresh moves it to now and notifies the nodes.';
COMMENT ON COLUMN credentials.orphan_hold_until IS 'Set when a fetch may have been answered without wxhub seeing the answer (a claim whose worker vanished, a lost connection): WeChat may hold a newer value than the stored one, and the next fetch could kill the stored one at once. No fetch before this time, when the nodes have stopped promising the stored value. Cleared by a write.';
COMMENT ON COLUMN credentials.refresh_at IS 'When a worker should next claim the credential; a claim moves it forward by the claim lease, so a crashed worker''s claim comes due again. Never earlier than orphan_hold_until. NULL: not scheduled (a ticket waiting for the account''s first access token, a disabled account).';
COMMENT ON COLUMN credentials.claim_seq IS 'Incremented by every claim; a worker writes a value or records an outcome only while the sequence is still its own, so a worker whose lease was taken over changes nothing.';
COMMENT ON COLUMN credentials.generation IS 'Incremented by every write of a new value; writes are fenced on the generation and the claim the writer holds, so a stale refresher changes nothing.';

-- +goose Down
COMMENT ON COLUMN credentials.generation IS 'Incremented by every write of a new value; writes are fenced on the generation the writer read, so a stale refresher changes nothing.';
COMMENT ON COLUMN credentials.claim_seq IS 'Incremented by every claim; a worker records failures only while the sequence is still its own.';
COMMENT ON COLUMN credentials.refresh_at IS 'When a worker should next refresh the value; a claim moves it forward by the claim lease, so a crashed worker''s claim comes due again. NULL: not scheduled (a ticket waiting for the account''s first access token).';
ALTER TABLE credentials
    DROP COLUMN orphan_hold_until,
    DROP COLUMN replace_not_before;
