//! The kubernetes runtime against a real cluster, `BERTH_TEST_KUBECONFIG` (a throwaway k3s or
//! kind cluster: the test creates and deletes namespaces `berth-kube-it-…`). It is ignored
//! unless asked for with `-- --ignored`, so a run without a cluster shows it as ignored, and it
//! fails when asked for without a cluster. See the README for how to start one. Optional: `BERTH_TEST_KUBE_CONTEXT` (default: the current context),
//! `BERTH_TEST_STATIC_IMAGE` (a mirror of the nginx-unprivileged image), `BERTH_TEST_REDIS_IMAGE`
//! (a mirror of the Redis image the stack case's database runs).

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret, ServiceAccount};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use reqwest::Method;

use berth::configuration::TenantSettings;

use crate::helpers::{kube_tenant, TestApp, ADMIN_TOKEN};

struct Cluster {
    kubeconfig: String,
    context: String,
}

impl Cluster {
    fn from_env() -> Option<Self> {
        let kubeconfig = std::env::var("BERTH_TEST_KUBECONFIG").ok()?;
        if kubeconfig.is_empty() {
            return None;
        }
        Some(Self {
            kubeconfig,
            context: std::env::var("BERTH_TEST_KUBE_CONTEXT").unwrap_or_default(),
        })
    }

    async fn client(&self) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let file = Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let options = KubeConfigOptions {
            context: (!self.context.is_empty()).then(|| self.context.clone()),
            ..KubeConfigOptions::default()
        };
        let config = kube::Config::from_custom_kubeconfig(file, &options)
            .await
            .unwrap();
        Client::try_from(config).unwrap()
    }

    async fn app(&self) -> TestApp {
        self.app_with(|_| {}).await
    }

    /// The app with tenant `kube` on the cluster, its workload as `workload` makes it.
    async fn app_with(&self, workload: impl FnOnce(&mut TenantSettings)) -> TestApp {
        TestApp::spawn_with(|settings| {
            let mut tenant = kube_tenant();
            workload(&mut tenant);
            // Clusters for tests seldom run an ingress controller that publishes addresses.
            tenant.dns.target = "cluster-test.invalid".into();
            settings.tenants.push(tenant);
            settings.kubernetes.kubeconfig = self.kubeconfig.clone();
            settings.kubernetes.context = self.context.clone();
            if let Ok(image) = std::env::var("BERTH_TEST_STATIC_IMAGE") {
                settings.kubernetes.static_image = image;
            }
            // Room for pulling the image on a cold node.
            settings.jobs.ready_timeout_secs = 240;
            settings.kubernetes.delete_timeout_secs = 240;
        })
        .await
    }
}

async fn state(app: &TestApp, id: &str) -> String {
    app.status("kube", id).await["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn act(app: &TestApp, method: Method, path: &str) {
    let response = app.admin(method, path, ADMIN_TOKEN).await;
    assert_eq!(response.status(), 202, "{path}");
    app.drain_jobs().await;
}

/// Signs site `name` up and provisions it; its id.
async fn sign_up(app: &TestApp, name: &str) -> String {
    let response = app
        .post_json(
            "/t/kube/signup",
            &serde_json::json!({"name": name, "email": "ann@example.com", "html": "<h1>It works</h1>"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let id = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.drain_jobs().await;
    let detail = app.site_detail(&id).await;
    assert_eq!(state(app, &id).await, "ready", "{detail}");
    id
}

/// Deletes the site: the job ends once its namespace (and all in it) is gone.
async fn delete(app: &TestApp, client: &Client, id: &str, namespace: &str) {
    act(app, Method::DELETE, &format!("/admin/sites/{id}")).await;
    assert_eq!(state(app, id).await, "deleted");
    let gone = Api::<Namespace>::all(client.clone())
        .get_opt(namespace)
        .await
        .unwrap();
    assert!(gone.is_none(), "namespace {namespace} still exists");
}

#[tokio::test]
#[ignore = "needs a real cluster: set BERTH_TEST_KUBECONFIG and run with -- --ignored"]
async fn a_stack_lives_its_whole_life_on_a_real_cluster() {
    use berth::configuration::{ComponentSettings, VolumeSettings, WorkloadKind, WorkloadSettings};
    let cluster = Cluster::from_env()
        .expect("BERTH_TEST_KUBECONFIG must name a kubeconfig of a throwaway cluster");
    let static_image = berth::configuration::KubernetesSettings::default().static_image;
    let web = std::env::var("BERTH_TEST_STATIC_IMAGE").unwrap_or(static_image);
    let redis = std::env::var("BERTH_TEST_REDIS_IMAGE")
        .unwrap_or_else(|_| "docker.io/library/redis:7.4-alpine".into());
    let app = cluster
        .app_with(|tenant| {
            tenant.workload = WorkloadSettings {
                kind: WorkloadKind::Stack,
                expose: "web".into(),
                secrets: vec!["db_password".into()],
                components: vec![
                    ComponentSettings {
                        depends_on: vec!["db".into()],
                        writable: vec!["/var/cache/nginx".into()],
                        env: [("DB_HOST".to_owned(), "${component:db}".to_owned())].into(),
                        ..ComponentSettings::new("web", &web, 8080)
                    },
                    ComponentSettings {
                        run_as_user: Some(999),
                        volume: Some(VolumeSettings {
                            size: "64Mi".into(),
                            mount_path: "/data".into(),
                            storage_class: String::new(),
                        }),
                        env: [("DB_PASSWORD".to_owned(), "${secret:db_password}".to_owned())]
                            .into(),
                        // Kubernetes expands $(DB_PASSWORD) from the container's environment.
                        args: ["redis-server", "--requirepass", "$(DB_PASSWORD)"]
                            .map(String::from)
                            .to_vec(),
                        ..ComponentSettings::new("db", &redis, 6379)
                    },
                ],
                ..WorkloadSettings::default()
            }
        })
        .await;
    let client = cluster.client().await;
    let name = format!("it-{:08x}", rand::random::<u32>());
    let namespace = berth::adapters::runtime::kubernetes::names::namespace("kube", &name);
    let id = sign_up(&app, &name).await;

    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
    let db = sets.get("db").await.unwrap();
    assert_eq!(db.status.unwrap().ready_replicas, Some(1));
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    assert!(
        claims.get_opt("data-db-0").await.unwrap().is_some(),
        "the database's claim"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let password = || async {
        let secret = secrets.get("site-secrets").await.unwrap();
        secret.data.unwrap()["db_password"].0.clone()
    };
    let first = password().await;
    assert_eq!(first.len(), 64, "a generated secret");

    // Suspend and resume: every component back, the secret unchanged.
    act(&app, Method::POST, &format!("/admin/sites/{id}/suspend")).await;
    assert_eq!(
        sets.get("db").await.unwrap().spec.unwrap().replicas,
        Some(0)
    );
    act(&app, Method::POST, &format!("/admin/sites/{id}/resume")).await;
    assert_eq!(state(&app, &id).await, "ready");
    assert_eq!(password().await, first, "a generated secret never changes");

    delete(&app, &client, &id, &namespace).await;
}

#[tokio::test]
#[ignore = "needs a real cluster: set BERTH_TEST_KUBECONFIG and run with -- --ignored"]
async fn a_site_lives_its_whole_life_on_a_real_cluster() {
    let cluster = Cluster::from_env()
        .expect("BERTH_TEST_KUBECONFIG must name a kubeconfig of a throwaway cluster");
    let app = cluster.app().await;
    let client = cluster.client().await;
    let name = format!("it-{:08x}", rand::random::<u32>());
    let namespace = berth::adapters::runtime::kubernetes::names::namespace("kube", &name);
    let id = sign_up(&app, &name).await;

    // The namespace enforces Pod Security restricted, and the pod runs under it.
    let ns = Api::<Namespace>::all(client.clone())
        .get(&namespace)
        .await
        .unwrap();
    let labels = ns.metadata.labels.unwrap();
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "berth");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let deployment = deployments.get("site").await.unwrap();
    assert_eq!(
        deployment.status.as_ref().unwrap().available_replicas,
        Some(1)
    );
    let managers: Vec<_> = deployment
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|f| f.manager.as_deref() == Some("berth"))
        .map(|f| f.operation.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        managers,
        ["Apply"],
        "berth owns its fields through server-side apply"
    );
    let account = Api::<ServiceAccount>::namespaced(client.clone(), &namespace)
        .get("site")
        .await
        .unwrap();
    assert_eq!(account.automount_service_account_token, Some(false));
    let generation = deployment.metadata.generation.unwrap();

    // Suspend scales to zero; resume scales back, and nothing else changes.
    act(&app, Method::POST, &format!("/admin/sites/{id}/suspend")).await;
    let suspended = deployments.get("site").await.unwrap();
    assert_eq!(suspended.spec.unwrap().replicas, Some(0));
    act(&app, Method::POST, &format!("/admin/sites/{id}/resume")).await;
    assert_eq!(state(&app, &id).await, "ready");
    let resumed = deployments.get("site").await.unwrap();
    assert_eq!(resumed.spec.unwrap().replicas, Some(1));
    assert_eq!(
        resumed.metadata.generation,
        Some(generation + 2),
        "re-applying changed only the replicas"
    );

    // Deprovisioning returns once the namespace is gone.
    delete(&app, &client, &id, &namespace).await;
}
