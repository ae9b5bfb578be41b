-- The order in which revocations (and single-use claims) committed, per pool: validators keep
-- the revoked ids in memory and read only what is newer than the last `seq` they saw. Writers of
-- one pool take a transaction-scoped advisory lock before taking the next value, so values are
-- handed out in commit order and a reader past N never meets a smaller value committed later.
ALTER TABLE revoked_tokens ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE revoked_tokens r SET seq = o.n
  FROM (SELECT pool_id, jti, row_number() OVER (ORDER BY revoked_at, jti) AS n
        FROM revoked_tokens) o
 WHERE r.pool_id = o.pool_id AND r.jti = o.jti;
CREATE INDEX revoked_tokens_by_seq ON revoked_tokens (pool_id, seq);
