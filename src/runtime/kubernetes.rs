//! The `kubernetes` runtime: one hardened namespace per site, everything applied with
//! server-side apply under field manager `berth` (SPEC §2.4).
//!
//! - [`manifests`] builds a site's objects (pure, unit-tested);
//! - [`apply`] talks to the API server: apply, wait, delete;
//! - [`names`] gives deterministic names and labels.
//!
//! Every method is idempotent, so a job can retry it: applying the same objects again changes
//! nothing, suspending scales to zero whatever the current scale, resuming is applying again,
//! and deleting succeeds when the namespace is already gone. Errors that retrying cannot fix (an
//! invalid object, missing RBAC permission, an unknown plan) are [`Permanent`].

pub mod apply;
pub mod manifests;
pub mod names;
pub mod quantity;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::OnceCell;

use self::manifests::{Manifests, Scale, Template};
use super::{Runtime, SiteSpec};
use crate::configuration::{KubernetesSettings, TenantSettings};
use crate::jobs::Permanent;

/// The Kubernetes API client of every tenant that uses this runtime, built on first use: berth
/// starts even when the cluster (or its kubeconfig) is not reachable yet, and a job that needs
/// the client fails and retries until it is.
pub struct Connection {
    settings: KubernetesSettings,
    client: OnceCell<kube::Client>,
}

impl Connection {
    /// A connection built from `kubernetes.kubeconfig` and `kubernetes.context` on first use.
    pub fn lazy(settings: &KubernetesSettings) -> Self {
        Self {
            settings: settings.clone(),
            client: OnceCell::new(),
        }
    }

    /// A connection over an existing client (tests use a mock API server).
    pub fn with_client(settings: &KubernetesSettings, client: kube::Client) -> Self {
        Self {
            settings: settings.clone(),
            client: OnceCell::new_with(Some(client)),
        }
    }

    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        self.client
            .get_or_try_init(|| connect(&self.settings))
            .await
            .cloned()
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.request_timeout_secs)
    }
}

/// In-cluster (the pod's service account) when `kubeconfig` is empty, else that file and
/// context. Reads local files only; the first request is what reaches the cluster.
#[tracing::instrument(name = "kubernetes.connect", skip_all, fields(k8s.kubeconfig = %settings.kubeconfig, k8s.context = %settings.context))]
async fn connect(settings: &KubernetesSettings) -> anyhow::Result<kube::Client> {
    use anyhow::Context as _;
    let config = if settings.kubeconfig.is_empty() {
        kube::Config::incluster().context(
            "cannot use the in-cluster service account (set kubernetes.kubeconfig outside a cluster)",
        )?
    } else {
        let file = Kubeconfig::read_from(&settings.kubeconfig)
            .with_context(|| format!("cannot read kubeconfig {}", settings.kubeconfig))?;
        let options = KubeConfigOptions {
            context: (!settings.context.is_empty()).then(|| settings.context.clone()),
            ..KubeConfigOptions::default()
        };
        kube::Config::from_custom_kubeconfig(file, &options)
            .await
            .with_context(|| {
                format!(
                    "cannot use kubeconfig {} (context {:?})",
                    settings.kubeconfig, settings.context
                )
            })?
    };
    tracing::info!(k8s.server = %config.cluster_url, "Kubernetes client configured");
    Ok(kube::Client::try_from(config)?)
}

/// One tenant's sites on the cluster.
pub struct KubernetesRuntime {
    connection: Arc<Connection>,
    template: Template,
    /// The tenant sets no `dns.target`, so DNS points at the Ingress's load-balancer address.
    address_from_ingress: bool,
}

impl KubernetesRuntime {
    pub fn new(connection: Arc<Connection>, tenant: &TenantSettings) -> Self {
        Self {
            template: Template::new(&connection.settings, tenant),
            address_from_ingress: tenant.dns.target.is_empty(),
            connection,
        }
    }

    fn manifests(&self, site: &SiteSpec, scale: Scale) -> anyhow::Result<Manifests> {
        manifests::build(&self.template, site, scale).map_err(|e| {
            Permanent::new(format!(
                "cannot build the objects of site {}: {e}",
                site.name
            ))
            .into()
        })
    }
}

#[async_trait]
impl Runtime for KubernetesRuntime {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    #[tracing::instrument(name = "kubernetes.apply", skip_all, fields(tenant = %site.tenant, site.name = %site.name, k8s.namespace = %names::namespace(&site.tenant, &site.name)))]
    async fn apply(&self, site: &SiteSpec) -> anyhow::Result<()> {
        let started = Instant::now();
        let result = async {
            let manifests = self.manifests(site, Scale::Running)?;
            let client = self.connection.client().await?;
            let objects = manifests.objects();
            apply::apply_all(&client, &objects, self.connection.request_timeout()).await?;
            tracing::info!(
                objects = objects.len(),
                duration_ms = started.elapsed().as_millis() as u64,
                "applied the site's objects"
            );
            Ok(())
        }
        .await;
        record("apply", started, &result);
        result
    }

    #[tracing::instrument(name = "kubernetes.wait_ready", skip_all, fields(tenant = %site.tenant, site.name = %site.name, k8s.namespace = %names::namespace(&site.tenant, &site.name)))]
    async fn wait_ready(
        &self,
        site: &SiteSpec,
        timeout: Duration,
    ) -> anyhow::Result<Option<String>> {
        let started = Instant::now();
        let result = async {
            let client = self.connection.client().await?;
            let namespace = names::namespace(&site.tenant, &site.name);
            apply::wait_rollout(&client, &namespace, timeout).await?;
            let address = if self.address_from_ingress {
                let left = timeout.saturating_sub(started.elapsed());
                Some(apply::wait_ingress_address(&client, &namespace, left).await?)
            } else {
                None
            };
            tracing::info!(
                k8s.address = address.as_deref().unwrap_or(""),
                duration_ms = started.elapsed().as_millis() as u64,
                "site is serving"
            );
            Ok(address)
        }
        .await;
        record("ready", started, &result);
        result
    }

    #[tracing::instrument(name = "kubernetes.suspend", skip_all, fields(tenant = %site.tenant, site.name = %site.name, k8s.namespace = %names::namespace(&site.tenant, &site.name)))]
    async fn suspend(&self, site: &SiteSpec) -> anyhow::Result<()> {
        let started = Instant::now();
        let result = async {
            let manifests = self.manifests(site, Scale::Suspended)?;
            let client = self.connection.client().await?;
            let deployment = manifests::Object::of(&manifests.deployment);
            let timeout = self.connection.request_timeout();
            if apply::apply_if_namespace_exists(&client, &deployment, timeout).await? {
                tracing::info!("scaled the site to zero");
            } else {
                tracing::info!("the site's namespace does not exist; nothing to suspend");
            }
            Ok(())
        }
        .await;
        record("suspend", started, &result);
        result
    }

    #[tracing::instrument(name = "kubernetes.delete", skip_all, fields(tenant = %site.tenant, site.name = %site.name, k8s.namespace = %names::namespace(&site.tenant, &site.name)))]
    async fn delete(&self, site: &SiteSpec) -> anyhow::Result<()> {
        let started = Instant::now();
        let result = async {
            let client = self.connection.client().await?;
            let namespace = names::namespace(&site.tenant, &site.name);
            let settings = &self.connection.settings;
            apply::delete_namespace(
                &client,
                &namespace,
                self.connection.request_timeout(),
                Duration::from_secs(settings.delete_timeout_secs),
            )
            .await
        }
        .await;
        record("delete", started, &result);
        result
    }

    fn site_url(&self, hostname: &str) -> String {
        if self.template.kube.tls_issuer.is_empty() {
            format!("http://{hostname}/")
        } else {
            format!("https://{hostname}/")
        }
    }
}

/// `berth_kubernetes_operations_total{operation, outcome}` and the operation's duration.
fn record<T>(operation: &'static str, started: Instant, result: &anyhow::Result<T>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(error) if crate::jobs::is_permanent(error) => "permanent_error",
        Err(_) => "error",
    };
    metrics::counter!("berth_kubernetes_operations_total", "operation" => operation, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("berth_kubernetes_operation_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}

/// `berth render`: the exact objects of a site, as YAML, without a cluster.
pub fn render(
    kube: &KubernetesSettings,
    tenant: &TenantSettings,
    site: &SiteSpec,
) -> anyhow::Result<String> {
    let template = Template::new(kube, tenant);
    manifests::build(&template, site, Scale::Running)?.to_yaml()
}
