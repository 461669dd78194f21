//! The objects of a stack (SPEC §8): per component a ClusterIP Service and a Deployment, or a
//! StatefulSet with a volume claim when it keeps data; the Ingress to the `expose` component;
//! network policies that let through exactly the traffic the template declares; and the Secret
//! of the site's generated secrets, which pods read through `secretKeyRef`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, Probe, Secret, SecretKeySelector, Service, ServicePort,
    ServiceSpec, Sysctl,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    claim, hardened, match_labels, mount, names, port_of, rolling_update, scratch, Context,
    ManifestError, Manifests, Room, Scale, WorkloadObject, ACME_SOLVER_PORT, DEFAULT_UID,
};
use crate::configuration::{parse_value, start_order, ComponentSettings, Piece, Placeholder};
use crate::domain::quantity::{Bytes, Cpu};

/// The name of every component's port (its Service's and its container's).
const PORT_NAME: &str = "main";
/// The volume claim template of a stateful component (its claims: `data-<component>-0`).
const DATA_VOLUME: &str = "data";
/// How many startup checks, 5 s apart, a component may fail before it is restarted: 10 minutes.
const STARTUP_CHECKS: i32 = 120;
/// The annotation on the secrets' Secret that lists the keys the runtime generates.
pub const GENERATED_ANNOTATION: &str = "berth.dev/generated-keys";

/// A component with its CPU and memory settled (its own, or the plan's).
struct Sized<'a> {
    settings: &'a ComponentSettings,
    cpu: Cpu,
    memory: Bytes,
}

impl Context<'_> {
    pub(super) fn stack(
        &self,
        plan_cpu: Cpu,
        plan_memory: Bytes,
        scale: Scale,
    ) -> Result<Manifests, ManifestError> {
        let workload = &self.template.workload;
        let mut components = Vec::new();
        for settings in start_order(&workload.components) {
            let cpu = match &settings.cpu {
                Some(cpu) => Cpu::parse(cpu).map_err(ManifestError::BadQuantity)?,
                None => plan_cpu,
            };
            let memory = match &settings.memory {
                Some(memory) => Bytes::parse(memory).map_err(ManifestError::BadQuantity)?,
                None => plan_memory,
            };
            components.push(Sized {
                settings,
                cpu,
                memory,
            });
        }
        let exposed = components
            .iter()
            .find(|c| c.settings.name == workload.expose)
            .ok_or_else(|| {
                ManifestError::BadSpec(format!("no component {:?} to expose", workload.expose))
            })?;

        let mut room = Room {
            // cert-manager's ACME solver, sized by the LimitRange's default (the plan).
            pods: 1,
            cpu: plan_cpu,
            memory: plan_memory,
            claims: 0,
            storage: Bytes::ZERO,
        };
        let (mut max_cpu, mut max_memory) = (plan_cpu, plan_memory);
        let mut workloads = Vec::new();
        for component in &components {
            // A Deployment surges by one pod during an update; a StatefulSet replaces its pod.
            let pods = match &component.settings.volume {
                Some(volume) => {
                    room.claims += 1;
                    let size = Bytes::parse(&volume.size).map_err(ManifestError::BadQuantity)?;
                    room.storage = room.storage.plus(size);
                    1
                }
                None => 2,
            };
            room.pods += pods;
            room.cpu = room.cpu.plus(component.cpu.times(pods));
            room.memory = room.memory.plus(component.memory.times(pods));
            max_cpu = max_cpu.max(component.cpu);
            max_memory = max_memory.max(component.memory);
            workloads.push(self.component_workload(component, scale));
        }

        let secrets = (!workload.secrets.is_empty()).then(|| self.secrets_object());
        Ok(Manifests {
            namespace: self.namespace_object(),
            quota: self.quota(&room),
            limits: self.limits(plan_cpu, plan_memory, max_cpu, max_memory),
            network_policies: self.stack_policies(&components, exposed),
            service_account: self.service_account(),
            content: None,
            env: None,
            secrets,
            volume: None,
            services: components
                .iter()
                .map(|c| self.component_service(c.settings))
                .collect(),
            workloads,
            ingress: self.ingress(&exposed.settings.name, PORT_NAME),
            dependencies: components
                .iter()
                .map(|c| (c.settings.name.clone(), c.settings.depends_on.clone()))
                .collect(),
            generated_secrets: workload.secrets.clone(),
        })
    }

    /// The pods of `component` (with the site's selector, which every pod of the site shares).
    fn component_selector(&self, component: &str) -> BTreeMap<String, String> {
        let mut selector = names::selector(&self.site.name);
        selector.insert(names::COMPONENT_LABEL.to_owned(), component.to_owned());
        selector
    }

    fn component_service(&self, component: &ComponentSettings) -> Service {
        Service {
            metadata: self.meta(&component.name),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: Some(self.component_selector(&component.name)),
                ports: Some(vec![ServicePort {
                    name: Some(PORT_NAME.into()),
                    port: i32::from(component.port),
                    target_port: Some(IntOrString::String(PORT_NAME.into())),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    /// The Secret the generated secrets live in. Its values are not part of it: the runtime
    /// writes each once, under a field manager of its own, so that re-applying this object
    /// never changes or removes one.
    fn secrets_object(&self) -> Secret {
        let mut metadata = self.meta(names::SECRETS);
        metadata.annotations = Some(BTreeMap::from([(
            GENERATED_ANNOTATION.to_owned(),
            self.template.workload.secrets.join(","),
        )]));
        Secret {
            metadata,
            type_: Some("Opaque".into()),
            ..Secret::default()
        }
    }

    fn component_workload(&self, component: &Sized, scale: Scale) -> WorkloadObject {
        let settings = component.settings;
        let mut volumes = vec![scratch("tmp")];
        let mut mounts = vec![mount("tmp", "/tmp", false)];
        for (i, path) in settings.writable.iter().enumerate() {
            let name = format!("scratch-{i}");
            volumes.push(scratch(&name));
            mounts.push(mount(&name, path, false));
        }
        if let Some(volume) = &settings.volume {
            mounts.push(mount(DATA_VOLUME, &volume.mount_path, false));
        }
        let probe = |period: i32| super::probe(settings.health_path.as_deref(), PORT_NAME, period);
        let container = hardened(
            Container {
                name: settings.name.clone(),
                image: Some(settings.image.clone()),
                env: Some(self.component_env(settings)),
                command: (!settings.command.is_empty()).then(|| settings.command.clone()),
                args: (!settings.args.is_empty()).then(|| settings.args.clone()),
                volume_mounts: Some(mounts),
                // A first start may take minutes (a database initialising its volume, an app
                // migrating its schema): liveness waits until the component has started.
                startup_probe: Some(Probe {
                    failure_threshold: Some(STARTUP_CHECKS),
                    ..probe(5)
                }),
                readiness_probe: Some(probe(5)),
                liveness_probe: Some(Probe {
                    failure_threshold: Some(6),
                    ..probe(10)
                }),
                ..Container::default()
            },
            PORT_NAME,
            settings.port,
            component.cpu,
            component.memory,
        );
        let selector = self.component_selector(&settings.name);
        let mut template = self.pod_template(
            selector.clone(),
            None,
            settings.run_as_user.unwrap_or(DEFAULT_UID),
            container,
            volumes,
        );
        if settings.bind_privileged_ports {
            let pod = template.spec.as_mut().expect("a pod template has a spec");
            let security = pod.security_context.get_or_insert_with(Default::default);
            security.sysctls = Some(vec![Sysctl {
                name: "net.ipv4.ip_unprivileged_port_start".into(),
                value: "0".into(),
            }]);
        }
        let selector = LabelSelector {
            match_labels: Some(selector),
            ..LabelSelector::default()
        };
        let replicas = Some(scale.replicas());
        match &settings.volume {
            Some(volume) => WorkloadObject::StatefulSet(StatefulSet {
                metadata: self.meta(&settings.name),
                spec: Some(StatefulSetSpec {
                    replicas,
                    revision_history_limit: Some(3),
                    selector,
                    service_name: Some(settings.name.clone()),
                    template,
                    volume_claim_templates: Some(vec![claim(
                        ObjectMeta {
                            name: Some(DATA_VOLUME.into()),
                            labels: Some(self.labels.clone()),
                            ..ObjectMeta::default()
                        },
                        volume,
                    )]),
                    ..StatefulSetSpec::default()
                }),
                ..StatefulSet::default()
            }),
            None => WorkloadObject::Deployment(Deployment {
                metadata: self.meta(&settings.name),
                spec: Some(DeploymentSpec {
                    replicas,
                    revision_history_limit: Some(3),
                    selector,
                    strategy: Some(rolling_update()),
                    template,
                    ..DeploymentSpec::default()
                }),
                ..Deployment::default()
            }),
        }
    }

    /// A component's environment: what berth sets, then the template's with its placeholders
    /// filled in. A value that is one `${secret:…}` reads the secret through a `secretKeyRef`;
    /// a secret inside other text goes through a variable of its own (`BERTH_SECRET_<NAME>`,
    /// set first) that Kubernetes expands as `$(…)`, so no pod spec ever holds a secret's value.
    /// Every other `$` is doubled, which Kubernetes reads as one `$`.
    fn component_env(&self, component: &ComponentSettings) -> Vec<EnvVar> {
        let plain = |name: &str, value: String| EnvVar {
            name: name.to_owned(),
            value: Some(value),
            ..EnvVar::default()
        };
        let secret = |name: &str, key: &str| EnvVar {
            name: name.to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: names::SECRETS.into(),
                    key: key.to_owned(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        };
        let mut env = vec![
            plain("PORT", component.port.to_string()),
            plain("BERTH_TENANT", self.template.tenant.clone()),
            plain("BERTH_SITE_NAME", self.site.name.clone()),
            plain("BERTH_SITE_HOSTNAME", self.site.hostname.clone()),
            plain("BERTH_COMPONENT", component.name.clone()),
        ];
        let mut referenced = BTreeSet::new();
        let mut own = Vec::new();
        for (name, value) in &component.env {
            // Checked when the configuration loaded.
            let pieces = parse_value(value).unwrap_or_default();
            if let [Piece::Placeholder(Placeholder::Secret(key))] = pieces.as_slice() {
                own.push(secret(name, key));
                continue;
            }
            let mut text = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(t) => text.push_str(&t.replace('$', "$$")),
                    Piece::Placeholder(Placeholder::Secret(key)) => {
                        text.push_str(&format!("$({})", secret_variable(&key)));
                        referenced.insert(key);
                    }
                    Piece::Placeholder(Placeholder::Component(other)) => text.push_str(&other),
                    Piece::Placeholder(Placeholder::SiteName) => text.push_str(&self.site.name),
                    Piece::Placeholder(Placeholder::SiteHostname) => {
                        text.push_str(&self.site.hostname)
                    }
                }
            }
            own.push(plain(name, text));
        }
        env.extend(
            referenced
                .iter()
                .map(|key| secret(&secret_variable(key), key)),
        );
        env.extend(own);
        env
    }

    /// Default deny and DNS as for every site; the ingress controller may reach the exposed
    /// component (and cert-manager's solver, with TLS); each component may reach what it
    /// depends on, on that component's port, and nothing else. The per-component policies are
    /// `ingress-to-<name>` and `egress-from-<name>`: no fixed policy name starts that way, so
    /// no component name can make one collide with another.
    fn stack_policies(&self, components: &[Sized], exposed: &Sized) -> Vec<NetworkPolicy> {
        let mut policies = self.guard_policies();
        let exposed = &exposed.settings;
        policies.push(self.reachable_from_ingress(
            names::ALLOW_INGRESS,
            match_labels([(names::COMPONENT_LABEL, exposed.name.as_str())]),
            &[i32::from(exposed.port)],
        ));
        if !self.template.kube.tls_issuer.is_empty() {
            policies.push(self.reachable_from_ingress(
                names::ALLOW_ACME_SOLVER,
                match_labels([(names::ACME_SOLVER_LABEL, "true")]),
                &[ACME_SOLVER_PORT],
            ));
        }
        let pods_of = |component: &str| NetworkPolicyPeer {
            pod_selector: Some(match_labels([(names::COMPONENT_LABEL, component)])),
            ..NetworkPolicyPeer::default()
        };
        let port = |name: &str| {
            components
                .iter()
                .find(|c| c.settings.name == name)
                .map_or(0, |c| i32::from(c.settings.port))
        };
        for component in components.iter().map(|c| c.settings) {
            let dependents: Vec<String> = components
                .iter()
                .filter(|c| c.settings.depends_on.contains(&component.name))
                .map(|c| c.settings.name.clone())
                .collect();
            if !dependents.is_empty() {
                policies.push(self.policy(
                    &format!("ingress-to-{}", component.name),
                    NetworkPolicySpec {
                        pod_selector: Some(match_labels([(
                            names::COMPONENT_LABEL,
                            component.name.as_str(),
                        )])),
                        policy_types: Some(vec!["Ingress".into()]),
                        ingress: Some(vec![NetworkPolicyIngressRule {
                            from: Some(vec![NetworkPolicyPeer {
                                pod_selector: Some(LabelSelector {
                                    match_expressions: Some(vec![LabelSelectorRequirement {
                                        key: names::COMPONENT_LABEL.into(),
                                        operator: "In".into(),
                                        values: Some(dependents),
                                    }]),
                                    ..LabelSelector::default()
                                }),
                                ..NetworkPolicyPeer::default()
                            }]),
                            ports: Some(vec![port_of("TCP", i32::from(component.port))]),
                        }]),
                        ..NetworkPolicySpec::default()
                    },
                ));
            }
            if !component.depends_on.is_empty() {
                policies.push(
                    self.policy(
                        &format!("egress-from-{}", component.name),
                        NetworkPolicySpec {
                            pod_selector: Some(match_labels([(
                                names::COMPONENT_LABEL,
                                component.name.as_str(),
                            )])),
                            policy_types: Some(vec!["Egress".into()]),
                            egress: Some(
                                component
                                    .depends_on
                                    .iter()
                                    .map(|dependency| NetworkPolicyEgressRule {
                                        to: Some(vec![pods_of(dependency)]),
                                        ports: Some(vec![port_of("TCP", port(dependency))]),
                                    })
                                    .collect(),
                            ),
                            ..NetworkPolicySpec::default()
                        },
                    ),
                );
            }
        }
        policies
    }
}

/// The variable a secret used inside other text is read into.
fn secret_variable(key: &str) -> String {
    format!("BERTH_SECRET_{}", key.to_ascii_uppercase())
}

#[cfg(test)]
mod tests;
