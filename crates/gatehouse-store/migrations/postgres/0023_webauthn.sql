-- A user's passkeys (WebAuthn credentials): the credential id (base64url, unique in the
-- pool: one authenticator's credential belongs to one user), the credential as webauthn-rs
-- serialises it (public key, algorithm, flags), the last signature counter accepted (an
-- assertion must exceed it unless both are zero), the backup flags, a name the user chose,
-- and when it was registered and last used. They go with their user.
CREATE TABLE webauthn_credentials (
    pool_id          TEXT   NOT NULL,
    user_id          TEXT   NOT NULL,
    credential_id    TEXT   NOT NULL,
    passkey          TEXT   NOT NULL,
    sign_count       BIGINT NOT NULL,
    backup_eligible  BIGINT NOT NULL,
    backup_state     BIGINT NOT NULL,
    name             TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    last_used_at     BIGINT,
    PRIMARY KEY (pool_id, credential_id),
    FOREIGN KEY (pool_id, user_id) REFERENCES users (pool_id, id) ON DELETE CASCADE
);
CREATE INDEX webauthn_credentials_by_user ON webauthn_credentials (pool_id, user_id);

-- WebAuthn ceremonies of a known user (a registration, a second factor) waiting for the
-- browser's answer: the state webauthn-rs needs to finish it, under the SHA-256 of its
-- challenge, for whom and what, until it expires (five minutes). Taken (deleted) by the transaction that finishes
-- it, so each is answered at most once; the purge deletes the expired ones.
CREATE TABLE webauthn_ceremonies (
    pool_id        TEXT   NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    handle_sha256  BYTEA  NOT NULL,
    purpose        TEXT   NOT NULL,
    user_id        TEXT   NOT NULL,
    state          TEXT   NOT NULL,
    expires_at     BIGINT NOT NULL,
    PRIMARY KEY (pool_id, handle_sha256)
);
CREATE INDEX webauthn_ceremonies_by_expiry ON webauthn_ceremonies (expires_at);
