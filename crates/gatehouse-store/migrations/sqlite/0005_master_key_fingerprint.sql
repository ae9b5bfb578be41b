-- Facts about the database itself. `master_key_fingerprint`: the fingerprint of the master key
-- its signing keys are sealed with, recorded by the first process that opens it; any process
-- that comes with another key refuses to start instead of sealing new keys with it.
CREATE TABLE gatehouse_meta (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
