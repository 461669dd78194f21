ALTER TABLE sites ADD COLUMN html TEXT;
UPDATE sites SET html = (
    SELECT v.html FROM site_versions v
    WHERE v.site_id = sites.id AND v.number = COALESCE(sites.live_version, sites.target_version)
);
DROP TABLE server_keys;
ALTER TABLE sites DROP COLUMN paid_at;
ALTER TABLE sites DROP COLUMN manage_token_hash;
ALTER TABLE sites DROP COLUMN manage_token_nonce;
ALTER TABLE sites DROP COLUMN target_version;
ALTER TABLE sites DROP COLUMN live_version;
DROP TABLE site_versions;
