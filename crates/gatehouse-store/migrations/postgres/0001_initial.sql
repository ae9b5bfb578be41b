-- Gatehouse schema, PostgreSQL dialect. Keep in step with ../sqlite/0001_initial.sql.
-- Strings, UUIDs and JSON are TEXT; integers, booleans (0/1) and unix-second timestamps are
-- BIGINT; bytes are BYTEA. Every tenant table carries pool_id as the first column of its keys.
-- Usernames and group names use the "C" collation, so that they sort by bytes exactly as
-- SQLite's BINARY collation does and cursor paging is the same on both backends.

CREATE TABLE pools (
    id          TEXT   NOT NULL PRIMARY KEY,
    slug        TEXT   NOT NULL UNIQUE,
    settings    TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE pool_hosts (
    host        TEXT   NOT NULL PRIMARY KEY,
    pool_id     TEXT   NOT NULL REFERENCES pools (id) ON DELETE CASCADE
);
CREATE INDEX pool_hosts_by_pool ON pool_hosts (pool_id);

CREATE TABLE signing_keys (
    pool_id             TEXT   NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    kid                 TEXT   NOT NULL,
    alg                 TEXT   NOT NULL,
    state               TEXT   NOT NULL,
    sealed_private_key  BYTEA  NOT NULL,
    public_jwk          TEXT   NOT NULL,
    created_at          BIGINT NOT NULL,
    PRIMARY KEY (pool_id, kid)
);

CREATE TABLE users (
    pool_id                   TEXT   NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    id                        TEXT   NOT NULL,
    username                  TEXT   COLLATE "C" NOT NULL,
    enabled                   BIGINT NOT NULL,
    status                    TEXT   NOT NULL,
    attributes                TEXT   NOT NULL,
    contact_id                TEXT,
    password_phc              TEXT,
    password_temporary_until  BIGINT,
    tokens_not_before         BIGINT,
    mfa                       TEXT   NOT NULL,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    PRIMARY KEY (pool_id, id),
    UNIQUE (pool_id, username)
);

CREATE TABLE identity_links (
    pool_id           TEXT   NOT NULL,
    provider_name     TEXT   NOT NULL,
    provider_user_id  TEXT   NOT NULL,
    user_id           TEXT   NOT NULL,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (pool_id, provider_name, provider_user_id),
    FOREIGN KEY (pool_id, user_id) REFERENCES users (pool_id, id) ON DELETE CASCADE
);
CREATE INDEX identity_links_by_user ON identity_links (pool_id, user_id);

CREATE TABLE verification_codes (
    pool_id      TEXT   NOT NULL,
    user_id      TEXT   NOT NULL,
    attribute    TEXT   NOT NULL,
    code_sha256  BYTEA  NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (pool_id, user_id, attribute),
    FOREIGN KEY (pool_id, user_id) REFERENCES users (pool_id, id) ON DELETE CASCADE
);

CREATE TABLE groups (
    pool_id      TEXT   NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    name         TEXT   COLLATE "C" NOT NULL,
    description  TEXT   NOT NULL,
    roles        TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (pool_id, name)
);

CREATE TABLE group_members (
    pool_id     TEXT NOT NULL,
    group_name  TEXT COLLATE "C" NOT NULL,
    user_id     TEXT NOT NULL,
    PRIMARY KEY (pool_id, group_name, user_id),
    FOREIGN KEY (pool_id, group_name) REFERENCES groups (pool_id, name) ON DELETE CASCADE,
    FOREIGN KEY (pool_id, user_id) REFERENCES users (pool_id, id) ON DELETE CASCADE
);
CREATE INDEX group_members_by_user ON group_members (pool_id, user_id);

CREATE TABLE app_clients (
    pool_id        TEXT   NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    client_id      TEXT   NOT NULL,
    name           TEXT   NOT NULL,
    secret_sha256  BYTEA,
    scopes         TEXT   NOT NULL,
    grant_types    TEXT   NOT NULL,
    redirect_uris  TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (pool_id, client_id)
);

CREATE TABLE sessions (
    pool_id      TEXT   NOT NULL,
    id           TEXT   NOT NULL,
    user_id      TEXT   NOT NULL,
    username     TEXT   COLLATE "C" NOT NULL,
    client_id    TEXT,
    kind         TEXT   NOT NULL,
    actor        TEXT,
    actor_id     TEXT,
    reason       TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    PRIMARY KEY (pool_id, id),
    FOREIGN KEY (pool_id, user_id) REFERENCES users (pool_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_by_user ON sessions (pool_id, user_id);
CREATE INDEX sessions_impersonations ON sessions (pool_id, expires_at)
    WHERE kind = 'impersonation';

CREATE TABLE revoked_tokens (
    pool_id     TEXT   NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    jti         TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT NOT NULL,
    PRIMARY KEY (pool_id, jti)
);

-- Append-only; no foreign key to pools so that the record outlives what it describes.
CREATE TABLE audit_events (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT   NOT NULL UNIQUE,
    pool_id          TEXT   NOT NULL,
    at               BIGINT NOT NULL,
    action           TEXT   NOT NULL,
    outcome          TEXT   NOT NULL,
    actor            TEXT,
    actor_id         TEXT,
    subject          TEXT,
    client_id        TEXT,
    ip               TEXT,
    impersonator     TEXT,
    impersonator_id  TEXT,
    details          TEXT   NOT NULL
);
CREATE INDEX audit_by_pool ON audit_events (pool_id, seq);
CREATE INDEX audit_by_action ON audit_events (pool_id, action, seq);
CREATE INDEX audit_by_subject ON audit_events (pool_id, subject, seq);
CREATE INDEX audit_by_actor ON audit_events (pool_id, actor_id, seq);
CREATE INDEX audit_by_impersonator ON audit_events (pool_id, impersonator_id, seq)
    WHERE impersonator_id IS NOT NULL;
