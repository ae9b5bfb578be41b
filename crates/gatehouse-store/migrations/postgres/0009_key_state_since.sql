-- When a signing key took its state: a previous key stays published until the tokens it
-- signed have expired, counted from when it stopped signing. Keys from before have none and
-- count from their creation.
ALTER TABLE signing_keys ADD COLUMN state_since BIGINT;
