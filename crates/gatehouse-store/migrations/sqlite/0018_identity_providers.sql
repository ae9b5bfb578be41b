-- A pool's upstream identity providers (SAML 2.0, OpenID Connect, OAuth 2.0 presets). The
-- protocol's settings and the attribute mapping are JSON; an OAuth client secret is sealed
-- with the master key (additional data: the pool and the provider's name).
CREATE TABLE identity_providers (
    pool_id            TEXT   NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    name               TEXT   NOT NULL,
    enabled            BIGINT NOT NULL,
    protocol           TEXT   NOT NULL,
    attribute_mapping  TEXT   NOT NULL,
    sealed_secret      BLOB,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (pool_id, name)
);

-- Sign-ins sent to a provider and not yet back, under the SHA-256 of their handle (the OAuth
-- state or the SAML request's ID); the callback deletes the row it finishes, so it finishes
-- once. Expired rows are purged.
CREATE TABLE pending_federations (
    pool_id        TEXT   NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    handle_sha256  BLOB   NOT NULL,
    provider_name  TEXT   NOT NULL,
    payload        TEXT   NOT NULL,
    expires_at     BIGINT NOT NULL,
    PRIMARY KEY (pool_id, handle_sha256)
);
CREATE INDEX pending_federations_by_expiry ON pending_federations (expires_at);

-- Each pool's SAML service-provider key (RSA, sealed with the master key) and the
-- self-signed certificate its metadata publishes.
CREATE TABLE saml_sp_keys (
    pool_id     TEXT   NOT NULL PRIMARY KEY REFERENCES pools (id) ON DELETE CASCADE,
    sealed_key  BLOB   NOT NULL,
    certificate BLOB   NOT NULL,
    created_at  BIGINT NOT NULL
);
