//! What `berth serve` re-reads on `SIGHUP`: the configuration's source, the parts a reload
//! swaps ([`Live`]), and which keys only a restart changes ([`restart_only`]).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::{ConfigError, Settings};

/// Where the configuration comes from, to read it again: the file (if any) and the process
/// environment. Without a file berth runs the embedded default with the example policies.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub path: Option<PathBuf>,
}

impl Source {
    pub fn load(&self) -> Result<Settings, ConfigError> {
        let mut settings = Settings::load(self.path.as_deref())?;
        if self.path.is_none() {
            settings.attach_example_policies();
        }
        Ok(settings)
    }
}

/// A value a configuration reload replaces whole. A reader takes the current one with
/// [`Live::get`] and keeps it for what it is doing, so that one request or one job sees one
/// configuration from start to end.
pub struct Live<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Live<T> {
    pub fn new(value: Arc<T>) -> Self {
        Self(Arc::new(RwLock::new(value)))
    }

    pub fn get(&self) -> Arc<T> {
        // A panic while the lock was held cannot leave a half-written `Arc` behind.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, value: Arc<T>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = value;
    }
}

/// The keys whose change a running process cannot take (its listeners, its database, its
/// plugin engine, its worker's size, its logging, its Kubernetes client): those that differ
/// between `running` and `new`, by name. A reload keeps their running values.
pub fn restart_only(running: &Settings, new: &Settings) -> Vec<&'static str> {
    fn same<T: serde::Serialize>(a: &T, b: &T) -> bool {
        serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
    }
    let (r, n) = (running, new);
    let checks: [(&'static str, bool); 12] = [
        ("server.listen", r.server.listen == n.server.listen),
        (
            "server.sites_listen",
            r.server.sites_listen == n.server.sites_listen,
        ),
        (
            "server.body_timeout_secs",
            r.server.body_timeout_secs == n.server.body_timeout_secs,
        ),
        (
            "server.max_connections_per_ip",
            r.server.max_connections_per_ip == n.server.max_connections_per_ip,
        ),
        (
            "server.manage_key",
            r.server.manage_key == n.server.manage_key,
        ),
        (
            "database",
            r.database.url == n.database.url && same(&r.database, &n.database),
        ),
        ("plugins", same(&r.plugins, &n.plugins)),
        ("jobs.concurrency", r.jobs.concurrency == n.jobs.concurrency),
        // Leases already taken run on the old length; a shorter one would expire them early.
        ("jobs.lease_secs", r.jobs.lease_secs == n.jobs.lease_secs),
        ("log", same(&r.log, &n.log)),
        (
            "kubernetes.kubeconfig",
            r.kubernetes.kubeconfig == n.kubernetes.kubeconfig,
        ),
        (
            "kubernetes.context",
            r.kubernetes.context == n.kubernetes.context,
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, unchanged)| !unchanged)
        .map(|(key, _)| key)
        .collect()
}

/// `new` with the running values of the keys [`restart_only`] names.
pub fn keep_restart_only(running: &Settings, mut new: Settings) -> Settings {
    new.server.listen = running.server.listen;
    new.server.sites_listen = running.server.sites_listen;
    new.server.body_timeout_secs = running.server.body_timeout_secs;
    new.server.max_connections_per_ip = running.server.max_connections_per_ip;
    new.server.manage_key = running.server.manage_key.clone();
    new.database = running.database.clone();
    new.plugins = running.plugins.clone();
    new.jobs.concurrency = running.jobs.concurrency;
    new.jobs.lease_secs = running.jobs.lease_secs;
    new.log = running.log.clone();
    new.kubernetes.kubeconfig = running.kubernetes.kubeconfig.clone();
    new.kubernetes.context = running.kubernetes.context.clone();
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Secret;

    #[test]
    fn a_reload_names_and_keeps_the_keys_that_need_a_restart_and_takes_the_rest() {
        let running = Settings::default();
        let mut new = Settings::default();
        new.database.url = Secret::new("postgres://elsewhere/berth");
        new.server.listen = "127.0.0.1:9999".parse().unwrap();
        new.jobs.concurrency = 3;
        new.jobs.max_attempts = 2;
        new.tenants[0].base_domain = "other.test".into();
        assert_eq!(
            restart_only(&running, &new),
            ["server.listen", "database", "jobs.concurrency"]
        );
        let kept = keep_restart_only(&running, new);
        assert!(restart_only(&running, &kept).is_empty());
        assert_eq!(kept.database.url, running.database.url);
        assert_eq!(
            (kept.jobs.concurrency, kept.jobs.max_attempts),
            (running.jobs.concurrency, 2)
        );
        assert_eq!(kept.tenants[0].base_domain, "other.test");
    }

    #[test]
    fn readers_keep_the_value_they_took_while_a_reload_swaps_it() {
        let live = Live::new(Arc::new(1));
        let taken = live.get();
        live.set(Arc::new(2));
        assert_eq!((*taken, *live.get()), (1, 2));
    }
}
