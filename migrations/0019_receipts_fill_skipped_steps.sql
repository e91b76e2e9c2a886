-- A message is `sent` when WhatsApp acknowledges it, and its recipient's receipt can arrive
-- before that is recorded (the outbox records a batch's outcomes together). The receipt
-- proves the steps it skipped: `message.status` subscribers get each of them, in order
-- (sent, then delivered, then read), as they do when nothing overtakes anything.

CREATE FUNCTION botwave_message_status_event(m messages, status text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM botwave_webhook_event(m.user_id, 'message.status', 'message:' || m.id,
        jsonb_build_object(
            'message_id', m.id,
            'to', m.recipient,
            'status', status,
            'wa_message_id', m.wa_message_id,
            'error', m.error,
            'at', to_char(CASE status
                              WHEN 'sent' THEN m.sent_at
                              WHEN 'delivered' THEN m.delivered_at
                              WHEN 'read' THEN m.read_at
                              WHEN 'failed' THEN m.failed_at
                              ELSE m.updated_at END AT TIME ZONE 'UTC',
                          'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')));
END;
$$;

-- message.status: queued on insert, then every forward move (a requeue after a lost
-- connection, sending → queued, is not news, nor is the internal `sending`).
CREATE OR REPLACE FUNCTION messages_webhook_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    steps constant text[] := ARRAY['sent', 'delivered', 'read'];
    skipped_from integer;
BEGIN
    IF NEW.status = 'sending' OR (TG_OP = 'UPDATE' AND (NEW.status = OLD.status OR NEW.status = 'queued')) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.status IN ('delivered', 'read') THEN
        skipped_from := coalesce(array_position(steps, OLD.status), 0) + 1;
        FOR step IN skipped_from .. array_position(steps, NEW.status) - 1 LOOP
            PERFORM botwave_message_status_event(NEW, steps[step]);
        END LOOP;
    END IF;
    PERFORM botwave_message_status_event(NEW, NEW.status);
    RETURN NULL;
END;
$$;
