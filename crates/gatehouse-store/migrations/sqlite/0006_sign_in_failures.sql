-- Failed sign-ins per username of a pool (whether or not such a user exists), counted here so
-- that every instance sees the same count: the lockout policy reads it before a password is
-- checked, and each failure updates it in one atomic statement.
CREATE TABLE sign_in_failures (
    pool_id          TEXT   NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    username         TEXT   NOT NULL,
    failures         BIGINT NOT NULL,
    last_failure_at  BIGINT NOT NULL,
    locked_until     BIGINT,
    PRIMARY KEY (pool_id, username)
);
