//! `[jobs]`: the job queue's workers, retries, leases and retention.

use serde::{Deserialize, Serialize};

use super::error::{invalid, ConfigError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSettings {
    /// Jobs one process runs at once.
    pub concurrency: usize,
    /// First retry delay; doubles each attempt (with jitter) up to `max_delay_secs`.
    pub base_delay_secs: u64,
    pub max_delay_secs: u64,
    /// Attempts before a job is marked `failed`.
    pub max_attempts: i32,
    /// How long a claimed job stays owned without a heartbeat.
    pub lease_secs: u64,
    /// How often an idle worker looks for due jobs, in milliseconds.
    pub poll_interval_ms: u64,
    /// How long provisioning waits for a workload to become ready.
    pub ready_timeout_secs: u64,
    /// On shutdown, how long running jobs may take to finish before their leases are released.
    pub shutdown_grace_secs: u64,
    /// Succeeded jobs are deleted this long after they finished; failed jobs stay until an
    /// operator acts. 0 keeps them forever.
    pub retention_days: u64,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            concurrency: 64,
            base_delay_secs: 5,
            max_delay_secs: 6 * 3600,
            max_attempts: 12,
            lease_secs: 60,
            poll_interval_ms: 500,
            ready_timeout_secs: 300,
            shutdown_grace_secs: 20,
            retention_days: 7,
        }
    }
}

impl JobSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.concurrency == 0 {
            return Err(invalid("jobs.concurrency", "must be at least 1"));
        }
        if self.max_attempts < 1 {
            return Err(invalid("jobs.max_attempts", "must be at least 1"));
        }
        if self.lease_secs < 5 {
            return Err(invalid("jobs.lease_secs", "must be at least 5"));
        }
        Ok(())
    }
}
