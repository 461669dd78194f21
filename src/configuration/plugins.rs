//! `[plugins]`: the limits of the WebAssembly policy sandbox.

use serde::{Deserialize, Serialize};

use super::error::{invalid, ConfigError};

/// Limits of the WebAssembly policy sandbox (SPEC §3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// Largest module accepted at upload, in bytes.
    pub max_module_bytes: usize,
    /// Linear memory one call may use, in bytes.
    pub memory_limit_bytes: usize,
    /// Deadline of one call (allocation, validation and output), in milliseconds.
    pub timeout_ms: u64,
    /// Largest output JSON a plugin may return, in bytes.
    pub max_output_bytes: usize,
    /// Log bytes one call may emit through `berth_v1.log`; the rest is dropped.
    pub max_log_bytes: usize,
    /// WebAssembly stack of one call, in bytes.
    pub stack_bytes: usize,
    /// Plugin instances that may run at once (slots of the pooling allocator).
    pub max_instances: u32,
    /// Of those, the most one tenant's calls may take at once, so that other tenants always
    /// find slots and CPU. 0: half the machine's CPUs (at least 1), or every slot when there is
    /// only one tenant (it has nobody to share with).
    pub max_instances_per_tenant: u32,
    /// Bindings one tenant may have on one hook.
    pub max_bindings_per_hook: usize,
    /// Plugin time one submission may use across all its bindings and hooks, in milliseconds;
    /// bindings left unrun when it is spent count as failed (class `budget`).
    pub submission_budget_ms: u64,
}

impl PluginSettings {
    /// The slots one of `tenants` tenants' calls may take: `max_instances_per_tenant`, or when
    /// it is 0 half the CPUs (every slot for a lone tenant); at least 1, at most `max_instances`.
    pub fn instances_per_tenant(&self, tenants: usize) -> u32 {
        let share = match self.max_instances_per_tenant {
            0 if tenants <= 1 => self.max_instances,
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32 / 2),
            n => n,
        };
        share.clamp(1, self.max_instances.max(1))
    }
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self {
            max_module_bytes: 4 * 1024 * 1024,
            memory_limit_bytes: 32 * 1024 * 1024,
            timeout_ms: 100,
            max_output_bytes: 64 * 1024,
            max_log_bytes: 4 * 1024,
            stack_bytes: 256 * 1024,
            max_instances: 32,
            max_instances_per_tenant: 0,
            max_bindings_per_hook: 16,
            submission_budget_ms: 1000,
        }
    }
}

impl PluginSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return Err(invalid("plugins.timeout_ms", "must be from 1 to 60000"));
        }
        if self.memory_limit_bytes < 64 * 1024 || self.memory_limit_bytes > 1 << 30 {
            return Err(invalid(
                "plugins.memory_limit_bytes",
                "must be from 65536 (one page) to 1 GiB",
            ));
        }
        if self.max_instances == 0 {
            return Err(invalid("plugins.max_instances", "must be at least 1"));
        }
        if self.max_instances_per_tenant > self.max_instances {
            return Err(invalid(
                "plugins.max_instances_per_tenant",
                "must be at most plugins.max_instances (0 = half the CPUs)",
            ));
        }
        if self.max_bindings_per_hook == 0 {
            return Err(invalid(
                "plugins.max_bindings_per_hook",
                "must be at least 1",
            ));
        }
        if self.submission_budget_ms < self.timeout_ms {
            return Err(invalid(
                "plugins.submission_budget_ms",
                "must be at least plugins.timeout_ms (one whole call)",
            ));
        }
        if self.stack_bytes < 16 * 1024 {
            return Err(invalid("plugins.stack_bytes", "must be at least 16384"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::tests::load;

    #[test]
    fn a_tenant_s_share_of_plugin_slots_is_half_the_cpus_unless_set() {
        let with = |per_tenant, max| PluginSettings {
            max_instances_per_tenant: per_tenant,
            max_instances: max,
            ..PluginSettings::default()
        };
        assert_eq!(with(3, 32).instances_per_tenant(2), 3);
        let cpus = std::thread::available_parallelism().unwrap().get() as u32;
        assert_eq!(with(0, 32).instances_per_tenant(2), (cpus / 2).clamp(1, 32));
        assert_eq!(
            with(0, 32).instances_per_tenant(1),
            32,
            "a lone tenant has nobody to share with"
        );
        assert_eq!(with(3, 32).instances_per_tenant(1), 3, "unless set");
        assert_eq!(
            with(0, 1).instances_per_tenant(2),
            1,
            "never more than all slots"
        );
        let err = load(
            "[plugins]\nmax_instances = 2\nmax_instances_per_tenant = 3\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("plugins.max_instances_per_tenant:"),
            "{err}"
        );
    }
}
