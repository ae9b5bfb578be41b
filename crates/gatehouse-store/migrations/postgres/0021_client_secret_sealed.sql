-- A client's secret sealed with the master key, bound to its pool and client id: Cognito's
-- API checks SECRET_HASH, an HMAC keyed with the secret itself, which its SHA-256 cannot
-- key. Clients created before this have none, and their SECRET_HASH is refused.
ALTER TABLE app_clients ADD COLUMN secret_sealed BYTEA;
