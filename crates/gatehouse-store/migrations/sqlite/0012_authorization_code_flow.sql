-- Browser sign-in: a browser's single sign-on session holds a cookie (its secret kept as
-- SHA-256); an application's authorization is a session started in it (parent_id), whose
-- access tokens name it and whose refresh tokens are its family.
ALTER TABLE sessions ADD COLUMN parent_id TEXT;
ALTER TABLE sessions ADD COLUMN secret_sha256 BLOB;
CREATE INDEX sessions_by_parent ON sessions (pool_id, parent_id) WHERE parent_id IS NOT NULL;

-- Authorization codes, single use: used_at is set by one compare-and-set; issued_session is
-- what the first exchange started, which a replay ends.
CREATE TABLE authorization_codes (
    pool_id          TEXT   NOT NULL,
    code_sha256      BLOB  NOT NULL,
    client_id        TEXT   NOT NULL,
    redirect_uri     TEXT   NOT NULL,
    user_id          TEXT   NOT NULL,
    browser_session  TEXT   NOT NULL,
    scopes           TEXT   NOT NULL,
    nonce            TEXT,
    code_challenge   TEXT,
    auth_time        BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    used_at          BIGINT,
    issued_session   TEXT,
    PRIMARY KEY (pool_id, code_sha256),
    FOREIGN KEY (pool_id, user_id) REFERENCES users (pool_id, id) ON DELETE CASCADE
);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);

-- Refresh tokens, single use; a family is the session they belong to.
CREATE TABLE refresh_tokens (
    pool_id       TEXT   NOT NULL,
    token_sha256  BLOB  NOT NULL,
    session_id    TEXT   NOT NULL,
    client_id     TEXT   NOT NULL,
    user_id       TEXT   NOT NULL,
    scopes        TEXT   NOT NULL,
    auth_time     BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT,
    PRIMARY KEY (pool_id, token_sha256),
    FOREIGN KEY (pool_id, user_id) REFERENCES users (pool_id, id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (pool_id, session_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
