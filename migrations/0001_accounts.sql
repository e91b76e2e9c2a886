-- Accounts: people who use the dashboard and the API, and their API keys.

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL UNIQUE,           -- stored lower-cased by the application
    password_hash  text NOT NULL,                  -- argon2id PHC string
    role           text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    -- Bumped whenever the password changes or the account is disabled, so older JWTs stop working.
    token_version  integer NOT NULL DEFAULT 0,
    disabled_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    prefix        text NOT NULL,                   -- first characters of the key, shown to tell keys apart
    key_hash      bytea NOT NULL UNIQUE,           -- SHA-256 of the whole key; the key itself is never stored
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at DESC);
