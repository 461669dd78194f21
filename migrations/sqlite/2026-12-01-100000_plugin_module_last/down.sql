CREATE TABLE plugins_module_first (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    module BLOB NOT NULL,
    size BIGINT NOT NULL,
    mutating BOOLEAN NOT NULL DEFAULT FALSE,
    validates_settings BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
INSERT INTO plugins_module_first
    (tenant, name, hash, module, size, mutating, validates_settings, created_at, updated_at)
SELECT tenant, name, hash, module, size, mutating, validates_settings, created_at, updated_at
FROM plugins;
DROP TABLE plugins;
ALTER TABLE plugins_module_first RENAME TO plugins;
