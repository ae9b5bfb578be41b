-- SSF 1.0 streams: one per receiver (an app client of the pool). `position` is the number of
-- the pool's newest security event the stream has taken into its queue (events after it are
-- still to be fanned out); it only moves forward, by compare-and-set. `version` makes every
-- change of a stream a compare-and-set too. `lease_owner`/`lease_until` let one instance at a
-- time push a stream's queue.
CREATE TABLE ssf_streams (
    pool_id              TEXT   NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    id                   TEXT   NOT NULL,
    client_id            TEXT   NOT NULL,
    description          TEXT,
    events_requested     TEXT   NOT NULL,
    method               TEXT   NOT NULL,
    endpoint_url         TEXT,
    authorization_header TEXT,
    status               TEXT   NOT NULL,
    status_reason        TEXT,
    position             BIGINT NOT NULL,
    version              BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    last_verification_at BIGINT,
    lease_owner          TEXT,
    lease_until          BIGINT,
    PRIMARY KEY (pool_id, id),
    UNIQUE (pool_id, client_id),
    FOREIGN KEY (pool_id, client_id) REFERENCES app_clients (pool_id, client_id) ON DELETE CASCADE
);
-- Subjects removed from a stream (its default subjects are ALL): events about them are not
-- delivered to it. `key` is `user:<id>`, `session:<id>` or `tenant`.
CREATE TABLE ssf_excluded_subjects (
    pool_id   TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    key       TEXT NOT NULL,
    PRIMARY KEY (pool_id, stream_id, key),
    FOREIGN KEY (pool_id, stream_id) REFERENCES ssf_streams (pool_id, id) ON DELETE CASCADE
);
-- Each stream's SETs not yet acknowledged (poll) or accepted (push), in order `n`. A push that
-- failed transiently waits until `next_attempt_at`.
CREATE TABLE ssf_queue (
    pool_id         TEXT   NOT NULL,
    stream_id       TEXT   NOT NULL,
    n               BIGINT NOT NULL,
    jti             TEXT   NOT NULL,
    set_jwt         TEXT   NOT NULL,
    attempts        BIGINT NOT NULL,
    first_attempt_at BIGINT,
    next_attempt_at BIGINT NOT NULL,
    PRIMARY KEY (pool_id, stream_id, n),
    UNIQUE (pool_id, stream_id, jti),
    FOREIGN KEY (pool_id, stream_id) REFERENCES ssf_streams (pool_id, id) ON DELETE CASCADE
);
-- The last deliveries a receiver refused (400 with an `err`), or that were given up, and the
-- errors a poll receiver reported (`setErrs`): kept for the administrator, bounded per stream.
CREATE TABLE ssf_delivery_errors (
    pool_id     TEXT   NOT NULL,
    stream_id   TEXT   NOT NULL,
    jti         TEXT   NOT NULL,
    err         TEXT   NOT NULL,
    description TEXT,
    at          BIGINT NOT NULL,
    PRIMARY KEY (pool_id, stream_id, jti),
    FOREIGN KEY (pool_id, stream_id) REFERENCES ssf_streams (pool_id, id) ON DELETE CASCADE
);
