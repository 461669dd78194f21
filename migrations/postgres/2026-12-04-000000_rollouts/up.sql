-- Fleet rollouts (SPEC §7). A workload spec is what a runtime applies for a site besides its
-- content (for Kubernetes: the image, port, environment, resources of the plan, ingress
-- settings), stored once per distinct value and named by the hex sha256 of its JSON.
CREATE TABLE workload_specs (
    sha256 TEXT PRIMARY KEY NOT NULL,
    tenant TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The spec a site runs (`applied_spec`, set when it was last ready) and the one its next job
-- applies (`target_spec`: the same, or a rollout's). NULL: a site from before rollouts, pinned
-- to the configuration's spec when berth starts, or one that has not been applied yet.
ALTER TABLE sites ADD COLUMN applied_spec TEXT;
ALTER TABLE sites ADD COLUMN target_spec TEXT;
-- berth pins the live sites from before rollouts to the configuration's spec when it starts,
-- finding them through this partial index: empty once done.
CREATE INDEX sites_unpinned ON sites (tenant)
    WHERE applied_spec IS NULL AND state IN ('ready', 'suspended');

-- One rollout moves a tenant's drifted live sites to the spec the configuration gives them, in
-- waves of at most `max_parallel` sites, and stops once `max_failures` sites failed.
-- state: running | paused | completed | stopped | cancelled
CREATE TABLE rollouts (
    id TEXT PRIMARY KEY NOT NULL,
    tenant TEXT NOT NULL,
    state TEXT NOT NULL,
    max_parallel INTEGER NOT NULL,
    max_failures INTEGER NOT NULL,
    -- The wave being applied (0 before the first).
    wave INTEGER NOT NULL,
    -- Bumped each time the rollout's driver job enqueues its successor; a driver job with an
    -- older tick stands down, so a retried driver never runs twice.
    tick BIGINT NOT NULL,
    -- Why it stopped, when it did.
    reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
-- At most one rollout of a tenant is under way.
CREATE UNIQUE INDEX rollouts_active ON rollouts (tenant) WHERE state IN ('running', 'paused');
CREATE INDEX rollouts_tenant ON rollouts (tenant, created_at);

-- The sites of a rollout, in the order they go (`position`: oldest site first).
-- state: pending | applying | done | failed | skipped
CREATE TABLE rollout_sites (
    rollout_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    from_spec TEXT,
    to_spec TEXT NOT NULL,
    state TEXT NOT NULL,
    wave INTEGER,
    error TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (rollout_id, site_id)
);
CREATE INDEX rollout_sites_state ON rollout_sites (rollout_id, state, position);
-- A site's deploy settles its row in the rollout under way.
CREATE INDEX rollout_sites_applying ON rollout_sites (site_id) WHERE state = 'applying';
