DROP INDEX stripe_events_subscription;
CREATE INDEX stripe_events_subscription ON stripe_events (tenant, subscription_id, outcome);
CREATE INDEX stripe_events_outcome ON stripe_events (outcome, tenant);
