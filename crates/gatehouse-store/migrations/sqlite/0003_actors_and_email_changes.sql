-- Sessions name their actor's pool, so that the end of an actor's authority (a staff pool
-- turning staff access off, a user disabled, a client deleted) finds the sessions it acts in.
ALTER TABLE sessions ADD COLUMN actor_pool TEXT;
UPDATE sessions SET actor_pool = json_extract(actor, '$.pool') WHERE actor IS NOT NULL;
CREATE INDEX sessions_by_actor ON sessions (actor_id) WHERE actor_id IS NOT NULL;

-- The address a changed e-mail replaced, and when: a password reset soon after a change also
-- notifies the previous address.
ALTER TABLE users ADD COLUMN previous_email TEXT;
ALTER TABLE users ADD COLUMN email_changed_at BIGINT;
