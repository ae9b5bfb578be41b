-- Each pool's security events (SSF/CAEP/RISC), appended by the transaction that revokes: the
-- log every transport delivers from. `seq` is the commit order per pool (SQLite has one writer
-- at a time, so the next value taken inside the writing transaction is the commit order).
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
