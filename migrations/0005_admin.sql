-- Administration: the audit log, session history for analytics, the QR issue time, and the
-- indexes the admin analytics read.

-- One row per admin action. No foreign keys on purpose: the log outlives the accounts it
-- names, so it keeps their ids and emails as they were.
CREATE TABLE audit_log (
    id            bigserial PRIMARY KEY,          -- also the listing cursor: newest = highest
    at            timestamptz NOT NULL DEFAULT now(),
    actor_id      uuid NOT NULL,
    actor_email   text NOT NULL,
    action        text NOT NULL,                  -- e.g. user.disable, session.restart
    target_id     uuid,
    target_email  text,
    details       jsonb NOT NULL DEFAULT '{}'
);

-- When the current QR code was issued, so admins see how long a login has been waiting.
-- Kept by a trigger: whoever writes qr_code (the session actors) needs to know nothing of it.
ALTER TABLE wa_sessions ADD COLUMN qr_issued_at timestamptz;

-- Every state a session entered, and when: "sessions connected per day" needs history that
-- wa_sessions (current state only) does not keep. Also written by a trigger.
CREATE TABLE session_events (
    id       bigserial PRIMARY KEY,
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state    text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_events_user_idx ON session_events (user_id, at);
CREATE INDEX session_events_at_idx ON session_events (at);

CREATE FUNCTION wa_sessions_track_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.qr_code IS DISTINCT FROM OLD.qr_code THEN
        NEW.qr_issued_at := CASE WHEN NEW.qr_code IS NULL THEN NULL ELSE now() END;
    END IF;
    IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
        INSERT INTO session_events (user_id, state) VALUES (NEW.user_id, NEW.state);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER wa_sessions_track_changes
    BEFORE INSERT OR UPDATE ON wa_sessions
    FOR EACH ROW EXECUTE FUNCTION wa_sessions_track_changes();

-- Sessions connected before this migration start their history at connected_since.
INSERT INTO session_events (user_id, state, at)
SELECT user_id, state, coalesce(connected_since, updated_at) FROM wa_sessions;

-- Analytics scan messages by creation time across all users; the included columns let it
-- read only the index.
CREATE INDEX messages_created_idx ON messages (created_at)
    INCLUDE (user_id, source, status, sent_at, delivered_at);
