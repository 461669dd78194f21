-- Every signup reads its tenant's bindings with each plugin's hash and `mutating` flag. SQLite
-- stores a row's columns in order, and `module` (hundreds of kilobytes) came before those
-- flags, so every such read walked the module's overflow pages. The module goes last: reading
-- any other column of a plugin never touches its bytes. (PostgreSQL keeps large values out of
-- line by itself; its table stays as it is.)
CREATE TABLE plugins_by_module_last (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    -- sha256:<hex> of module; compiled code is cached per hash.
    hash TEXT NOT NULL,
    size BIGINT NOT NULL,
    -- May rewrite the HTML it is given (html hook only).
    mutating BOOLEAN NOT NULL DEFAULT FALSE,
    validates_settings BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    module BLOB NOT NULL,
    PRIMARY KEY (tenant, name)
);
INSERT INTO plugins_by_module_last
    (tenant, name, hash, size, mutating, validates_settings, created_at, updated_at, module)
SELECT tenant, name, hash, size, mutating, validates_settings, created_at, updated_at, module
FROM plugins;
DROP TABLE plugins;
ALTER TABLE plugins_by_module_last RENAME TO plugins;
