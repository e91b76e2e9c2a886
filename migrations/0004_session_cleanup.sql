-- A WhatsApp session's device and Signal state (the wa_* store tables, keyed by
-- session_id = wa_sessions.id) goes with its wa_sessions row, e.g. when the user is
-- deleted. A trigger rather than foreign keys: the store is also used, and tested, on
-- its own, with namespaces that have no wa_sessions row.

CREATE FUNCTION wa_sessions_forget_store() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM wa_device              WHERE session_id = OLD.id;
    DELETE FROM wa_identities          WHERE session_id = OLD.id;
    DELETE FROM wa_signal_sessions     WHERE session_id = OLD.id;
    DELETE FROM wa_prekeys             WHERE session_id = OLD.id;
    DELETE FROM wa_signed_prekeys      WHERE session_id = OLD.id;
    DELETE FROM wa_sender_keys         WHERE session_id = OLD.id;
    DELETE FROM wa_app_state_sync_keys WHERE session_id = OLD.id;
    DELETE FROM wa_app_state_versions  WHERE session_id = OLD.id;
    DELETE FROM wa_app_state_mutation_macs WHERE session_id = OLD.id;
    DELETE FROM wa_sender_key_devices  WHERE session_id = OLD.id;
    DELETE FROM wa_lid_pn_mappings     WHERE session_id = OLD.id;
    DELETE FROM wa_base_keys           WHERE session_id = OLD.id;
    DELETE FROM wa_device_lists        WHERE session_id = OLD.id;
    DELETE FROM wa_group_metadata      WHERE session_id = OLD.id;
    DELETE FROM wa_tc_tokens           WHERE session_id = OLD.id;
    DELETE FROM wa_sent_messages       WHERE session_id = OLD.id;
    DELETE FROM wa_pending_inbound     WHERE session_id = OLD.id;
    DELETE FROM wa_msg_secrets         WHERE session_id = OLD.id;
    RETURN OLD;
END;
$$;

CREATE TRIGGER wa_sessions_forget_store
    AFTER DELETE ON wa_sessions
    FOR EACH ROW EXECUTE FUNCTION wa_sessions_forget_store();
