-- OpenID Connect back-channel logout. A client may register where its logout tokens go and
-- whether it needs `sid` in them (0 = not required). Existing clients register none.
ALTER TABLE app_clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE app_clients ADD COLUMN backchannel_logout_session_required BIGINT NOT NULL DEFAULT 0;

-- How far each pool's security event log has been read for logout tokens: the worker takes
-- this row's lock (FOR UPDATE on PostgreSQL) in the transaction that records the deliveries
-- the events call for and moves it on, so each event is planned once across instances.
CREATE TABLE backchannel_logout_cursors (
    pool_id  TEXT   NOT NULL PRIMARY KEY REFERENCES pools (id) ON DELETE CASCADE,
    seq      BIGINT NOT NULL
);

-- One logout token to send to one client: its state (pending, delivered, rejected, retrying,
-- gave_up), the attempts made, the last answer's status, when to try next, and a lease: an
-- instance claims a due delivery by setting lease_id and lease_until in a short transaction,
-- sends it with no transaction open, then records the answer only while its lease stands.
CREATE TABLE backchannel_logout_deliveries (
    pool_id          TEXT   NOT NULL,
    id               TEXT   NOT NULL,
    client_id        TEXT   NOT NULL,
    event_seq        BIGINT NOT NULL,
    event_id         TEXT   NOT NULL,
    sub              TEXT   NOT NULL,
    sid              TEXT,
    uri              TEXT   NOT NULL,
    state            TEXT   NOT NULL,
    attempts         BIGINT NOT NULL,
    status           BIGINT,
    error            TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    next_attempt_at  BIGINT,
    lease_id         TEXT,
    lease_until      BIGINT,
    PRIMARY KEY (pool_id, id),
    FOREIGN KEY (pool_id, client_id) REFERENCES app_clients (pool_id, client_id) ON DELETE CASCADE
);
CREATE INDEX backchannel_logout_due ON backchannel_logout_deliveries (pool_id, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX backchannel_logout_by_client ON backchannel_logout_deliveries (pool_id, client_id, created_at);
