-- Plans with quotas, usage counters, and subscription billing through Stripe.
--
-- Every account is on a plan: `users.plan_id`, or the default plan when it is NULL (so the
-- admin can change which plan is the default without touching every account). A NULL limit is
-- no limit. Prices are in the currency's minor unit (cents), as Stripe has them.
CREATE TABLE plans (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL UNIQUE,
    messages_per_day   integer CHECK (messages_per_day >= 0),
    messages_per_month integer CHECK (messages_per_month >= 0),
    linked_numbers     integer CHECK (linked_numbers >= 0),
    api_keys           integer CHECK (api_keys >= 0),
    webhook_endpoints  integer CHECK (webhook_endpoints >= 0),
    price_amount       bigint NOT NULL DEFAULT 0 CHECK (price_amount >= 0),
    price_currency     text NOT NULL DEFAULT 'usd' CHECK (price_currency ~ '^[a-z]{3}$'),
    -- The Stripe Price a checkout for this plan subscribes to; NULL: not sold through Stripe.
    stripe_price_id    text UNIQUE,
    is_default         boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Exactly one default plan at a time (the application moves the flag in one transaction).
CREATE UNIQUE INDEX plans_one_default ON plans (is_default) WHERE is_default;

-- The free plan every account starts on: conservative quotas; admins edit them.
INSERT INTO plans (id, name, messages_per_day, messages_per_month, linked_numbers, api_keys,
                   webhook_endpoints, is_default)
VALUES ('00000000-0000-4000-8000-000000000001', 'free', 100, 1000, 1, 2, 2, true);

ALTER TABLE users ADD COLUMN plan_id uuid REFERENCES plans (id);
CREATE INDEX users_plan_idx ON users (plan_id);

-- Stripe's side of an account: its customer, subscription, and a pending downgrade after a
-- failed payment (`downgrade_at`: from then on the account is on the default plan, checked
-- on every read, so no sweep has to run on time).
CREATE TABLE billing_accounts (
    user_id                uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    stripe_customer_id     text NOT NULL UNIQUE,
    stripe_subscription_id text,
    subscription_status    text,
    payment_failed_at      timestamptz,
    downgrade_at           timestamptz,
    -- The `created` time of the newest Stripe event applied: older ones arriving late (Stripe
    -- does not order deliveries) do not undo newer ones.
    last_event_at          timestamptz,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- Every Stripe event processed, by id: a redelivered or replayed event is recognised and
-- changes nothing.
CREATE TABLE stripe_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    user_id     uuid,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- The plan each account is on now: its own, or the default one (none chosen, or a failed
-- payment's grace period is over).
CREATE VIEW effective_plans AS
SELECT u.id AS user_id,
       CASE WHEN u.plan_id IS NULL OR b.downgrade_at <= now()
            THEN (SELECT id FROM plans WHERE is_default)
            ELSE u.plan_id END AS plan_id
FROM users u LEFT JOIN billing_accounts b ON b.user_id = u.id;

-- Quota periods are UTC days and UTC calendar months, on the database's clock (one clock for
-- every node).
CREATE FUNCTION usage_day() RETURNS date LANGUAGE sql STABLE AS
$$ SELECT (now() AT TIME ZONE 'UTC')::date $$;
CREATE FUNCTION usage_month() RETURNS date LANGUAGE sql STABLE AS
$$ SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date $$;

-- Messages accepted per account in the current day and month, counted in the statement that
-- stores the message (a conditional upsert: the row lock makes concurrent sends, on any node,
-- take turns, so a quota is never exceeded).
CREATE TABLE plan_usage (
    user_id     uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    day         date NOT NULL,
    day_count   integer NOT NULL,
    month       date NOT NULL,
    month_count integer NOT NULL
);
