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

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::OnceCell;

use self::manifests::{Manifests, Scale, Template};
use super::{Runtime, SiteSpec};
use crate::configuration::{KubernetesSettings, TenantSettings};
use crate::error::Permanent;

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
}

/// In-cluster (the pod's service account) when `kubeconfig` is empty, else that file and
/// context. Reads local files only; the first request is what reaches the cluster.
#[tracing::instrument(name = "kubernetes.connect", skip_all, fields(k8s.kubeconfig = %settings.kubeconfig, k8s.context = %settings.context))]
async fn connect(settings: &KubernetesSettings) -> anyhow::Result<kube::Client> {
    use anyhow::Context as _;
    // kube's TLS uses the process-wide rustls provider; make sure there is exactly one.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
    /// The runtime of `tenant` under the cluster settings `kube`, on `connection` (whose own
    /// settings chose the cluster; a reload brings new `kube` settings and keeps the
    /// connection).
    pub fn new(
        connection: Arc<Connection>,
        kube: &KubernetesSettings,
        tenant: &TenantSettings,
    ) -> Self {
        Self {
            template: Template::new(kube, tenant),
            address_from_ingress: tenant.dns.target.is_empty(),
            connection,
        }
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.template.kube.request_timeout_secs)
    }

    /// The site's namespace if it exists; an error if it belongs to another site.
    async fn owned_namespace(
        &self,
        client: &kube::Client,
        site: &SiteSpec,
    ) -> anyhow::Result<Option<k8s_openapi::api::core::v1::Namespace>> {
        apply::check_owner(
            client,
            &names::namespace(&site.tenant, &site.name),
            &site.tenant,
            &site.name,
            self.request_timeout(),
        )
        .await
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

    fn workload(&self, plan: Option<&str>) -> anyhow::Result<serde_json::Value> {
        let spec = self
            .template
            .spec(plan)
            .map_err(|e| anyhow::Error::from(Permanent::new(e.to_string())))?;
        Ok(serde_json::to_value(spec)?)
    }

    #[tracing::instrument(name = "kubernetes.apply", skip_all, fields(tenant = %site.tenant, site.id = %site.id, site.name = %site.name, k8s.namespace = %names::namespace(&site.tenant, &site.name)))]
    async fn apply(&self, site: &SiteSpec) -> anyhow::Result<()> {
        measured("apply", async {
            let manifests = self.manifests(site, Scale::Running)?;
            let client = self.connection.client().await?;
            self.owned_namespace(&client, site).await?;
            let timeout = self.request_timeout();
            let namespace = manifests.namespace_name();
            apply::apply_all(&client, &manifests.foundation(), timeout).await?;
            if !manifests.generated_secrets.is_empty() {
                apply::generate_secrets(
                    &client,
                    namespace,
                    names::SECRETS,
                    &manifests.generated_secrets,
                    timeout,
                )
                .await?;
            }
            // Each component starts once what it depends on is ready (they come in that order).
            let start = Duration::from_secs(self.template.kube.start_timeout_secs);
            for workload in &manifests.workloads {
                let needs = manifests
                    .dependencies
                    .get(workload.name())
                    .into_iter()
                    .flatten();
                for dependency in needs.filter_map(|d| manifests.workload(d)) {
                    apply::wait_rollout(&client, namespace, dependency, start).await?;
                }
                apply::apply_all(&client, &[workload.object()], timeout).await?;
            }
            apply::apply_all(
                &client,
                &[manifests::Object::of(&manifests.ingress)],
                timeout,
            )
            .await?;
            tracing::info!(
                objects = manifests.objects().len(),
                "applied the site's objects"
            );
            Ok(())
        })
        .await
    }

    #[tracing::instrument(name = "kubernetes.wait_ready", skip_all, fields(tenant = %site.tenant, site.id = %site.id, site.name = %site.name, k8s.namespace = %names::namespace(&site.tenant, &site.name)))]
    async fn wait_ready(
        &self,
        site: &SiteSpec,
        timeout: Duration,
    ) -> anyhow::Result<Option<String>> {
        measured("ready", async {
            let started = Instant::now();
            let manifests = self.manifests(site, Scale::Running)?;
            let client = self.connection.client().await?;
            let namespace = manifests.namespace_name();
            for workload in &manifests.workloads {
                let left = timeout.saturating_sub(started.elapsed());
                apply::wait_rollout(&client, namespace, workload, left).await?;
            }
            let address = if self.address_from_ingress {
                let left = timeout.saturating_sub(started.elapsed());
                Some(apply::wait_ingress_address(&client, namespace, left).await?)
            } else {
                None
            };
            tracing::info!(
                k8s.address = address.as_deref().unwrap_or(""),
                duration_ms = started.elapsed().as_millis() as u64,
                "site is serving"
            );
            Ok(address)
        })
        .await
    }

    #[tracing::instrument(name = "kubernetes.retire", skip_all, fields(tenant = %site.tenant, site.id = %site.id, site.name = %site.name, k8s.namespace = %names::namespace(&site.tenant, &site.name)))]
    async fn retire(&self, site: &SiteSpec) -> anyhow::Result<()> {
        measured("retire", async {
            let manifests = self.manifests(site, Scale::Running)?;
            let Some(content) = &manifests.content else {
                return Ok(());
            };
            let keep = content
                .metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(names::CONTENT_LABEL))
                .cloned()
                .unwrap_or_default();
            let client = self.connection.client().await?;
            if self.owned_namespace(&client, site).await?.is_none() {
                return Ok(());
            }
            let namespace = names::namespace(&site.tenant, &site.name);
            let timeout = self.request_timeout();
            apply::delete_content_except(&client, &namespace, &keep, timeout).await?;
            tracing::info!("removed the content of earlier versions");
            Ok(())
        })
        .await
    }

    #[tracing::instrument(name = "kubernetes.suspend", skip_all, fields(tenant = %site.tenant, site.id = %site.id, site.name = %site.name, k8s.namespace = %names::namespace(&site.tenant, &site.name)))]
    async fn suspend(&self, site: &SiteSpec) -> anyhow::Result<()> {
        measured("suspend", async {
            let manifests = self.manifests(site, Scale::Suspended)?;
            let client = self.connection.client().await?;
            let timeout = self.request_timeout();
            if self.owned_namespace(&client, site).await?.is_none() {
                tracing::info!("the site's namespace does not exist; nothing to suspend");
                return Ok(());
            }
            // The last to start stops first.
            for workload in manifests.workloads.iter().rev() {
                if !apply::apply_if_namespace_exists(&client, &workload.object(), timeout).await? {
                    tracing::info!("the site's namespace does not exist; nothing to suspend");
                    return Ok(());
                }
            }
            tracing::info!("scaled the site to zero");
            Ok(())
        })
        .await
    }

    #[tracing::instrument(name = "kubernetes.delete", skip_all, fields(tenant = %site.tenant, site.id = %site.id, site.name = %site.name, k8s.namespace = %names::namespace(&site.tenant, &site.name)))]
    async fn delete(&self, site: &SiteSpec) -> anyhow::Result<()> {
        measured("delete", async {
            let client = self.connection.client().await?;
            let Some(owned) = self.owned_namespace(&client, site).await? else {
                tracing::info!("namespace is already gone");
                return Ok(());
            };
            let settings = &self.template.kube;
            apply::delete_namespace(
                &client,
                &names::namespace(&site.tenant, &site.name),
                owned.metadata.uid,
                self.request_timeout(),
                Duration::from_secs(settings.delete_timeout_secs),
            )
            .await
        })
        .await
    }

    fn site_url(&self, hostname: &str) -> String {
        if self.template.kube.tls_issuer.is_empty() {
            format!("http://{hostname}/")
        } else {
            format!("https://{hostname}/")
        }
    }
}

/// Runs one operation and counts it: `berth_kubernetes_operations_total{operation, outcome}`
/// and `berth_kubernetes_operation_duration_seconds{operation}`.
async fn measured<T>(
    operation: &'static str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let result = work.await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(error) if crate::error::is_permanent(error) => "permanent_error",
        Err(_) => "error",
    };
    metrics::counter!("berth_kubernetes_operations_total", "operation" => operation, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("berth_kubernetes_operation_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    result
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

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"apiVersion: v1
kind: Config
current-context: first
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443
contexts:
- name: first
  context: {cluster: c, user: u, namespace: ns-first}
- name: second
  context: {cluster: c, user: u, namespace: ns-second}
users:
- name: u
  user: {token: not-a-real-token}
"#;

    async fn client_for(context: &str) -> anyhow::Result<kube::Client> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, KUBECONFIG).unwrap();
        let settings = KubernetesSettings {
            kubeconfig: path.display().to_string(),
            context: context.into(),
            ..KubernetesSettings::default()
        };
        Connection::lazy(&settings).client().await
    }

    #[tokio::test]
    async fn a_kubeconfig_file_and_its_named_context_configure_the_client() {
        // Building the client reads the file only; no cluster listens there.
        assert_eq!(
            client_for("").await.unwrap().default_namespace(),
            "ns-first"
        );
        assert_eq!(
            client_for("second").await.unwrap().default_namespace(),
            "ns-second"
        );
        let Err(err) = client_for("third").await else {
            panic!("an unknown context was accepted");
        };
        assert!(format!("{err:#}").contains("context \"third\""), "{err:#}");
    }

    #[tokio::test]
    async fn outside_a_cluster_an_empty_kubeconfig_says_what_to_set() {
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            return; // running in a pod: the in-cluster configuration may well work
        }
        let Err(err) = Connection::lazy(&KubernetesSettings::default())
            .client()
            .await
        else {
            panic!("a client without a cluster or a kubeconfig");
        };
        assert!(
            format!("{err:#}").contains("set kubernetes.kubeconfig"),
            "{err:#}"
        );
    }

    /// `deploy/components/kubernetes-runtime/clusterrole.yaml` grants exactly what the
    /// runtime uses: create and patch (server-side apply) on every kind it applies, list and
    /// watch on what it waits for, get (the ownership check) and delete on namespaces, get on
    /// a stack's generated secrets.
    #[test]
    fn the_cluster_role_in_deploy_grants_exactly_what_the_runtime_uses() {
        use crate::configuration::{
            ComponentSettings, VolumeSettings, WorkloadKind, WorkloadSettings,
        };
        use std::collections::BTreeSet;

        let mut needed = BTreeSet::new();
        let workloads = [
            WorkloadSettings::default(),
            WorkloadSettings {
                kind: WorkloadKind::Container,
                image: "x".into(),
                volume: Some(VolumeSettings {
                    size: "1Gi".into(),
                    mount_path: "/data".into(),
                    storage_class: String::new(),
                }),
                ..WorkloadSettings::default()
            },
            WorkloadSettings {
                kind: WorkloadKind::Stack,
                expose: "app".into(),
                secrets: vec!["key".into()],
                components: vec![
                    ComponentSettings {
                        volume: Some(VolumeSettings {
                            size: "1Gi".into(),
                            mount_path: "/data".into(),
                            storage_class: String::new(),
                        }),
                        ..ComponentSettings::new("db", "db", 5432)
                    },
                    ComponentSettings {
                        depends_on: vec!["db".into()],
                        ..ComponentSettings::new("app", "app", 8080)
                    },
                ],
                ..WorkloadSettings::default()
            },
        ];
        for workload in workloads {
            let tenant = TenantSettings {
                workload,
                ..TenantSettings::default()
            };
            let template = Template::new(&KubernetesSettings::default(), &tenant);
            let site = SiteSpec {
                id: String::new(),
                tenant: "t".into(),
                name: "site".into(),
                hostname: "site.example".into(),
                html: Some(String::new()),
                plan: None,
                workload: None,
            };
            for object in manifests::build(&template, &site, Scale::Running)
                .unwrap()
                .objects()
            {
                for verb in ["create", "patch"] {
                    needed.insert((
                        object.resource.group.clone(),
                        object.resource.plural.clone(),
                        verb,
                    ));
                }
            }
        }
        for (group, plural, verbs) in [
            ("apps", "deployments", &["list", "watch"][..]),
            ("apps", "statefulsets", &["list", "watch"]),
            ("", "secrets", &["get"]),
            ("networking.k8s.io", "ingresses", &["list", "watch"]),
            ("", "namespaces", &["delete", "get", "list", "watch"]),
            ("", "configmaps", &["deletecollection"]),
        ] {
            for verb in verbs {
                needed.insert((group.to_owned(), plural.to_owned(), *verb));
            }
        }

        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/components/kubernetes-runtime/clusterrole.yaml"
        );
        let role: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut granted = BTreeSet::new();
        for rule in role["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        let verb = needed
                            .iter()
                            .map(|(_, _, v)| *v)
                            .find(|v| *v == verb.as_str().unwrap())
                            .unwrap_or_else(|| {
                                panic!("{path} grants {verb}, which berth never uses")
                            });
                        granted.insert((
                            group.as_str().unwrap().to_owned(),
                            resource.as_str().unwrap().to_owned(),
                            verb,
                        ));
                    }
                }
            }
        }
        assert_eq!(granted, needed, "{path}");
    }

    #[test]
    fn site_urls_use_https_when_cert_manager_issues_certificates() {
        let runtime = |issuer: &str| {
            let settings = KubernetesSettings {
                tls_issuer: issuer.into(),
                ..KubernetesSettings::default()
            };
            KubernetesRuntime::new(
                Arc::new(Connection::lazy(&settings)),
                &settings,
                &TenantSettings::default(),
            )
        };
        assert_eq!(runtime("").site_url("a.example"), "http://a.example/");
        assert_eq!(runtime("le").site_url("a.example"), "https://a.example/");
    }
}
