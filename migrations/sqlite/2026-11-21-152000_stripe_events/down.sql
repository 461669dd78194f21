DROP INDEX sites_stripe_subscription;
ALTER TABLE sites DROP COLUMN suspended_for;
ALTER TABLE sites DROP COLUMN payment_overdue_since;
ALTER TABLE sites DROP COLUMN stripe_event_at;
DROP TABLE stripe_events;
