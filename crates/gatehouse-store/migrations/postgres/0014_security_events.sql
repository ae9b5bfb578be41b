-- Each pool's security events (SSF/CAEP/RISC), appended by the transaction that revokes: the
-- log every transport delivers from. `seq` is the commit order per pool: writers of a pool take
-- the same transaction-scoped advisory lock as revocations before taking the next value, so
-- values are handed out in commit order and a reader past N never meets a smaller value
-- committed later (a sequence would hand them out before commit, in any order).
CREATE TABLE security_events (
    pool_id  TEXT   NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    seq      BIGINT NOT NULL,
    id       TEXT   NOT NULL,
    txn      TEXT   NOT NULL,
    kind     TEXT   NOT NULL,
    subject  TEXT   NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (pool_id, seq),
    UNIQUE (pool_id, id)
);
CREATE INDEX security_events_by_time ON security_events (at);
