//! The Kubernetes objects of one site, built by pure functions from the settings and the site.
//!
//! Invariants every build holds (and the tests below check):
//! - one namespace per site, labelled for Pod Security `restricted` (enforce, warn, audit) and
//!   with berth's `managed-by`, tenant and site labels, which every object carries too;
//! - every pod passes the `restricted` profile and also has a read-only root filesystem, only
//!   configMap, secret, emptyDir and persistentVolumeClaim volumes, no service-account token and
//!   requests equal to limits (from the site's plan);
//! - the namespace's ResourceQuota and LimitRange come from the plan, leaving room for one extra
//!   pod during a rolling update;
//! - network traffic is denied by default; pods may only resolve DNS and be reached by the
//!   ingress controller's namespace;
//! - the same inputs give byte-identical objects, so re-applying is a no-op.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment, StatefulSet,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, HTTPGetAction, KeyToPath, LimitRange, LimitRangeItem, LimitRangeSpec,
    Namespace, PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceQuota, ResourceQuotaSpec,
    ResourceRequirements, SeccompProfile, Secret, SecretEnvSource, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, NetworkPolicy, NetworkPolicyEgressRule,
    NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
    ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use kube::core::{ApiResource, Resource};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::names;
use crate::adapters::runtime::SiteSpec;

mod stack;
use crate::configuration::{
    find_plan, KubernetesSettings, PlanSettings, TenantSettings, VolumeSettings, WorkloadKind,
    WorkloadSettings,
};
use crate::domain::quantity::{Bytes, Cpu};

/// The port the static-site nginx listens on (nginx-unprivileged's default).
pub const STATIC_PORT: u16 = 8080;
/// The UID and GID of nginx in the nginx-unprivileged image.
const NGINX_UID: i64 = 101;
/// The UID a container workload runs as unless the tenant says otherwise.
const DEFAULT_UID: i64 = 10001;
const DEFAULT_CONTAINER_PORT: u16 = 8080;
const PORT_NAME: &str = "http";
/// Pod template annotation with a digest of the mounted content or environment, so that a
/// change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "berth.dev/config-sha256";
const CLUSTER_ISSUER_ANNOTATION: &str = "cert-manager.io/cluster-issuer";
/// Where cert-manager's ACME HTTP-01 solver pod listens.
const ACME_SOLVER_PORT: i32 = 8089;

/// The nginx server of a static site: every path serves the one page, with the same sandbox
/// headers as the local runtime (customer HTML is untrusted), and `/healthz` for probes.
const NGINX_CONF: &str = r#"# Written by berth. Every path serves the site's one page, sandboxed.
server {
    listen 8080;
    server_name _;
    server_tokens off;
    root /usr/share/nginx/html;
    charset utf-8;
    add_header Content-Security-Policy "sandbox" always;
    add_header X-Content-Type-Options "nosniff" always;
    add_header X-Frame-Options "DENY" always;
    add_header Referrer-Policy "no-referrer" always;

    location = /healthz {
        access_log off;
        default_type text/plain;
        return 200 "ok\n";
    }

    location / {
        default_type text/html;
        try_files /index.html =404;
    }
}
"#;

/// Whether the site's workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Running,
    /// Zero replicas; everything else stays, so resuming is applying `Running` again.
    Suspended,
}

impl Scale {
    fn replicas(self) -> i32 {
        match self {
            Self::Running => 1,
            Self::Suspended => 0,
        }
    }
}

/// Why a site's manifests cannot be built. Retrying cannot fix any of these.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("plan {0:?} is not in tenant {1}'s plans")]
    UnknownPlan(String, String),
    #[error("a static site needs HTML")]
    MissingHtml,
    #[error("the container workload of tenant {0} has no image")]
    MissingImage(String),
    #[error("{0}")]
    BadQuantity(String),
    #[error("the site's recorded workload spec is not one this runtime builds: {0}")]
    BadSpec(String),
}

/// What a tenant's sites are built from: the cluster-wide settings plus the tenant's workload
/// and plans.
#[derive(Debug, Clone)]
pub struct Template {
    pub kube: KubernetesSettings,
    pub tenant: String,
    pub workload: WorkloadSettings,
    pub plans: BTreeMap<String, PlanSettings>,
}

impl Template {
    pub fn new(kube: &KubernetesSettings, tenant: &TenantSettings) -> Self {
        Self {
            kube: kube.clone(),
            tenant: tenant.name.clone(),
            workload: tenant.workload.clone(),
            plans: tenant.plans.clone(),
        }
    }

    /// The spec a site on `plan` gets from this template: what a fleet rollout compares and
    /// records.
    pub fn spec(&self, plan: Option<&str>) -> Result<Spec, ManifestError> {
        Ok(Spec {
            ingress_class: self.kube.ingress_class.clone(),
            ingress_namespace: self.kube.ingress_namespace.clone(),
            tls_issuer: self.kube.tls_issuer.clone(),
            static_image: self.kube.static_image.clone(),
            workload: self.workload.clone(),
            plan: self.plan(plan)?,
        })
    }

    /// This template with `spec` in place of what the configuration says now, for a site on
    /// `plan` (a site keeps the spec it was last moved to until a rollout moves it).
    fn pinned(&self, spec: Spec, plan: Option<&str>) -> Self {
        let kube = KubernetesSettings {
            ingress_class: spec.ingress_class,
            ingress_namespace: spec.ingress_namespace,
            tls_issuer: spec.tls_issuer,
            static_image: spec.static_image,
            ..self.kube.clone()
        };
        Self {
            kube,
            tenant: self.tenant.clone(),
            workload: spec.workload,
            plans: plan
                .map(|key| BTreeMap::from([(key.to_owned(), spec.plan)]))
                .unwrap_or_default(),
        }
    }

    /// The site's plan (by key, or by name), or the default plan when it has none.
    fn plan(&self, wanted: Option<&str>) -> Result<PlanSettings, ManifestError> {
        let Some(wanted) = wanted else {
            return Ok(PlanSettings::default());
        };
        find_plan(&self.plans, wanted)
            .map(|(_, plan)| plan.clone())
            .ok_or_else(|| ManifestError::UnknownPlan(wanted.to_owned(), self.tenant.clone()))
    }
}

/// What a site's objects are built from besides the site itself: the cluster settings and the
/// tenant's template as far as they reach an object, with the site's plan looked up. Recorded
/// per site as the spec it runs (SPEC §7); equal specs build equal objects.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub ingress_class: String,
    pub ingress_namespace: String,
    pub tls_issuer: String,
    pub static_image: String,
    pub workload: WorkloadSettings,
    pub plan: PlanSettings,
}

/// One object ready to apply: where it goes and its body.
#[derive(Debug, Clone)]
pub struct Object {
    pub resource: ApiResource,
    pub name: String,
    /// `None` for cluster-scoped objects (the Namespace).
    pub namespace: Option<String>,
    pub body: serde_json::Value,
}

impl Object {
    pub fn of<K>(object: &K) -> Self
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let meta = object.meta();
        Self {
            resource: ApiResource::erase::<K>(&()),
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone(),
            body: serde_json::to_value(object).expect("Kubernetes objects serialise"),
        }
    }

    /// `Kind/name`, for logs and errors.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.resource.kind, self.name)
    }
}

/// Every object of one site.
#[derive(Debug, Clone)]
pub struct Manifests {
    pub namespace: Namespace,
    pub quota: ResourceQuota,
    pub limits: LimitRange,
    pub network_policies: Vec<NetworkPolicy>,
    pub service_account: ServiceAccount,
    /// Static sites: the HTML and the nginx configuration.
    pub content: Option<ConfigMap>,
    /// Container workloads: the environment.
    pub env: Option<Secret>,
    /// Stacks: the Secret that holds the site's generated secrets. Built without its values,
    /// which the runtime generates once in the cluster and never reads back into berth.
    pub secrets: Option<Secret>,
    pub volume: Option<PersistentVolumeClaim>,
    /// One per component (a static or container site has one, `site`).
    pub services: Vec<Service>,
    /// One per component, in the order they start.
    pub workloads: Vec<WorkloadObject>,
    pub ingress: Ingress,
    /// Stacks: the components each component waits for before it starts, by name.
    pub dependencies: BTreeMap<String, Vec<String>>,
    /// Stacks: the keys of [`Manifests::secrets`] the runtime generates.
    pub generated_secrets: Vec<String>,
}

/// What runs a component: a Deployment, or a StatefulSet when it keeps data.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadObject {
    Deployment(Deployment),
    StatefulSet(StatefulSet),
}

impl WorkloadObject {
    pub fn object(&self) -> Object {
        match self {
            Self::Deployment(deployment) => Object::of(deployment),
            Self::StatefulSet(set) => Object::of(set),
        }
    }

    pub fn name(&self) -> &str {
        let meta = match self {
            Self::Deployment(deployment) => &deployment.metadata,
            Self::StatefulSet(set) => &set.metadata,
        };
        meta.name.as_deref().unwrap_or_default()
    }

    pub fn replicas(&self) -> Option<i32> {
        match self {
            Self::Deployment(deployment) => deployment.spec.as_ref()?.replicas,
            Self::StatefulSet(set) => set.spec.as_ref()?.replicas,
        }
    }

    pub fn pod_spec(&self) -> Option<&PodSpec> {
        match self {
            Self::Deployment(deployment) => deployment.spec.as_ref()?.template.spec.as_ref(),
            Self::StatefulSet(set) => set.spec.as_ref()?.template.spec.as_ref(),
        }
    }
}

impl Manifests {
    pub fn namespace_name(&self) -> &str {
        self.namespace.metadata.name.as_deref().unwrap_or_default()
    }

    /// The workload of component `name`.
    pub fn workload(&self, name: &str) -> Option<&WorkloadObject> {
        self.workloads.iter().find(|w| w.name() == name)
    }

    /// The Deployment of a static or container site (its only workload).
    pub fn deployment(&self) -> &Deployment {
        match self.workloads.as_slice() {
            [WorkloadObject::Deployment(deployment)] => deployment,
            _ => panic!("a site with one Deployment"),
        }
    }

    /// Every object in apply order: the namespace first, then its guard rails (quota, limits,
    /// network policies, service account), then what the pods mount, then the workload and
    /// the routes to it.
    pub fn objects(&self) -> Vec<Object> {
        let mut objects = vec![
            Object::of(&self.namespace),
            Object::of(&self.quota),
            Object::of(&self.limits),
        ];
        objects.extend(self.network_policies.iter().map(Object::of));
        objects.push(Object::of(&self.service_account));
        objects.extend(self.content.iter().map(Object::of));
        objects.extend(self.env.iter().map(Object::of));
        objects.extend(self.secrets.iter().map(Object::of));
        objects.extend(self.volume.iter().map(Object::of));
        objects.extend(self.services.iter().map(Object::of));
        objects.extend(self.workloads.iter().map(WorkloadObject::object));
        objects.push(Object::of(&self.ingress));
        objects
    }

    /// What is applied before the workloads: the namespace, its guard rails, what the pods
    /// mount and the Services.
    pub fn foundation(&self) -> Vec<Object> {
        let workloads = self.workloads.len() + 1;
        let mut objects = self.objects();
        objects.truncate(objects.len() - workloads);
        objects
    }

    /// The objects as a multi-document YAML stream, in apply order.
    pub fn to_yaml(&self) -> anyhow::Result<String> {
        let mut out = String::new();
        for object in self.objects() {
            out.push_str("---\n");
            out.push_str(&serde_saphyr::to_string(&object.body)?);
        }
        Ok(out)
    }
}

/// Builds every object of `site` for `template`.
pub fn build(
    template: &Template,
    site: &SiteSpec,
    scale: Scale,
) -> Result<Manifests, ManifestError> {
    let pinned;
    let template = match &site.workload {
        Some(recorded) => {
            let spec: Spec = serde_json::from_value(recorded.clone())
                .map_err(|e| ManifestError::BadSpec(e.to_string()))?;
            pinned = template.pinned(spec, site.plan.as_deref());
            &pinned
        }
        None => template,
    };
    let plan = template.plan(site.plan.as_deref())?;
    let cpu = Cpu::parse(&plan.cpu).map_err(ManifestError::BadQuantity)?;
    let memory = Bytes::parse(&plan.memory).map_err(ManifestError::BadQuantity)?;
    let ctx = Context {
        template,
        site,
        namespace: names::namespace(&template.tenant, &site.name),
        labels: names::labels(&template.tenant, &site.name),
    };
    let workload = match template.workload.kind {
        WorkloadKind::Static => ctx.static_workload()?,
        WorkloadKind::Container => ctx.container_workload()?,
        WorkloadKind::Stack => return ctx.stack(cpu, memory, scale),
    };
    let (claims, storage) = match &workload.volume {
        Some(volume) => (
            1,
            Bytes::parse(&volume.size).map_err(ManifestError::BadQuantity)?,
        ),
        None => (0, Bytes::ZERO),
    };
    // Room for two pods of the plan: a rolling update surges by one, or cert-manager runs its
    // ACME solver.
    let room = Room {
        pods: 2,
        cpu: cpu.times(2),
        memory: memory.times(2),
        claims,
        storage,
    };
    Ok(Manifests {
        namespace: ctx.namespace_object(),
        quota: ctx.quota(&room),
        limits: ctx.limits(cpu, memory, cpu, memory),
        network_policies: ctx.network_policies(workload.port),
        service_account: ctx.service_account(),
        volume: workload.volume.as_ref().map(|v| ctx.claim(v)),
        services: vec![ctx.service()],
        workloads: vec![WorkloadObject::Deployment(
            ctx.deployment(&workload, cpu, memory, scale),
        )],
        ingress: ctx.ingress(names::SITE, PORT_NAME),
        content: workload.content,
        env: workload.env,
        secrets: None,
        dependencies: BTreeMap::new(),
        generated_secrets: Vec::new(),
    })
}

/// What a site's ResourceQuota allows in all.
struct Room {
    pods: u64,
    cpu: Cpu,
    memory: Bytes,
    claims: u64,
    storage: Bytes,
}

/// The container part of a site, which differs by workload kind.
struct Workload {
    container: Container,
    volumes: Vec<Volume>,
    uid: i64,
    port: u16,
    config_hash: String,
    content: Option<ConfigMap>,
    env: Option<Secret>,
    volume: Option<VolumeSettings>,
}

struct Context<'a> {
    template: &'a Template,
    site: &'a SiteSpec,
    namespace: String,
    labels: BTreeMap<String, String>,
}

impl Context<'_> {
    fn meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels.clone()),
            ..ObjectMeta::default()
        }
    }

    fn namespace_object(&self) -> Namespace {
        let mut labels = self.labels.clone();
        for mode in ["enforce", "warn", "audit"] {
            labels.insert(
                format!("pod-security.kubernetes.io/{mode}"),
                "restricted".into(),
            );
            labels.insert(
                format!("pod-security.kubernetes.io/{mode}-version"),
                "latest".into(),
            );
        }
        Namespace {
            metadata: ObjectMeta {
                name: Some(self.namespace.clone()),
                labels: Some(labels),
                annotations: Some(BTreeMap::from([(
                    "berth.dev/hostname".to_owned(),
                    self.site.hostname.clone(),
                )])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        }
    }

    /// The site's `room`, no load balancers or node ports, and storage only for the configured
    /// volumes.
    fn quota(&self, room: &Room) -> ResourceQuota {
        let hard = quantities([
            ("pods", room.pods.to_string()),
            ("requests.cpu", room.cpu.to_string()),
            ("limits.cpu", room.cpu.to_string()),
            ("requests.memory", room.memory.to_string()),
            ("limits.memory", room.memory.to_string()),
            ("services.loadbalancers", "0".to_owned()),
            ("services.nodeports", "0".to_owned()),
            ("persistentvolumeclaims", room.claims.to_string()),
            ("requests.storage", room.storage.to_string()),
        ]);
        ResourceQuota {
            metadata: self.meta(names::SITE),
            spec: Some(ResourceQuotaSpec {
                hard: Some(hard),
                ..ResourceQuotaSpec::default()
            }),
            ..ResourceQuota::default()
        }
    }

    /// Containers default to the plan and may not exceed `max_cpu` and `max_memory` (the plan,
    /// or a stack's largest component).
    fn limits(&self, cpu: Cpu, memory: Bytes, max_cpu: Cpu, max_memory: Bytes) -> LimitRange {
        let amounts = |cpu: Cpu, memory: Bytes| {
            Some(quantities([
                ("cpu", cpu.to_string()),
                ("memory", memory.to_string()),
            ]))
        };
        let plan = || amounts(cpu, memory);
        LimitRange {
            metadata: self.meta(names::SITE),
            spec: Some(LimitRangeSpec {
                limits: vec![LimitRangeItem {
                    type_: "Container".into(),
                    default: plan(),
                    default_request: plan(),
                    max: amounts(max_cpu, max_memory),
                    ..LimitRangeItem::default()
                }],
            }),
        }
    }

    /// Default deny both ways; then DNS to the cluster's resolver, and the site's port from
    /// the ingress controller's namespace (plus the port of cert-manager's ACME HTTP-01
    /// solver, which runs in the site's namespace, when TLS is on).
    fn network_policies(&self, port: u16) -> Vec<NetworkPolicy> {
        let mut ports = vec![i32::from(port)];
        if !self.template.kube.tls_issuer.is_empty() {
            ports.push(ACME_SOLVER_PORT);
        }
        let mut policies = self.guard_policies();
        policies.push(self.reachable_from_ingress(
            names::ALLOW_INGRESS,
            LabelSelector::default(),
            &ports,
        ));
        policies
    }

    /// Default deny both ways, and DNS to the cluster's resolver.
    fn guard_policies(&self) -> Vec<NetworkPolicy> {
        vec![
            self.policy(
                names::DEFAULT_DENY,
                NetworkPolicySpec {
                    pod_selector: Some(LabelSelector::default()),
                    policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
                    ..NetworkPolicySpec::default()
                },
            ),
            self.policy(
                names::ALLOW_DNS,
                NetworkPolicySpec {
                    pod_selector: Some(LabelSelector::default()),
                    policy_types: Some(vec!["Egress".into()]),
                    egress: Some(vec![NetworkPolicyEgressRule {
                        to: Some(vec![NetworkPolicyPeer {
                            namespace_selector: namespace_selector("kube-system"),
                            pod_selector: Some(match_labels([("k8s-app", "kube-dns")])),
                            ..NetworkPolicyPeer::default()
                        }]),
                        ports: Some(vec![port_of("UDP", 53), port_of("TCP", 53)]),
                    }]),
                    ..NetworkPolicySpec::default()
                },
            ),
        ]
    }

    /// `pods` may be reached on `ports` from the ingress controller's namespace.
    fn reachable_from_ingress(
        &self,
        name: &str,
        pods: LabelSelector,
        ports: &[i32],
    ) -> NetworkPolicy {
        self.policy(
            name,
            NetworkPolicySpec {
                pod_selector: Some(pods),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: namespace_selector(
                            &self.template.kube.ingress_namespace,
                        ),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(ports.iter().map(|p| port_of("TCP", *p)).collect()),
                }]),
                ..NetworkPolicySpec::default()
            },
        )
    }

    fn policy(&self, name: &str, spec: NetworkPolicySpec) -> NetworkPolicy {
        NetworkPolicy {
            metadata: self.meta(name),
            spec: Some(spec),
        }
    }

    /// The pods' identity: no token, no role bindings.
    fn service_account(&self) -> ServiceAccount {
        ServiceAccount {
            metadata: self.meta(names::SITE),
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        }
    }

    fn static_workload(&self) -> Result<Workload, ManifestError> {
        let html = self
            .site
            .html
            .as_deref()
            .ok_or(ManifestError::MissingHtml)?;
        let data = BTreeMap::from([
            ("index.html".to_owned(), html.to_owned()),
            ("default.conf".to_owned(), NGINX_CONF.to_owned()),
        ]);
        let config_hash = digest(&data);
        let content_name = names::content(&config_hash);
        let mut metadata = self.meta(&content_name);
        metadata.labels.get_or_insert_with(BTreeMap::new).insert(
            names::CONTENT_LABEL.to_owned(),
            names::content_label(&config_hash).to_owned(),
        );
        let content = ConfigMap {
            metadata,
            data: Some(data),
            immutable: Some(true),
            ..ConfigMap::default()
        };
        let item = |key: &str| {
            Some(vec![KeyToPath {
                key: key.to_owned(),
                path: key.to_owned(),
                ..KeyToPath::default()
            }])
        };
        let config_map = |name: &str, key: &str| Volume {
            name: name.to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: content_name.clone(),
                items: item(key),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        };
        let volumes = vec![
            config_map("html", "index.html"),
            config_map("nginx-conf", "default.conf"),
            scratch("tmp"),
            scratch("cache"),
        ];
        let container = Container {
            image: Some(self.template.kube.static_image.clone()),
            volume_mounts: Some(vec![
                mount("html", "/usr/share/nginx/html", true),
                mount("nginx-conf", "/etc/nginx/conf.d", true),
                mount("tmp", "/tmp", false),
                mount("cache", "/var/cache/nginx", false),
            ]),
            readiness_probe: Some(Probe {
                http_get: Some(http_get("/healthz")),
                period_seconds: Some(5),
                ..Probe::default()
            }),
            liveness_probe: Some(Probe {
                http_get: Some(http_get("/healthz")),
                period_seconds: Some(10),
                failure_threshold: Some(3),
                ..Probe::default()
            }),
            ..Container::default()
        };
        Ok(Workload {
            container,
            volumes,
            uid: NGINX_UID,
            port: STATIC_PORT,
            config_hash,
            content: Some(content),
            env: None,
            volume: None,
        })
    }

    fn container_workload(&self) -> Result<Workload, ManifestError> {
        let settings = &self.template.workload;
        if settings.image.is_empty() {
            return Err(ManifestError::MissingImage(self.template.tenant.clone()));
        }
        let port = settings.port.unwrap_or(DEFAULT_CONTAINER_PORT);
        let data: BTreeMap<String, String> = settings.env.clone();
        let config_hash = digest(&data);
        let env = Secret {
            metadata: self.meta(names::ENV),
            type_: Some("Opaque".into()),
            data: Some(
                data.into_iter()
                    .map(|(k, v)| (k, ByteString(v.into_bytes())))
                    .collect(),
            ),
            ..Secret::default()
        };
        let probe = |period: i32| probe(settings.health_path.as_deref(), PORT_NAME, period);
        let mut volumes = vec![scratch("tmp")];
        let mut mounts = vec![mount("tmp", "/tmp", false)];
        if let Some(volume) = &settings.volume {
            volumes.push(Volume {
                name: "data".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: names::DATA.into(),
                    ..PersistentVolumeClaimVolumeSource::default()
                }),
                ..Volume::default()
            });
            mounts.push(mount("data", &volume.mount_path, false));
        }
        let site_env = [
            ("PORT", port.to_string()),
            ("BERTH_TENANT", self.template.tenant.clone()),
            ("BERTH_SITE_NAME", self.site.name.clone()),
            ("BERTH_SITE_HOSTNAME", self.site.hostname.clone()),
        ];
        let container = Container {
            image: Some(settings.image.clone()),
            env: Some(
                site_env
                    .into_iter()
                    .map(|(name, value)| EnvVar {
                        name: name.into(),
                        value: Some(value),
                        ..EnvVar::default()
                    })
                    .collect(),
            ),
            env_from: Some(vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: names::ENV.into(),
                    ..SecretEnvSource::default()
                }),
                ..EnvFromSource::default()
            }]),
            volume_mounts: Some(mounts),
            readiness_probe: Some(probe(5)),
            liveness_probe: Some(Probe {
                failure_threshold: Some(6),
                ..probe(10)
            }),
            ..Container::default()
        };
        Ok(Workload {
            container,
            volumes,
            uid: settings.run_as_user.unwrap_or(DEFAULT_UID),
            port,
            config_hash,
            content: None,
            env: Some(env),
            volume: settings.volume.clone(),
        })
    }

    fn claim(&self, volume: &VolumeSettings) -> PersistentVolumeClaim {
        claim(self.meta(names::DATA), volume)
    }

    fn service(&self) -> Service {
        Service {
            metadata: self.meta(names::SITE),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: Some(names::selector(&self.site.name)),
                ports: Some(vec![ServicePort {
                    name: Some(PORT_NAME.into()),
                    port: 80,
                    target_port: Some(IntOrString::String(PORT_NAME.into())),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn deployment(&self, workload: &Workload, cpu: Cpu, memory: Bytes, scale: Scale) -> Deployment {
        let container = hardened(
            Container {
                name: names::SITE.into(),
                ..workload.container.clone()
            },
            PORT_NAME,
            workload.port,
            cpu,
            memory,
        );
        // A volume can only be attached to one node: stop the old pod before starting the new.
        let strategy = if workload.volume.is_some() {
            DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }
        } else {
            rolling_update()
        };
        let selector = names::selector(&self.site.name);
        let annotations = BTreeMap::from([(
            CONFIG_HASH_ANNOTATION.to_owned(),
            workload.config_hash.clone(),
        )]);
        Deployment {
            metadata: self.meta(names::SITE),
            spec: Some(DeploymentSpec {
                replicas: Some(scale.replicas()),
                revision_history_limit: Some(3),
                selector: LabelSelector {
                    match_labels: Some(selector.clone()),
                    ..LabelSelector::default()
                },
                strategy: Some(strategy),
                template: self.pod_template(
                    selector,
                    Some(annotations),
                    workload.uid,
                    container,
                    workload.volumes.clone(),
                ),
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        }
    }

    /// A pod of the site: its labels and `selector`, no service-account token or service
    /// links, and the `restricted` pod security context as `uid`.
    fn pod_template(
        &self,
        selector: BTreeMap<String, String>,
        annotations: Option<BTreeMap<String, String>>,
        uid: i64,
        container: Container,
        volumes: Vec<Volume>,
    ) -> PodTemplateSpec {
        let mut pod_labels = self.labels.clone();
        pod_labels.extend(selector);
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(pod_labels),
                annotations,
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                service_account_name: Some(names::SITE.into()),
                automount_service_account_token: Some(false),
                enable_service_links: Some(false),
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(uid),
                    run_as_group: Some(uid),
                    fs_group: Some(uid),
                    seccomp_profile: Some(runtime_default()),
                    ..PodSecurityContext::default()
                }),
                containers: vec![container],
                volumes: Some(volumes),
                ..PodSpec::default()
            }),
        }
    }

    /// The hostname routed to the Service through the configured ingress class; with a
    /// ClusterIssuer, cert-manager issues its certificate into `site-tls`.
    fn ingress(&self, service: &str, port_name: &str) -> Ingress {
        let kube = &self.template.kube;
        let mut metadata = self.meta(names::SITE);
        let tls = (!kube.tls_issuer.is_empty()).then(|| {
            metadata.annotations = Some(BTreeMap::from([(
                CLUSTER_ISSUER_ANNOTATION.to_owned(),
                kube.tls_issuer.clone(),
            )]));
            vec![IngressTLS {
                hosts: Some(vec![self.site.hostname.clone()]),
                secret_name: Some(names::TLS.into()),
            }]
        });
        Ingress {
            metadata,
            spec: Some(IngressSpec {
                // Empty: the cluster's default IngressClass.
                ingress_class_name: (!kube.ingress_class.is_empty())
                    .then(|| kube.ingress_class.clone()),
                rules: Some(vec![IngressRule {
                    host: Some(self.site.hostname.clone()),
                    http: Some(HTTPIngressRuleValue {
                        paths: vec![HTTPIngressPath {
                            path: Some("/".into()),
                            path_type: "Prefix".into(),
                            backend: IngressBackend {
                                service: Some(IngressServiceBackend {
                                    name: service.into(),
                                    port: Some(ServiceBackendPort {
                                        name: Some(port_name.into()),
                                        ..ServiceBackendPort::default()
                                    }),
                                }),
                                ..IngressBackend::default()
                            },
                        }],
                    }),
                }]),
                tls,
                ..IngressSpec::default()
            }),
            ..Ingress::default()
        }
    }
}

/// `container` as every berth pod runs it: its one named port, requests equal to limits, and
/// the `restricted` security context with a read-only root filesystem.
fn hardened(
    container: Container,
    port_name: &str,
    port: u16,
    cpu: Cpu,
    memory: Bytes,
) -> Container {
    let resources = quantities([("cpu", cpu.to_string()), ("memory", memory.to_string())]);
    Container {
        ports: Some(vec![ContainerPort {
            name: Some(port_name.into()),
            container_port: i32::from(port),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(resources.clone()),
            limits: Some(resources),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        ..container
    }
}

fn match_labels<const N: usize>(pairs: [(&str, &str); N]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ),
        ..LabelSelector::default()
    }
}

/// The namespace called `name`.
fn namespace_selector(name: &str) -> Option<LabelSelector> {
    Some(match_labels([("kubernetes.io/metadata.name", name)]))
}

fn port_of(protocol: &str, port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(port)),
        ..NetworkPolicyPort::default()
    }
}

/// A `ReadWriteOnce` claim of `volume`'s size and StorageClass.
fn claim(metadata: ObjectMeta, volume: &VolumeSettings) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: (!volume.storage_class.is_empty())
                .then(|| volume.storage_class.clone()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(quantities([("storage", volume.size.clone())])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// A check every `period` seconds: `GET health_path`, or a TCP connection to port `port_name`
/// when there is none.
fn probe(health_path: Option<&str>, port_name: &str, period: i32) -> Probe {
    Probe {
        http_get: health_path.map(http_get),
        tcp_socket: health_path.is_none().then(|| TCPSocketAction {
            port: IntOrString::String(port_name.into()),
            ..TCPSocketAction::default()
        }),
        period_seconds: Some(period),
        ..Probe::default()
    }
}

/// One pod at a time more during an update, none fewer.
fn rolling_update() -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(1)),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    }
}

fn quantities<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, Quantity> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Quantity(v)))
        .collect()
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..SeccompProfile::default()
    }
}

/// A small writable scratch directory (the root filesystem is read-only).
fn scratch(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity("64Mi".into())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn http_get(path: &str) -> HTTPGetAction {
    HTTPGetAction {
        path: Some(path.to_owned()),
        port: IntOrString::String(PORT_NAME.into()),
        ..HTTPGetAction::default()
    }
}

/// SHA-256 (hex) of a map's entries, in order.
fn digest(data: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in data {
        for part in [key, value] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;
