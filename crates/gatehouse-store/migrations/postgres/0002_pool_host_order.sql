-- A pool's first host names its issuer, so the order in which hosts were bound is kept.
-- Hosts bound before this column existed keep their old order (by name).
ALTER TABLE pool_hosts ADD COLUMN position BIGINT NOT NULL DEFAULT 0;
