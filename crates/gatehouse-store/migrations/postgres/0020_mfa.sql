-- A user's software token (TOTP): its secret sealed with the master key, when the first
-- valid code confirmed it (NULL while pending), and the last time step a code was accepted
-- at, which a code must exceed (a code is good once). One per user; it goes with its user.
CREATE TABLE totp_credentials (
    pool_id        TEXT   NOT NULL,
    user_id        TEXT   NOT NULL,
    sealed_secret  BYTEA  NOT NULL,
    confirmed_at   BIGINT,
    last_step      BIGINT,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (pool_id, user_id),
    FOREIGN KEY (pool_id, user_id) REFERENCES users (pool_id, id) ON DELETE CASCADE
);
-- A user's recovery codes, each by the SHA-256 (hex) of its canonical form; a code is
-- deleted when used.
CREATE TABLE recovery_codes (
    pool_id  TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    digest   TEXT NOT NULL,
    PRIMARY KEY (pool_id, user_id, digest),
    FOREIGN KEY (pool_id, user_id) REFERENCES users (pool_id, id) ON DELETE CASCADE
);
