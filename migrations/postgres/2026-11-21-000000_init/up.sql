-- Sites, durable jobs and the email outbox. Timestamps are Unix milliseconds (UTC).

CREATE TABLE sites (
    id TEXT PRIMARY KEY NOT NULL,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    hostname TEXT NOT NULL,
    email TEXT NOT NULL,
    html TEXT,
    plan TEXT,
    state TEXT NOT NULL,
    -- What provisioning is doing right now, for the status page.
    step TEXT,
    -- Bumped by every outside action (signup, retry, suspend, resume, delete); jobs carry the
    -- version they were enqueued for and do nothing when it has moved on.
    version BIGINT NOT NULL DEFAULT 1,
    stripe_customer_id TEXT,
    stripe_subscription_id TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One live site per hostname; deleted and rejected sites free their name.
CREATE UNIQUE INDEX sites_hostname_live ON sites (hostname) WHERE state NOT IN ('deleted', 'rejected');
CREATE INDEX sites_tenant_state ON sites (tenant, state, created_at);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    site_id TEXT,
    -- queued | running | succeeded | failed
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX jobs_due ON jobs (state, run_at);
CREATE INDEX jobs_lease ON jobs (state, lease_expires_at);
CREATE INDEX jobs_site ON jobs (site_id);

-- One row per site and notice: the customer gets each notice once.
CREATE TABLE outbox (
    site_id TEXT NOT NULL,
    notice TEXT NOT NULL,
    message_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    PRIMARY KEY (site_id, notice)
);
