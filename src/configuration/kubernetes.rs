//! `[kubernetes]`: the kubernetes runtime shared by every tenant that uses it, and what that
//! runtime needs of such a tenant.

use serde::{Deserialize, Serialize};

use super::error::{invalid, ConfigError};
use super::stack::{is_env_name, validate_stack};
use super::{RuntimeKind, TenantSettings, WorkloadKind};

/// The `kubernetes` runtime (SPEC §2.4), shared by every tenant that uses it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesSettings {
    /// A kubeconfig file; empty = the in-cluster service account.
    pub kubeconfig: String,
    /// The kubeconfig context; empty = its current context.
    pub context: String,
    /// `spec.ingressClassName` of every site's Ingress; empty = the cluster's default class.
    pub ingress_class: String,
    /// The ingress controller's namespace: the only one allowed in by the NetworkPolicy.
    pub ingress_namespace: String,
    /// A cert-manager ClusterIssuer; empty = Ingresses without TLS.
    pub tls_issuer: String,
    /// The unprivileged nginx image that serves static sites (listens on 8080, runs as 101).
    pub static_image: String,
    /// Deadline of one API request (a watch is bounded by the wait it serves instead).
    pub request_timeout_secs: u64,
    /// How long deprovisioning waits for a namespace to be gone before the job retries.
    pub delete_timeout_secs: u64,
    /// How long a stack's component waits for the components it depends on to be ready
    /// before it starts (then the job retries).
    pub start_timeout_secs: u64,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        Self {
            kubeconfig: String::new(),
            context: String::new(),
            ingress_class: "nginx".into(),
            ingress_namespace: "ingress-nginx".into(),
            tls_issuer: String::new(),
            static_image: "docker.io/nginxinc/nginx-unprivileged:1.28-alpine".into(),
            request_timeout_secs: 30,
            delete_timeout_secs: 300,
            start_timeout_secs: 300,
        }
    }
}

impl KubernetesSettings {
    /// The runtime's own keys; `tenants` say whether any tenant uses it (the ingress namespace
    /// is then needed).
    pub(super) fn validate(&self, tenants: &[TenantSettings]) -> Result<(), ConfigError> {
        if self.request_timeout_secs == 0 {
            return Err(invalid(
                "kubernetes.request_timeout_secs",
                "must be at least 1",
            ));
        }
        if self.delete_timeout_secs == 0 {
            return Err(invalid(
                "kubernetes.delete_timeout_secs",
                "must be at least 1",
            ));
        }
        if self.start_timeout_secs == 0 {
            return Err(invalid(
                "kubernetes.start_timeout_secs",
                "must be at least 1",
            ));
        }
        if self.static_image.is_empty() {
            return Err(invalid("kubernetes.static_image", "must not be empty"));
        }
        let uses_kubernetes = tenants.iter().any(|t| t.runtime == RuntimeKind::Kubernetes);
        if uses_kubernetes && self.ingress_namespace.is_empty() {
            return Err(invalid(
                "kubernetes.ingress_namespace",
                "is needed: only the ingress controller's namespace may reach the sites",
            ));
        }
        Ok(())
    }
}

/// The largest HTML a static site on Kubernetes may have: it travels in a ConfigMap, whose data
/// is limited to 1 MiB (the nginx configuration shares it).
pub const KUBERNETES_HTML_MAX_BYTES: usize = 900 * 1024;

/// Checks what the kubernetes runtime needs of a tenant; errors are `(key under the tenant,
/// message)`.
pub(super) fn validate_kubernetes_tenant(tenant: &TenantSettings) -> Result<(), (String, String)> {
    use crate::domain::quantity::{Bytes, Cpu};
    let fail = |key: &str, message: String| Err((key.to_owned(), message));
    if tenant.html_max_bytes > KUBERNETES_HTML_MAX_BYTES {
        return fail(
            "html_max_bytes",
            format!("must be at most {KUBERNETES_HTML_MAX_BYTES} with the kubernetes runtime (the HTML goes in a ConfigMap)"),
        );
    }
    for (price, plan) in &tenant.plans {
        Cpu::parse(&plan.cpu).map_err(|m| (format!("plans.{price}.cpu"), m))?;
        Bytes::parse(&plan.memory).map_err(|m| (format!("plans.{price}.memory"), m))?;
    }
    let workload = &tenant.workload;
    if workload.kind == WorkloadKind::Stack {
        return validate_stack(workload);
    }
    for (key, set) in [
        ("workload.expose", !workload.expose.is_empty()),
        ("workload.secrets", !workload.secrets.is_empty()),
        ("workload.components", !workload.components.is_empty()),
    ] {
        if set {
            return fail(key, "belongs to a stack (workload.kind = \"stack\")".into());
        }
    }
    if workload.port == Some(0) {
        return fail("workload.port", "must be from 1 to 65535".into());
    }
    if let Some(uid) = workload.run_as_user {
        if uid < 1 {
            return fail(
                "workload.run_as_user",
                "must be a non-root UID (1 or more)".into(),
            );
        }
    }
    if let Some(path) = &workload.health_path {
        if !path.starts_with('/') {
            return fail("workload.health_path", "must start with /".into());
        }
    }
    for name in workload.env.keys() {
        if !is_env_name(name) {
            return fail(
                &format!("workload.env.{name}"),
                "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)".into(),
            );
        }
    }
    if let Some(volume) = &workload.volume {
        if workload.kind != WorkloadKind::Container {
            return fail(
                "workload.volume",
                "only container workloads have volumes".into(),
            );
        }
        Bytes::parse(&volume.size).map_err(|m| ("workload.volume.size".to_owned(), m))?;
        let path = volume.mount_path.trim_end_matches('/');
        if !volume.mount_path.starts_with('/') || path.is_empty() || path == "/tmp" {
            return fail(
                "workload.volume.mount_path",
                "must be an absolute path other than / and /tmp".into(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::configuration::tests::load;

    #[test]
    fn a_kubernetes_tenant_is_checked_for_what_the_runtime_needs() {
        let tenant =
            |rest: &str| format!("[[tenants]]\nname = \"k\"\nruntime = \"kubernetes\"\n{rest}\n");
        let good = load(
            &tenant("workload = { kind = \"container\", image = \"shop:1\", port = 3000, env = { MODE = \"live\" }, volume = { size = \"1Gi\", mount_path = \"/data\" } }\nplans = { p = { name = \"pro\", cpu = \"1.5\", memory = \"1Gi\" } }"),
            &[],
        );
        assert!(good.is_ok(), "{good:?}");
        for (rest, key, why) in [
            ("html_max_bytes = 2000000", "tenants[0].html_max_bytes", "the HTML must fit a ConfigMap"),
            ("plans = { p = { name = \"pro\", cpu = \"lots\" } }", "tenants[0].plans.p.cpu", "not a CPU amount"),
            ("plans = { p = { name = \"pro\", memory = \"1GB\" } }", "tenants[0].plans.p.memory", "not a Kubernetes size"),
            ("workload = { kind = \"container\", image = \"x\", port = 0 }", "tenants[0].workload.port", "port 0"),
            ("workload = { kind = \"container\", image = \"x\", run_as_user = 0 }", "tenants[0].workload.run_as_user", "root"),
            ("workload = { kind = \"container\", image = \"x\", env = { \"BAD-NAME\" = \"1\" } }", "tenants[0].workload.env.BAD-NAME", "not an env name"),
            ("workload = { kind = \"container\", image = \"x\", health_path = \"up\" }", "tenants[0].workload.health_path", "relative path"),
            ("workload = { kind = \"static\", volume = { size = \"1Gi\", mount_path = \"/data\" } }", "tenants[0].workload.volume", "a static site has no volume"),
            ("workload = { kind = \"container\", image = \"x\", volume = { size = \"big\", mount_path = \"/data\" } }", "tenants[0].workload.volume.size", "bad size"),
            ("workload = { kind = \"container\", image = \"x\", volume = { size = \"1Gi\", mount_path = \"/tmp\" } }", "tenants[0].workload.volume.mount_path", "/tmp is the scratch dir"),
        ] {
            let err = load(&tenant(rest), &[]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{key}:")), "{why}: {err}");
        }
        let err = load("[kubernetes]\nrequest_timeout_secs = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("kubernetes.request_timeout_secs:"), "{err}");
        let no_ingress = format!("[kubernetes]\ningress_namespace = \"\"\n{}", tenant(""));
        let err = load(&no_ingress, &[]).unwrap_err().to_string();
        assert!(err.starts_with("kubernetes.ingress_namespace:"), "{err}");
        // A local tenant's plans are not Kubernetes quantities, and need not be.
        assert!(load(
            "[[tenants]]\nname = \"l\"\nplans = { p = { name = \"x\", cpu = \"lots\" } }\n",
            &[]
        )
        .is_ok());
    }
}
