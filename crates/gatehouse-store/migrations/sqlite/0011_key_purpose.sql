-- A pool has a family of signing keys per purpose: access tokens (the keys from before, in the
-- pool's configured algorithm) and OpenID Connect ID tokens (RS256). Each family rotates on
-- its own and has at most one current key.
ALTER TABLE signing_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'access';
CREATE UNIQUE INDEX signing_keys_one_current_per_purpose
    ON signing_keys (pool_id, purpose) WHERE state = 'current';
