-- Each pool's security event horizon: the highest `seq` the purge deleted. A feed reader whose
-- cursor is below it has missed events and must read the snapshot again (410 Gone).
CREATE TABLE security_event_horizons (
    pool_id  TEXT   NOT NULL PRIMARY KEY REFERENCES pools (id) ON DELETE CASCADE,
    seq      BIGINT NOT NULL
);
