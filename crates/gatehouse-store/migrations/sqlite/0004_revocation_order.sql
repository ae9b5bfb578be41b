-- The order in which revocations (and single-use claims) committed, per pool: validators keep
-- the revoked ids in memory and read only what is newer than the last `seq` they saw. SQLite
-- has one writer at a time, so the next value taken inside the writing transaction is also the
-- commit order.
ALTER TABLE revoked_tokens ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE revoked_tokens SET seq = rowid;
CREATE INDEX revoked_tokens_by_seq ON revoked_tokens (pool_id, seq);
