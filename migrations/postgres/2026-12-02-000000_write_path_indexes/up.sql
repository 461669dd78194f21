-- Every index a row is in costs each insert (and each change of an indexed column) a page in the
-- commit. The outcome of a Stripe event changes once, when it is processed, and an index that
-- holds it moves an entry then. `stripe_events_processed` (outcome, processed_at) already
-- answers "by outcome", so `stripe_events_outcome` goes, and the subscription index loses its
-- outcome column (a subscription has a handful of events; the outcome is checked on the rows).
DROP INDEX stripe_events_outcome;
DROP INDEX stripe_events_subscription;
CREATE INDEX stripe_events_subscription ON stripe_events (tenant, subscription_id);
