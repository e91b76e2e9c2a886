-- Per-number pacing (anti-ban): when a queued message is due, per-user pacing settings set by
-- admins, and when each number was linked (for the warm-up schedule).

-- When the session will send the message at the earliest (pacing, or WhatsApp's own
-- rate-overlimit answer); NULL: as soon as it can. Only ever a plan: the session decides
-- again when it is due.
ALTER TABLE messages ADD COLUMN not_before timestamptz;

-- An admin's pacing settings for one account, replacing the node's defaults as a whole.
-- No row: the defaults of the node's config (`[pacing]`). `updated_at` is how a running
-- session notices a change (the outbox claim returns it).
CREATE TABLE user_pacing (
    user_id        uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    enabled        boolean NOT NULL,
    min_gap_ms     integer NOT NULL CHECK (min_gap_ms >= 0),
    jitter_ms      integer NOT NULL CHECK (jitter_ms >= 0),
    -- 0: no cap.
    per_minute     integer NOT NULL CHECK (per_minute >= 0),
    per_hour       integer NOT NULL CHECK (per_hour >= 0),
    per_day        integer NOT NULL CHECK (per_day >= 0),
    -- Local times in `time_zone`; both or neither. A start after the end spans midnight.
    quiet_start    time,
    quiet_end      time,
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL)),
    -- An IANA zone name (checked by the node).
    time_zone      text NOT NULL,
    -- Daily caps for the first days after linking: element 1 is the day of linking.
    warmup_daily_caps integer[] NOT NULL DEFAULT '{}',
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- When the number now linked was linked: set when the phone number appears or changes,
-- cleared when it is forgotten. Numbers linked before this migration count as warmed up.
ALTER TABLE wa_sessions ADD COLUMN linked_at timestamptz;
UPDATE wa_sessions SET linked_at = created_at WHERE phone IS NOT NULL;

CREATE FUNCTION wa_sessions_linked_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.phone IS NULL THEN
        NEW.linked_at := NULL;
    ELSIF TG_OP = 'INSERT' OR OLD.phone IS DISTINCT FROM NEW.phone THEN
        NEW.linked_at := now();
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER wa_sessions_linked_at BEFORE INSERT OR UPDATE OF phone ON wa_sessions
    FOR EACH ROW EXECUTE FUNCTION wa_sessions_linked_at();
