-- WhatsApp sessions (one per user) and the message log, which is also the send outbox.

CREATE TABLE wa_sessions (
    -- Namespace of the session's device and Signal state (session_id in the wa_* store tables).
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    state            text NOT NULL DEFAULT 'idle'
                     CHECK (state IN ('idle', 'connecting', 'qr', 'connected', 'disconnected', 'failed')),
    phone            text,            -- linked phone number, digits only
    push_name        text,
    connected_since  timestamptz,
    restart_count    integer NOT NULL DEFAULT 0,
    last_error       text,
    qr_code          text,            -- the current QR string while state = 'qr'
    qr_expires_at    timestamptz,
    -- Ownership in a cluster: which node runs the session, fenced by epoch (used by the cluster work).
    owner_node       text,
    lease_epoch      bigint NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messages (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient        text NOT NULL,   -- phone number, digits only (E.164 without '+')
    body             text NOT NULL,
    source           text NOT NULL CHECK (source IN ('web', 'api')),
    api_key_id       uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    idempotency_key  text,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'read', 'failed')),
    wa_message_id    text,            -- WhatsApp's id, known from the moment the send is attempted
    error            text,            -- why it failed
    attempts         integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    delivered_at     timestamptz,
    read_at          timestamptz,
    failed_at        timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX messages_idempotency_idx ON messages (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The message log, newest first, with a stable cursor.
CREATE INDEX messages_log_idx ON messages (user_id, created_at DESC, id DESC);
-- The outbox: what a session still has to send, oldest first.
CREATE INDEX messages_outbox_idx ON messages (user_id, created_at) WHERE status IN ('queued', 'sending');
-- Receipts name messages by WhatsApp's id.
CREATE INDEX messages_wa_id_idx ON messages (wa_message_id) WHERE wa_message_id IS NOT NULL;
