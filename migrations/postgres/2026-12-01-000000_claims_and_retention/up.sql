-- Claims read the due set in index order and stop at the batch size: (state, run_at, id) is the
-- claim order, so nothing sorts the due set however long the backlog.
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (state, run_at, id);
-- Retention: processed events are pruned oldest first.
CREATE INDEX stripe_events_processed ON stripe_events (outcome, processed_at);
