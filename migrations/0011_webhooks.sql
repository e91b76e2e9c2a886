-- Webhooks and inbound messages.
--
-- Events are written by triggers, inside the statement that makes the change they report:
-- a status write refused by the fence (or rolled back) leaves no event, and a committed one
-- always has its event. Each event is fanned out at once into one delivery row per endpoint
-- subscribed to it; workers on any node claim due deliveries with FOR UPDATE SKIP LOCKED
-- and a visibility timeout (`locked_until`), so each is attempted by one node at a time and
-- a node that dies mid-attempt only delays it until the lock runs out.

-- Texts (and other messages) received by a linked number. Written by the session's owner,
-- under its lease; WhatsApp may deliver one message more than once, hence the unique id.
CREATE TABLE inbound_messages (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    wa_message_id  text NOT NULL,
    sender         text NOT NULL,   -- phone number, digits only
    chat           text NOT NULL,   -- the chat's JID (the sender's own for a direct message)
    kind           text NOT NULL,   -- 'text', or the kind of a message shown as a placeholder
    body           text NOT NULL,
    sent_at        timestamptz NOT NULL,  -- WhatsApp's timestamp
    received_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX inbound_messages_wa_id_idx ON inbound_messages (user_id, wa_message_id);
CREATE INDEX inbound_messages_log_idx ON inbound_messages (user_id, received_at DESC, id DESC);

-- Recording one is the session owner's write, fenced like the outbox's progress.
CREATE TRIGGER inbound_messages_fenced BEFORE INSERT OR UPDATE ON inbound_messages
    FOR EACH ROW EXECUTE FUNCTION fence_message_progress();

CREATE TABLE webhook_endpoints (
    id                    uuid PRIMARY KEY,
    user_id               uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url                   text NOT NULL,
    description           text NOT NULL DEFAULT '',
    events                text[] NOT NULL,
    secret                text NOT NULL,
    -- Set when the endpoint failed too often in a row; nothing is attempted until the
    -- user resumes it (its events still queue up).
    paused_at             timestamptz,
    paused_reason         text,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_user_idx ON webhook_endpoints (user_id, created_at);

CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    -- Creation order: deliveries of one endpoint and one subject go out in this order.
    seq              bigserial NOT NULL,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    user_id          uuid NOT NULL,
    event_id         uuid NOT NULL,         -- the body's "id": the same on every attempt and replay
    event_type       text NOT NULL,
    -- What the event is about (a message, a session): the order of events is kept per subject.
    subject          text NOT NULL,
    body             text NOT NULL,         -- the exact JSON that is signed and sent
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    locked_until     timestamptz,
    locked_by        uuid,
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    dead_at          timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, seq)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (endpoint_id, subject, seq)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, state, seq DESC);

-- The last attempts of each endpoint, for the user to see what its receiver answered.
CREATE TABLE webhook_attempts (
    id           bigserial PRIMARY KEY,
    endpoint_id  uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    delivery_id  uuid,                    -- NULL for a test ping
    event_id     uuid,
    event_type   text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    status_code  integer,
    latency_ms   integer NOT NULL,
    error        text
);
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, id DESC);

-- One event of `user`: one delivery per endpoint of the user subscribed to `type`.
CREATE FUNCTION botwave_webhook_event(owner uuid, type text, subject text, data jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    event uuid := gen_random_uuid();
    created text := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
BEGIN
    INSERT INTO webhook_deliveries (id, endpoint_id, user_id, event_id, event_type, subject, body)
    SELECT gen_random_uuid(), e.id, owner, event, type, subject,
           jsonb_build_object('id', event, 'type', type, 'created_at', created, 'data', data)::text
      FROM webhook_endpoints e
     WHERE e.user_id = owner AND type = ANY (e.events)
     ORDER BY e.id;
    IF FOUND THEN
        PERFORM pg_notify('botwave_webhooks', '');
    END IF;
END;
$$;

-- message.status: queued on insert, then every forward move (a requeue after a lost
-- connection, sending → queued, is not news, nor is the internal `sending`).
CREATE FUNCTION messages_webhook_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'sending' OR (TG_OP = 'UPDATE' AND (NEW.status = OLD.status OR NEW.status = 'queued')) THEN
        RETURN NULL;
    END IF;
    PERFORM botwave_webhook_event(NEW.user_id, 'message.status', 'message:' || NEW.id,
        jsonb_build_object(
            'message_id', NEW.id,
            'to', NEW.recipient,
            'status', NEW.status,
            'wa_message_id', NEW.wa_message_id,
            'error', NEW.error,
            'at', to_char(CASE NEW.status
                              WHEN 'sent' THEN NEW.sent_at
                              WHEN 'delivered' THEN NEW.delivered_at
                              WHEN 'read' THEN NEW.read_at
                              WHEN 'failed' THEN NEW.failed_at
                              ELSE NEW.updated_at END AT TIME ZONE 'UTC',
                          'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')));
    RETURN NULL;
END;
$$;
CREATE TRIGGER messages_webhook_event AFTER INSERT OR UPDATE OF status ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_webhook_event();

-- session.state: every change of state, with why, and whether the phone logged it out.
CREATE FUNCTION wa_sessions_webhook_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IS NOT DISTINCT FROM OLD.state THEN
        RETURN NULL;
    END IF;
    PERFORM botwave_webhook_event(NEW.user_id, 'session.state', 'session:' || NEW.id,
        jsonb_build_object(
            'state', NEW.state,
            'previous_state', OLD.state,
            'phone', COALESCE(NEW.phone, OLD.phone),
            'reason', CASE WHEN NEW.state IN ('disconnected', 'failed', 'connecting')
                           THEN NEW.last_error END,
            'logged_out', NEW.state = 'disconnected' AND NEW.phone IS NULL AND OLD.phone IS NOT NULL,
            'at', to_char(NEW.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')));
    RETURN NULL;
END;
$$;
CREATE TRIGGER wa_sessions_webhook_event AFTER UPDATE OF state ON wa_sessions
    FOR EACH ROW EXECUTE FUNCTION wa_sessions_webhook_event();

-- message.received: once per stored message (a repeat from WhatsApp inserts nothing).
CREATE FUNCTION inbound_messages_webhook_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM botwave_webhook_event(NEW.user_id, 'message.received', 'inbound:' || NEW.id,
        jsonb_build_object(
            'message_id', NEW.id,
            'wa_message_id', NEW.wa_message_id,
            'from', NEW.sender,
            'chat', NEW.chat,
            'type', NEW.kind,
            'text', NEW.body,
            'sent_at', to_char(NEW.sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')));
    RETURN NULL;
END;
$$;
CREATE TRIGGER inbound_messages_webhook_event AFTER INSERT ON inbound_messages
    FOR EACH ROW EXECUTE FUNCTION inbound_messages_webhook_event();
