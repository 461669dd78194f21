-- A site's content as numbered versions (SPEC §7). A site serves its `live_version`; an update
-- or a rollback sets `target_version`, the job that deploys it moves `live_version` when the
-- workload is ready, in one transaction, so a request sees one version or the next, never a mix.
-- The HTML lives only here: `sites.html` goes.
CREATE TABLE site_versions (
    site_id TEXT NOT NULL,
    number BIGINT NOT NULL,
    -- Hex sha256 of the HTML's UTF-8 bytes (Kubernetes names the version's ConfigMap by it).
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    html TEXT NOT NULL,
    -- Who made it: customer | operator | payment.
    created_by TEXT NOT NULL,
    -- pending | live | failed | superseded
    state TEXT NOT NULL,
    -- Why it failed to deploy.
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (site_id, number)
);

-- Every stored HTML becomes version 1, live when the site has served it. berth fills in the
-- hashes when it starts (one code path for both databases), finding the rows through this
-- partial index: empty once done, so a start looks at no row.
INSERT INTO site_versions (site_id, number, sha256, size, html, created_by, state, created_at, updated_at)
SELECT id, 1, '', octet_length(html), html, 'customer',
       CASE WHEN state IN ('ready', 'suspended') THEN 'live' ELSE 'pending' END,
       created_at, updated_at
FROM sites WHERE html IS NOT NULL;
CREATE INDEX site_versions_unhashed ON site_versions (site_id) WHERE sha256 = '';

ALTER TABLE sites ADD COLUMN live_version BIGINT;
ALTER TABLE sites ADD COLUMN target_version BIGINT;
-- The site's manage token is an HMAC of its id and this nonce under berth's manage key; the row
-- keeps the nonce and the token's hex sha256, never the token.
ALTER TABLE sites ADD COLUMN manage_token_nonce TEXT;
ALTER TABLE sites ADD COLUMN manage_token_hash TEXT;
UPDATE sites SET target_version = 1,
                 live_version = CASE WHEN state IN ('ready', 'suspended') THEN 1 END
WHERE html IS NOT NULL;
ALTER TABLE sites DROP COLUMN html;

-- When a checkout for the site was paid: a paid checkout whose name was refused keeps its site
-- (rejected), and choosing another name provisions it at once.
ALTER TABLE sites ADD COLUMN paid_at BIGINT;

-- Keys berth makes for itself when the configuration gives none (the manage key, when
-- `server.manage_key` is not set), shared by every process on this database.
CREATE TABLE server_keys (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
