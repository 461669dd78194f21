//! The policy hook of the signup pipeline: every submission's name, then its HTML, goes through
//! the tenant's bound plugins in order. Any deny wins, and the reasons of every plugin that said
//! no are returned together. A plugin that fails (timeout, oom, crash, abi_error, bad_output)
//! denies with `policy_error` unless its binding says `on_error = "allow"`; either way the
//! failure is logged with the plugin's name and hash and counted, and nothing else is disturbed.
//!
//! One tenant's plugins cannot make the others wait: a hook holds at most
//! `plugins.max_bindings_per_hook` bindings, a submission's plugins share one time budget
//! (`plugins.submission_budget_ms`; the bindings it leaves unrun count as failed, class
//! `budget`), and a tenant's calls take at most `plugins.max_instances_per_tenant` of the
//! instance slots. A call keeps its slots until it really returns, even when the request that
//! started it is gone; evaluation itself stops with the request.
//!
//! Signups run on a host that does not count fuel; the test endpoint runs on a second host that
//! does (see [`Metering`]), with the same limits and the same instance slots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::adapters::db::{plugins, Db};
use crate::adapters::plugin_host::{
    CallReport, CompiledPlugin, LogLine, Metering, PluginError, PluginHost, PluginOutput,
    SettingsAnswer,
};
use crate::configuration::{OnError, PluginSettings, Settings};
use crate::domain::{EmailAddress, Hook, SiteName};
use crate::error::PolicyReason;
use crate::services::tenants::Tenant;

/// The reason code of a plugin that could not check a submission (fail closed).
pub const POLICY_ERROR: &str = "policy_error";

/// What the plugins see of the submission besides the value under test.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    pub name: &'a SiteName,
    pub email: &'a EmailAddress,
    pub plan: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; `rewrite` replaces the value (html hook, mutating plugins).
    Allow {
        rewrite: Option<String>,
    },
    Deny(Vec<PolicyReason>),
}

/// The outcome of one plugin call, for the admin test endpoint and the CLI: the figures a real
/// signup's call logs and counts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TestResult {
    /// `allow`, `deny`, or `error` when the call failed.
    pub verdict: String,
    pub reasons: Vec<crate::adapters::plugin_host::PluginReason>,
    pub rewrite: Option<String>,
    /// The failure class when `verdict` is `error`.
    pub error_class: Option<String>,
    /// What went wrong when `verdict` is `error`; for `env.abort`, the module's message with
    /// its file, line and column.
    pub error: Option<String>,
    /// From instantiation to the end of the call, in microseconds.
    pub duration_us: u64,
    /// WebAssembly fuel used (about one unit per instruction); `null` when the call trapped
    /// inside the module (timeout, oom, a trap), where the count is not exact.
    pub fuel: Option<u64>,
    /// What `berth_validate` logged.
    pub logs: Vec<LogLine>,
    /// What `berth_validate_settings` logged while the settings were checked.
    pub settings_logs: Vec<LogLine>,
}

/// Runs a tenant's policy bindings on the plugin host.
pub struct PolicyEngine {
    host: Arc<PluginHost>,
    /// The host the test endpoint runs on: the same limits, counting fuel. Built on the first
    /// test, so a service nobody tests plugins on keeps no second engine (nor its epoch thread).
    authoring: tokio::sync::OnceCell<Arc<PluginHost>>,
    db: Db,
    slots: Slots,
}

/// The instance slots: calls running at once, at most the host's `max_instances` overall and
/// `max_instances_per_tenant` for any one tenant.
struct Slots {
    all: Arc<Semaphore>,
    per_tenant: usize,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// The slots one call holds; dropped when the blocking call returns.
type Held = (OwnedSemaphorePermit, OwnedSemaphorePermit);

impl Slots {
    /// Waits for a slot of `tenant`'s share, then for one of all. Tenants are the configured
    /// ones, so the map stays small.
    async fn acquire(&self, tenant: &str) -> anyhow::Result<Held> {
        let share = self
            .tenants
            .lock()
            .expect("slots lock")
            .entry(tenant.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
            .clone();
        let own = share.acquire_owned().await?;
        let any = self.all.clone().acquire_owned().await?;
        Ok((own, any))
    }
}

/// The plugin time one submission may use across all its bindings and hooks.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    deadline: Instant,
}

impl Budget {
    pub fn new(total: Duration) -> Self {
        Self {
            deadline: Instant::now() + total,
        }
    }

    fn exhausted(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// The host-built context JSON of ABI v1.
pub fn context_json(
    hook: Hook,
    tenant: &str,
    plugin: &str,
    settings: &serde_json::Value,
    submission: &Submission<'_>,
) -> String {
    serde_json::json!({
        "abi": 1,
        "hook": hook.as_str(),
        "tenant": tenant,
        "plugin": plugin,
        "settings": settings,
        "submission": {
            "name": submission.name.as_str(),
            "email": submission.email.as_str(),
            "plan": submission.plan,
        },
    })
    .to_string()
}

impl PolicyEngine {
    /// The engine for `tenants` tenants (their number decides each one's share of the slots).
    pub fn new(settings: &PluginSettings, db: Db, tenants: usize) -> anyhow::Result<Self> {
        let slots = Slots {
            all: Arc::new(Semaphore::new(settings.max_instances as usize)),
            per_tenant: settings.instances_per_tenant(tenants) as usize,
            tenants: Mutex::new(HashMap::new()),
        };
        Ok(Self {
            host: Arc::new(PluginHost::new(settings, Metering::DeadlineOnly)?),
            authoring: tokio::sync::OnceCell::new(),
            db,
            slots,
        })
    }

    /// The time budget of one submission that starts now.
    pub fn budget(&self) -> Budget {
        Budget::new(Duration::from_millis(
            self.host.settings().submission_budget_ms,
        ))
    }

    pub fn host(&self) -> &Arc<PluginHost> {
        &self.host
    }

    /// Checks and compiles `tenant`'s module off the async executor; `Err` inside is the reason
    /// it is refused, fit to show the operator.
    pub async fn load(
        &self,
        tenant: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Result<Arc<CompiledPlugin>, String>> {
        self.load_on(&self.host, tenant, bytes).await
    }

    async fn load_on(
        &self,
        host: &Arc<PluginHost>,
        tenant: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Result<Arc<CompiledPlugin>, String>> {
        // Checking a module instantiates it once (berth_abi_version): it takes a slot too.
        self.in_slot(host, tenant, move |host| host.load(&bytes))
            .await
    }

    /// The stored plugin `tenant/name`, compiled (`None` when there is none).
    pub async fn stored(
        &self,
        tenant: &str,
        name: &str,
    ) -> anyhow::Result<Option<Arc<CompiledPlugin>>> {
        self.stored_on(&self.host, tenant, name).await
    }

    async fn stored_on(
        &self,
        host: &Arc<PluginHost>,
        tenant: &str,
        name: &str,
    ) -> anyhow::Result<Option<Arc<CompiledPlugin>>> {
        let (t, n) = (tenant.to_owned(), name.to_owned());
        let Some((hash, module)) = self.db.run(move |c| plugins::module(c, &t, &n)).await? else {
            return Ok(None);
        };
        if let Some(plugin) = host.cached(&hash) {
            return Ok(Some(plugin));
        }
        let plugin = self
            .load_on(host, tenant, module)
            .await?
            .map_err(|reason| anyhow::anyhow!("stored plugin {name} no longer loads: {reason}"))?;
        Ok(Some(plugin))
    }

    /// The compiled plugin `tenant/name` at `hash`, compiling it from the database when it is
    /// not cached yet.
    async fn compiled(
        &self,
        tenant: &str,
        name: &str,
        hash: &str,
    ) -> anyhow::Result<Arc<CompiledPlugin>> {
        if let Some(plugin) = self.host.cached(hash) {
            return Ok(plugin);
        }
        self.stored(tenant, name)
            .await?
            .with_context(|| format!("plugin {name} of tenant {tenant} is gone"))
    }

    /// Runs one call of `tenant`'s plugin on the blocking pool, in one of the tenant's slots.
    /// With `labels`, the call is counted (`berth_plugin_calls_total`) as it ends, before its
    /// slots are given back, even when nobody awaits it any more.
    async fn call(
        &self,
        tenant: &str,
        labels: Option<Labels>,
        plugin: Arc<CompiledPlugin>,
        context: String,
        value: String,
    ) -> anyhow::Result<Result<CallReport<PluginOutput>, (PluginError, CallReport<()>)>> {
        let held = self.slots.acquire(tenant).await?;
        let host = self.host.clone();
        Ok(tokio::task::spawn_blocking(move || {
            let result = host.validate(&plugin, &context, &value);
            if let Some(labels) = &labels {
                let (outcome, duration) = match &result {
                    Ok(report) if report.result.denies() => ("deny", report.duration),
                    Ok(report) => ("allow", report.duration),
                    Err((error, report)) => (error.class(), report.duration),
                };
                record(labels, outcome, duration);
            }
            drop(held);
            result
        })
        .await?)
    }

    /// Runs the tenant's bindings for `hook` on `value`, in order, within `budget`.
    pub async fn check(
        &self,
        tenant: &Tenant,
        hook: Hook,
        value: &str,
        submission: &Submission<'_>,
        budget: &Budget,
    ) -> anyhow::Result<Verdict> {
        let (t, h) = (tenant.name.to_string(), hook.as_str());
        let bindings = self.db.run(move |c| plugins::active(c, &t, h)).await?;
        let t = tenant.name.as_str();
        let mut current = value.to_owned();
        let mut rewritten = false;
        let mut reasons = Vec::new();
        for binding in bindings {
            let labels = [
                ("tenant", tenant.name.to_string()),
                ("plugin", binding.plugin.clone()),
                ("hook", hook.as_str().to_owned()),
            ];
            if budget.exhausted() {
                record(&labels, "budget", Duration::ZERO);
                tracing::warn!(
                    tenant = %tenant.name,
                    plugin = %binding.plugin,
                    hook = hook.as_str(),
                    error.class = "budget",
                    on_error = %binding.on_error,
                    "policy plugin not run: the submission's plugin time budget is spent"
                );
                if binding.on_error != "allow" {
                    reasons.push(failed(&binding.plugin, "budget"));
                }
                continue;
            }
            let plugin = self
                .compiled(tenant.name.as_str(), &binding.plugin, &binding.hash)
                .await?;
            let settings: serde_json::Value =
                serde_json::from_str(&binding.settings).unwrap_or_default();
            let context = context_json(
                hook,
                tenant.name.as_str(),
                &binding.plugin,
                &settings,
                submission,
            );
            let result = self
                .call(
                    tenant.name.as_str(),
                    Some(labels),
                    plugin.clone(),
                    context,
                    current.clone(),
                )
                .await?;
            match result {
                Ok(report) => {
                    emit_logs(t, &binding.plugin, h, &report.logs, report.dropped_logs);
                    tracing::debug!(
                        tenant = t,
                        plugin = %binding.plugin,
                        hook = h,
                        verdict = %report.result.verdict,
                        duration_us = report.duration.as_micros() as u64,
                        "policy plugin called"
                    );
                    let output = report.result;
                    if output.denies() {
                        reasons.extend(output.reasons.into_iter().map(|r| PolicyReason {
                            plugin: binding.plugin.clone(),
                            code: r.code,
                            message: r.message,
                        }));
                    } else if let Some(rewrite) = output.rewrite {
                        if hook == Hook::Html && binding.mutating {
                            current = rewrite;
                            rewritten = true;
                        } else {
                            tracing::warn!(tenant = %tenant.name, plugin = %binding.plugin, "plugin returned a rewrite it may not make (only mutating html plugins may); ignored");
                        }
                    }
                }
                Err((error, report)) => {
                    emit_logs(t, &binding.plugin, h, &report.logs, report.dropped_logs);
                    let allow = binding.on_error == "allow";
                    tracing::warn!(
                        tenant = %tenant.name,
                        plugin = %binding.plugin,
                        plugin.hash = %plugin.info.hash,
                        hook = hook.as_str(),
                        error.class = error.class(),
                        error = %error,
                        duration_us = report.duration.as_micros() as u64,
                        on_error = %binding.on_error,
                        "policy plugin failed"
                    );
                    if !allow {
                        reasons.push(failed(&binding.plugin, error.class()));
                    }
                }
            }
        }
        if !reasons.is_empty() {
            return Ok(Verdict::Deny(reasons));
        }
        Ok(Verdict::Allow {
            rewrite: rewritten.then_some(current),
        })
    }

    /// Runs blocking work `f` with `tenant`'s stored plugin `name` as the test endpoint runs
    /// it: compiled on the host that counts fuel, in one of the tenant's instance slots. `None`
    /// when there is no such plugin.
    pub async fn with_authoring_host<T: Send + 'static>(
        &self,
        tenant: &str,
        name: &str,
        f: impl FnOnce(&PluginHost, &CompiledPlugin) -> T + Send + 'static,
    ) -> anyhow::Result<Option<T>> {
        let authoring = self
            .authoring
            .get_or_try_init(|| async {
                PluginHost::new(self.host.settings(), Metering::Fuel).map(Arc::new)
            })
            .await?;
        let Some(plugin) = self.stored_on(authoring, tenant, name).await? else {
            return Ok(None);
        };
        let result = self
            .in_slot(authoring, tenant, move |host| f(host, &plugin))
            .await?;
        Ok(Some(result))
    }

    /// Runs blocking plugin work `f` on the blocking pool, on `host`, in one of `tenant`'s
    /// instance slots.
    async fn in_slot<T: Send + 'static>(
        &self,
        host: &Arc<PluginHost>,
        tenant: &str,
        f: impl FnOnce(&PluginHost) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let held = self.slots.acquire(tenant).await?;
        let host = host.clone();
        Ok(tokio::task::spawn_blocking(move || {
            let _held = held;
            f(&host)
        })
        .await?)
    }

    /// Asks the plugin whether `settings` suit it (`berth_validate_settings`); `Err` names what is
    /// wrong. Plugins without the export accept any settings. What the plugin logs goes to
    /// berth's log, tagged with the tenant and plugin, and into a refusal's message.
    pub async fn check_settings(
        &self,
        tenant: &str,
        plugin_name: &str,
        plugin: Arc<CompiledPlugin>,
        settings: &serde_json::Value,
    ) -> anyhow::Result<Result<(), String>> {
        if !plugin.info.validates_settings {
            return Ok(Ok(()));
        }
        let text = settings.to_string();
        let answer = self
            .in_slot(&self.host, tenant, move |host| {
                host.validate_settings(&plugin, &text)
            })
            .await?;
        let (verdict, logs) = settings_verdict(answer);
        emit_logs(tenant, plugin_name, "settings", &logs, 0);
        Ok(verdict)
    }

    /// Makes the stored plugins and bindings of every tenant that declares `policies` in the
    /// configuration match it: the configuration is the source of truth for those tenants.
    /// Every plugin is read, checked and its settings validated first; then all are stored in
    /// one transaction, so a refused plugin changes nothing (a reload keeps what runs).
    pub async fn apply_configured(&self, settings: &Settings) -> anyhow::Result<()> {
        let mut plugins_rows = Vec::new();
        let mut bindings = Vec::new();
        for tenant in settings.tenants.iter().filter(|t| !t.policies.is_empty()) {
            let mut rows = Vec::new();
            for (position, policy) in tenant.policies.iter().enumerate() {
                let bytes = crate::configuration::builtin_plugins::read(&policy.file).map_err(
                    |reason| {
                        anyhow::anyhow!(
                            "tenant {}: cannot read policy plugin {}: {reason}",
                            tenant.name,
                            policy.plugin
                        )
                    },
                )?;
                let plugin = self
                    .load(&tenant.name, bytes.clone())
                    .await?
                    .map_err(|reason| {
                        anyhow::anyhow!(
                            "tenant {}: plugin {} ({}) is refused: {reason}",
                            tenant.name,
                            policy.plugin,
                            policy.file
                        )
                    })?;
                if let Err(reason) = self
                    .check_settings(
                        &tenant.name,
                        &policy.plugin,
                        plugin.clone(),
                        &policy.settings,
                    )
                    .await?
                {
                    anyhow::bail!(
                        "tenant {}: settings of plugin {} are refused: {reason}",
                        tenant.name,
                        policy.plugin
                    );
                }
                plugins_rows.push(plugins::new_plugin(
                    &tenant.name,
                    &policy.plugin,
                    &plugin.info.hash,
                    bytes,
                    policy.mutating,
                    plugin.info.validates_settings,
                ));
                rows.push(plugins::BindingRow {
                    tenant: tenant.name.clone(),
                    position: position as i32,
                    plugin: policy.plugin.clone(),
                    hook: policy.hook.clone(),
                    settings: policy.settings.to_string(),
                    on_error: match policy.on_error {
                        OnError::Deny => "deny".into(),
                        OnError::Allow => "allow".into(),
                    },
                });
                tracing::info!(tenant = %tenant.name, plugin = %policy.plugin, hook = %policy.hook, plugin.hash = %plugin.info.hash, "policy plugin loaded from the configuration");
            }
            bindings.push((tenant.name.clone(), rows));
        }
        self.db
            .write(move |c| {
                for row in &plugins_rows {
                    plugins::put(c, row)?;
                }
                for (tenant, rows) in &bindings {
                    plugins::replace_bindings(c, tenant, rows)?;
                }
                Ok(())
            })
            .await
    }
}

/// The reason a binding that could not check the submission (failure `class`) denies it.
fn failed(plugin: &str, class: &str) -> PolicyReason {
    PolicyReason {
        plugin: plugin.to_owned(),
        code: POLICY_ERROR.into(),
        message: format!("the {plugin} policy could not check this submission ({class})"),
    }
}

/// What a `berth_validate_settings` call means for a binding: accepted, or refused with the
/// message an operator sees (the plugin's log lines appended); with the log lines either way.
pub fn settings_verdict(
    answer: Result<CallReport<SettingsAnswer>, (PluginError, CallReport<()>)>,
) -> (Result<(), String>, Vec<LogLine>) {
    let (verdict, logs) = match answer {
        Ok(report) => (
            match report.result {
                (true, _) => Ok(()),
                (false, message) => {
                    Err(message.unwrap_or_else(|| "the plugin refused these settings".into()))
                }
            },
            report.logs,
        ),
        Err((error, report)) => (
            Err(format!(
                "berth_validate_settings failed ({}): {error}",
                error.class()
            )),
            report.logs,
        ),
    };
    let verdict = verdict.map_err(|reason| {
        if logs.is_empty() {
            return reason;
        }
        let lines: Vec<String> = logs
            .iter()
            .map(|line| format!("{}: {}", line.level, line.message))
            .collect();
        format!("{reason} (the plugin logged: {})", lines.join("; "))
    });
    (verdict, logs)
}

/// One call's report as the test endpoint and `berth plugin run` show it.
pub fn test_result(
    result: Result<CallReport<PluginOutput>, (PluginError, CallReport<()>)>,
) -> TestResult {
    match result {
        Ok(report) => TestResult {
            verdict: report.result.verdict,
            reasons: report.result.reasons,
            rewrite: report.result.rewrite,
            error_class: None,
            error: None,
            duration_us: report.duration.as_micros() as u64,
            fuel: report.fuel,
            logs: report.logs,
            settings_logs: Vec::new(),
        },
        Err((error, report)) => TestResult {
            verdict: "error".into(),
            reasons: Vec::new(),
            rewrite: None,
            error_class: Some(error.class().into()),
            error: Some(error.to_string()),
            duration_us: report.duration.as_micros() as u64,
            fuel: report.fuel,
            logs: report.logs,
            settings_logs: Vec::new(),
        },
    }
}

/// The labels a plugin call is counted under: tenant, plugin, hook.
type Labels = [(&'static str, String); 3];

fn record(labels: &Labels, outcome: &'static str, duration: Duration) {
    let mut with_outcome = labels.to_vec();
    with_outcome.push(("outcome", outcome.to_owned()));
    metrics::counter!("berth_plugin_calls_total", &with_outcome).increment(1);
    metrics::histogram!("berth_plugin_call_duration_seconds", &labels[..])
        .record(duration.as_secs_f64());
}

/// Plugin log lines go to berth's log, tagged with tenant, plugin and the hook (or `settings`
/// for `berth_validate_settings`).
fn emit_logs(tenant: &str, plugin: &str, hook: &str, logs: &[LogLine], dropped: usize) {
    for line in logs {
        match line.level {
            "debug" => {
                tracing::debug!(tenant, plugin, hook, "plugin says: {}", line.message)
            }
            "warn" => {
                tracing::warn!(tenant, plugin, hook, "plugin says: {}", line.message)
            }
            "error" => {
                tracing::error!(tenant, plugin, hook, "plugin says: {}", line.message)
            }
            _ => tracing::info!(tenant, plugin, hook, "plugin says: {}", line.message),
        }
    }
    if dropped > 0 {
        tracing::warn!(
            tenant,
            plugin,
            hook,
            dropped,
            "plugin log lines dropped over the per-call budget"
        );
    }
}
