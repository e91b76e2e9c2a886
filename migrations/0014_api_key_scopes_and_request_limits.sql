-- API key scopes, and request rate limits: token buckets per API key and per user, kept in
-- the database so that every node of a cluster spends from the same buckets.

-- What a key may do. Keys made before scopes existed keep doing everything they could;
-- new keys always name theirs (the default is dropped below).
ALTER TABLE api_keys
    ADD COLUMN scopes text[] NOT NULL
        DEFAULT ARRAY['messages:send', 'messages:read', 'webhooks:manage', 'session:read'],
    -- The key's own rate, when its owner set one lower than the account's; NULL: only the
    -- account's bucket applies.
    ADD COLUMN requests_per_second double precision CHECK (requests_per_second > 0),
    ADD COLUMN burst integer CHECK (burst > 0),
    -- The key's bucket: tokens left at `bucket_refilled_at` (NULL: full).
    ADD COLUMN bucket_tokens double precision,
    ADD COLUMN bucket_refilled_at timestamptz,
    ADD CONSTRAINT api_keys_rate_complete CHECK ((requests_per_second IS NULL) = (burst IS NULL));
ALTER TABLE api_keys ALTER COLUMN scopes DROP DEFAULT;

-- The account's bucket, shared by all its keys (the rate is the node's `limits` config).
ALTER TABLE users
    ADD COLUMN request_tokens double precision,
    ADD COLUMN request_refilled_at timestamptz;
