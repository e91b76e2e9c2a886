-- Tells every node when an account's right to its open connections may have changed: a new
-- token version (password change or reset, disable), a role change, enabling or disabling,
-- deletion. Nodes LISTEN on the channel and re-check the account's websockets at once; the
-- payload is the account id. A trigger, so that every writer — the HTTP API, `botwave admin`
-- on the command line, another node — is covered without knowing about it.
CREATE FUNCTION notify_account_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('botwave_account_changed', OLD.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_rights_changed
    AFTER UPDATE OF token_version, role, disabled_at ON users
    FOR EACH ROW
    WHEN (OLD.token_version IS DISTINCT FROM NEW.token_version
          OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.disabled_at IS DISTINCT FROM NEW.disabled_at)
    EXECUTE FUNCTION notify_account_changed();

CREATE TRIGGER users_deleted
    AFTER DELETE ON users
    FOR EACH ROW
    EXECUTE FUNCTION notify_account_changed();
