-- What users allowed third-party app clients: one row per user and client, its scopes a JSON
-- list that grows as the user allows more. Deleting the user or the client deletes it.
CREATE TABLE consents (
    pool_id     TEXT   NOT NULL,
    user_id     TEXT   NOT NULL,
    client_id   TEXT   NOT NULL,
    scopes      TEXT   NOT NULL,
    granted_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (pool_id, user_id, client_id),
    FOREIGN KEY (pool_id, user_id) REFERENCES users (pool_id, id) ON DELETE CASCADE,
    FOREIGN KEY (pool_id, client_id) REFERENCES app_clients (pool_id, client_id) ON DELETE CASCADE
);
-- Deleting a client finds its consents without scanning every user's.
CREATE INDEX consents_by_client ON consents (pool_id, client_id);
