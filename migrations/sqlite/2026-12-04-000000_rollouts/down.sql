DROP TABLE rollout_sites;
DROP TABLE rollouts;
DROP INDEX sites_unpinned;
ALTER TABLE sites DROP COLUMN target_spec;
ALTER TABLE sites DROP COLUMN applied_spec;
DROP TABLE workload_specs;
