-- Policy plugins (WebAssembly modules, stored here so every replica runs the same ones) and
-- each tenant's ordered bindings of plugins to hooks.

CREATE TABLE plugins (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    -- sha256:<hex> of module; compiled code is cached per hash.
    hash TEXT NOT NULL,
    module BYTEA NOT NULL,
    size BIGINT NOT NULL,
    -- May rewrite the HTML it is given (html hook only).
    mutating BOOLEAN NOT NULL DEFAULT FALSE,
    validates_settings BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE policy_bindings (
    tenant TEXT NOT NULL,
    position INTEGER NOT NULL,
    plugin TEXT NOT NULL,
    -- name | html
    hook TEXT NOT NULL,
    -- JSON object handed to the plugin as ctx.settings.
    settings TEXT NOT NULL,
    -- deny | allow: what a failing call means.
    on_error TEXT NOT NULL,
    PRIMARY KEY (tenant, position)
);
