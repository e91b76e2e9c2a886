-- A cluster of nodes on one database: who is up, who runs which session, and the fence
-- that refuses a session's writes from any node but its current owner.

-- One row per node process (a restart is a new incarnation). Nodes heartbeat here; the
-- admin cluster page and the placement of sessions read it.
CREATE TABLE cluster_nodes (
    incarnation   uuid PRIMARY KEY,
    name          text NOT NULL,
    http_addr     text NOT NULL,
    cluster_addr  text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz,
    -- Set by an operator (`botwave cluster drain`) or by the node's own shutdown: it hands
    -- its sessions to the others and claims none.
    draining      boolean NOT NULL DEFAULT false
);
CREATE INDEX cluster_nodes_name_idx ON cluster_nodes (name);

-- One lease per session (keyed like the wa_* store tables, which may exist without a
-- wa_sessions row). A row is never deleted while its session exists: the epoch must keep
-- growing, or a stale owner could come back with an epoch that is valid again.
CREATE TABLE wa_leases (
    session_id   uuid PRIMARY KEY,
    owner        uuid NOT NULL,          -- cluster_nodes.incarnation
    epoch        bigint NOT NULL,        -- the fencing token: +1 on every acquisition
    expires_at   timestamptz NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX wa_leases_owner_idx ON wa_leases (owner);

-- The user's intent: the session should run (initialized or paired, not stopped, logged
-- out or given up on). Live nodes claim expired leases of these sessions.
ALTER TABLE wa_sessions ADD COLUMN wanted boolean NOT NULL DEFAULT false;
UPDATE wa_sessions s SET wanted = true
 WHERE EXISTS (SELECT 1 FROM wa_device d WHERE d.session_id = s.id AND d.pn IS NOT NULL);
-- Placeholders from before the cluster existed; wa_leases replaces them.
ALTER TABLE wa_sessions DROP COLUMN owner_node, DROP COLUMN lease_epoch, DROP COLUMN lease_expires_at;

CREATE FUNCTION wa_sessions_forget_lease() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM wa_leases WHERE session_id = OLD.id;
    RETURN OLD;
END;
$$;
CREATE TRIGGER wa_sessions_forget_lease AFTER DELETE ON wa_sessions
    FOR EACH ROW EXECUTE FUNCTION wa_sessions_forget_lease();

-- The fence. A writer names the lease it holds in the setting `botwave.fence` as
-- '<session_id>/<epoch>' (actors/src/lease.rs); a write is refused (SQLSTATE BW409)
-- unless that lease is the session's current, unexpired one. Rows removed inside another
-- trigger (a session deleted with its user, wa_sessions_forget_store) are not a
-- session's own write.
CREATE FUNCTION botwave_fence_holds(session uuid) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
DECLARE
    fence text := current_setting('botwave.fence', true);
BEGIN
    IF fence IS NULL OR fence = '' OR split_part(fence, '/', 1) <> session::text THEN
        RETURN false;
    END IF;
    RETURN EXISTS (
        SELECT 1 FROM wa_leases l
         WHERE l.session_id = session
           AND l.epoch = split_part(fence, '/', 2)::bigint
           AND l.expires_at > clock_timestamp());
END;
$$;

CREATE FUNCTION botwave_refuse_unfenced(session uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'write to WhatsApp session % without its current lease (fence %)',
        session, coalesce(current_setting('botwave.fence', true), 'none')
        USING ERRCODE = 'BW409';
END;
$$;

-- The WhatsApp store tables: every row carries session_id.
CREATE FUNCTION fence_store_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    session uuid;
BEGIN
    IF pg_trigger_depth() > 1 THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'DELETE' THEN session := OLD.session_id; ELSE session := NEW.session_id; END IF;
    IF NOT botwave_fence_holds(session) THEN
        PERFORM botwave_refuse_unfenced(session);
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$;

DO $$
DECLARE
    store_table text;
BEGIN
    FOREACH store_table IN ARRAY ARRAY[
        'wa_device', 'wa_identities', 'wa_signal_sessions', 'wa_prekeys', 'wa_signed_prekeys',
        'wa_sender_keys', 'wa_app_state_sync_keys', 'wa_app_state_versions',
        'wa_app_state_mutation_macs', 'wa_sender_key_devices', 'wa_lid_pn_mappings',
        'wa_base_keys', 'wa_device_lists', 'wa_group_metadata', 'wa_tc_tokens',
        'wa_sent_messages', 'wa_pending_inbound', 'wa_msg_secrets']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OR DELETE ON %I
                        FOR EACH ROW EXECUTE FUNCTION fence_store_write()',
                       store_table || '_fenced', store_table);
    END LOOP;
END;
$$;

-- The session's state as users see it. Only the state columns are fenced: creating the
-- row and the user's intent (`wanted`) are written by whichever node took the request.
CREATE FUNCTION fence_session_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT botwave_fence_holds(NEW.id) THEN
        PERFORM botwave_refuse_unfenced(NEW.id);
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER wa_sessions_fenced
    BEFORE UPDATE OF state, phone, push_name, connected_since, restart_count, last_error,
                     qr_code, qr_expires_at
    ON wa_sessions FOR EACH ROW EXECUTE FUNCTION fence_session_state();

-- The outbox: queuing is anyone's (the node that took the request), claiming and moving a
-- message along is its session owner's.
CREATE FUNCTION fence_message_progress() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    session uuid;
BEGIN
    SELECT s.id INTO session FROM wa_sessions s WHERE s.user_id = NEW.user_id;
    IF session IS NULL OR NOT botwave_fence_holds(session) THEN
        PERFORM botwave_refuse_unfenced(session);
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER messages_fenced
    BEFORE UPDATE OF status, wa_message_id, attempts, error, sent_at, delivered_at, read_at,
                     failed_at
    ON messages FOR EACH ROW EXECUTE FUNCTION fence_message_progress();
