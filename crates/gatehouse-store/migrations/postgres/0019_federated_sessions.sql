-- The browser sessions a provider's sign-in started, with what ending them at the provider
-- needs: the provider, the subject (the SAML NameID as asserted, with its Format and the
-- IdP's SessionIndex) and the upstream ID token sealed with the master key. A row goes with
-- its session (purged, or its user deleted).
CREATE TABLE federated_sessions (
    pool_id          TEXT   NOT NULL,
    session_id       TEXT   NOT NULL,
    provider_name    TEXT   NOT NULL,
    subject          TEXT   NOT NULL,
    name_id_format   TEXT,
    session_index    TEXT,
    sealed_id_token  BYTEA,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (pool_id, session_id),
    FOREIGN KEY (pool_id, session_id) REFERENCES sessions (pool_id, id) ON DELETE CASCADE
);
-- An identity provider's logout names its subject.
CREATE INDEX federated_sessions_by_subject
    ON federated_sessions (pool_id, provider_name, subject);
