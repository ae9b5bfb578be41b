-- The periodic purge finds what has expired through these, instead of reading whole tables
-- (`retention.rs` in the domain crate says what is kept and for how long).
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_revocation ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);
CREATE INDEX verification_codes_by_expiry ON verification_codes (expires_at);
CREATE INDEX sign_in_failures_by_last ON sign_in_failures (last_failure_at);
CREATE INDEX audit_by_time ON audit_events (pool_id, at);
