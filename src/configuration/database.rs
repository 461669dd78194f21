//! `[database]`: the database berth keeps its state in (SQLite or PostgreSQL) and its pool.

use serde::{Deserialize, Serialize};

use super::error::{invalid, ConfigError};
use crate::domain::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://user:pass@host/db`.
    pub url: Secret,
    pub max_connections: u32,
    /// How long a SQLite writer waits for the lock before giving up, in milliseconds.
    pub busy_timeout_ms: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: Secret::new("sqlite://berth.db"),
            max_connections: 8,
            busy_timeout_ms: 10_000,
        }
    }
}

impl DatabaseSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let url = self.url.expose();
        if !(url.starts_with("sqlite://")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                "must start with sqlite://, postgres:// or postgresql://",
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        Ok(())
    }
}
