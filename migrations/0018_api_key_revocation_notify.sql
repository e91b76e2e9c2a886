-- A revoked (or deleted) API key ends what it opened, and one whose scopes change is checked
-- again: live feeds authenticated with it (`/ws`, `/socket.io/`) re-check it at once. Same channel and payload (the owner's account
-- id) as the account changes of 0006.
CREATE FUNCTION notify_api_key_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('botwave_account_changed', OLD.user_id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_keys_rights_changed
    AFTER UPDATE OF revoked_at, scopes ON api_keys
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.scopes IS DISTINCT FROM NEW.scopes)
    EXECUTE FUNCTION notify_api_key_changed();

CREATE TRIGGER api_keys_deleted
    AFTER DELETE ON api_keys
    FOR EACH ROW
    EXECUTE FUNCTION notify_api_key_changed();
