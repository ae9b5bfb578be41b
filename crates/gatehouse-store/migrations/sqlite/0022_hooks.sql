-- A pool's hooks, one per trigger: WebAssembly (the module as uploaded, what compiling it
-- made, sealed with the master key, and the engine build it was made for) or an HTTPS
-- webhook (its URL and its signing secret, sealed). They go with their pool.
CREATE TABLE hooks (
    pool_id          TEXT   NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    trigger_name     TEXT   NOT NULL,
    runtime          TEXT   NOT NULL,
    wasm_kind        TEXT,
    wasm_sha256      TEXT,
    wasm             BLOB,
    compatibility    TEXT,
    sealed_artifact  BLOB,
    url              TEXT,
    sealed_secret    BLOB,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (pool_id, trigger_name)
);
