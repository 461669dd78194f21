-- Stripe webhook events and the payment state they leave on sites. Timestamps are Unix
-- milliseconds (UTC), Stripe's `created` included (its seconds × 1000).

-- Every verified delivery, stored raw before it is acknowledged. `(tenant, stripe_event_id)` is
-- unique: a redelivery of the same event stores nothing new.
CREATE TABLE stripe_events (
    id TEXT PRIMARY KEY NOT NULL,
    tenant TEXT NOT NULL,
    stripe_event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- Stripe's `created`: the order events apply in.
    created_at BIGINT NOT NULL,
    livemode BOOLEAN NOT NULL,
    api_version TEXT,
    -- `data.object.id` and the customer and subscription it names, read when it is received.
    object_id TEXT,
    customer_id TEXT,
    subscription_id TEXT,
    -- The body exactly as Stripe signed it.
    payload TEXT NOT NULL,
    -- received | applied | ignored | stale | deferred | rejected | invalid
    outcome TEXT NOT NULL,
    detail TEXT,
    -- The site the event was applied to (or created).
    site_id TEXT,
    received_at BIGINT NOT NULL,
    processed_at BIGINT
);

CREATE UNIQUE INDEX stripe_events_tenant_event ON stripe_events (tenant, stripe_event_id);
CREATE INDEX stripe_events_tenant_received ON stripe_events (tenant, received_at);
CREATE INDEX stripe_events_outcome ON stripe_events (outcome, tenant);
CREATE INDEX stripe_events_subscription ON stripe_events (tenant, subscription_id, outcome);
CREATE INDEX stripe_events_object ON stripe_events (tenant, object_id);

-- The `created` of the newest Stripe event applied to the site: older ones are stale.
ALTER TABLE sites ADD COLUMN stripe_event_at BIGINT;
-- When the subscription became past_due/unpaid; the site is suspended a grace period later.
ALTER TABLE sites ADD COLUMN payment_overdue_since BIGINT;
-- Why a suspended site is suspended: 'payment' (lifted when the customer pays) or NULL (an
-- operator's suspension, which payments never lift).
ALTER TABLE sites ADD COLUMN suspended_for TEXT;

CREATE INDEX sites_stripe_subscription ON sites (tenant, stripe_subscription_id);
