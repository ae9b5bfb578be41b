-- Verification and reset codes: a wrong guess counts against the code (attempts) instead of
-- using it up; the code is kept sealed with the master key (sealed_code) so that a re-send to
-- the same address (destination) sends the same code rather than a new one. code_issuance
-- counts the codes sent per user and per address in a window, to limit both.
ALTER TABLE verification_codes ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE verification_codes ADD COLUMN destination TEXT NOT NULL DEFAULT '';
ALTER TABLE verification_codes ADD COLUMN sealed_code BYTEA;

CREATE TABLE code_issuance (
    pool_id       TEXT   NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    quota_key     TEXT   NOT NULL,
    window_start  BIGINT NOT NULL,
    issued        BIGINT NOT NULL,
    PRIMARY KEY (pool_id, quota_key)
);
