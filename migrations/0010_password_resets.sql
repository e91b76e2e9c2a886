-- Password resets by email: one row per link sent. Only the SHA-256 of the link's token is
-- stored, so the table does not hand out working links to whoever reads it. A link works
-- once, until it expires; using one (or any password change) voids the account's others.
CREATE TABLE password_resets (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

-- How many links an account was sent lately (the per-account cap holds across nodes).
CREATE INDEX password_resets_by_user ON password_resets (user_id, created_at);
