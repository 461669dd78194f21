use super::*;
use crate::configuration::{ComponentSettings, PlanSettings, VolumeSettings};

pub(super) fn kube() -> KubernetesSettings {
    KubernetesSettings::default()
}

pub(super) fn static_template() -> Template {
    Template {
        kube: kube(),
        tenant: "acme".into(),
        workload: WorkloadSettings::default(),
        plans: BTreeMap::from([(
            "price_pro".to_owned(),
            PlanSettings {
                name: "pro".into(),
                cpu: "500m".into(),
                memory: "1Gi".into(),
            },
        )]),
    }
}

fn container_template(volume: bool) -> Template {
    Template {
        workload: WorkloadSettings {
            kind: WorkloadKind::Container,
            image: "registry.example/shop:1.2".into(),
            port: Some(3000),
            env: BTreeMap::from([("SHOP_MODE".to_owned(), "live".to_owned())]),
            health_path: Some("/up".into()),
            volume: volume.then(|| VolumeSettings {
                size: "2Gi".into(),
                mount_path: "/data".into(),
                storage_class: "fast".into(),
            }),
            ..WorkloadSettings::default()
        },
        ..static_template()
    }
}

pub(super) fn site(plan: Option<&str>) -> SiteSpec {
    SiteSpec {
        id: "site_test".into(),
        tenant: "acme".into(),
        name: "my-shop".into(),
        hostname: "my-shop.acme.test".into(),
        html: Some("<h1>Hello</h1>".into()),
        plan: plan.map(str::to_owned),
        workload: None,
    }
}

/// A store: a database that keeps its data, and the app in front of it.
pub(super) fn stack_template() -> Template {
    let app = ComponentSettings {
        env: BTreeMap::from([
            ("DB_HOST".to_owned(), "${component:db}".to_owned()),
            ("DB_PASSWORD".to_owned(), "${secret:db_password}".to_owned()),
            (
                "DATABASE_URL".to_owned(),
                "mysql://app:${secret:db_password}@${component:db}:3306/shop".to_owned(),
            ),
            ("SITE_URL".to_owned(), "https://${site:hostname}".to_owned()),
            ("GREETING".to_owned(), "costs $(5), $${x}".to_owned()),
        ]),
        depends_on: vec!["db".into()],
        health_path: Some("/healthz".into()),
        memory: Some("512Mi".into()),
        writable: vec!["/var/run/app".into()],
        ..ComponentSettings::new("app", "registry.example/shop:2", 8080)
    };
    let db = ComponentSettings {
        env: BTreeMap::from([(
            "MARIADB_PASSWORD".to_owned(),
            "${secret:db_password}".to_owned(),
        )]),
        run_as_user: Some(999),
        cpu: Some("1".into()),
        volume: Some(VolumeSettings {
            size: "5Gi".into(),
            mount_path: "/var/lib/mysql".into(),
            storage_class: String::new(),
        }),
        writable: vec!["/run/mysqld".into()],
        ..ComponentSettings::new("db", "registry.example/mariadb:11", 3306)
    };
    Template {
        workload: WorkloadSettings {
            kind: WorkloadKind::Stack,
            expose: "app".into(),
            secrets: vec!["db_password".into(), "session_key".into()],
            // Listed app first: it still starts after the database it depends on.
            components: vec![app, db],
            ..WorkloadSettings::default()
        },
        ..static_template()
    }
}

fn every_kind() -> Vec<(&'static str, Manifests)> {
    vec![
        (
            "static",
            build(&static_template(), &site(None), Scale::Running).unwrap(),
        ),
        (
            "container",
            build(&container_template(false), &site(None), Scale::Running).unwrap(),
        ),
        (
            "container with a volume",
            build(
                &container_template(true),
                &site(Some("pro")),
                Scale::Running,
            )
            .unwrap(),
        ),
        (
            "stack",
            build(&stack_template(), &site(Some("pro")), Scale::Running).unwrap(),
        ),
    ]
}

/// The pod of a static or container site.
fn pod(manifests: &Manifests) -> &PodSpec {
    manifests
        .deployment()
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
}

/// Every pod a site runs.
pub(super) fn pods(manifests: &Manifests) -> Vec<&PodSpec> {
    manifests
        .workloads
        .iter()
        .map(|w| w.pod_spec().unwrap())
        .collect()
}

fn container(manifests: &Manifests) -> &Container {
    &pod(manifests).containers[0]
}

/// What the Pod Security `restricted` profile (latest) forbids, plus berth's own rule of a
/// read-only root filesystem. Returns every violation found.
pub(super) fn restricted_violations(pod: &PodSpec) -> Vec<String> {
    let mut found = Vec::new();
    let pod_sc = pod.security_context.clone().unwrap_or_default();
    for (field, set) in [
        ("hostNetwork", pod.host_network),
        ("hostPID", pod.host_pid),
        ("hostIPC", pod.host_ipc),
    ] {
        if set == Some(true) {
            found.push(format!("{field} is set"));
        }
    }
    if pod_sc.run_as_user == Some(0) {
        found.push("pod runs as UID 0".into());
    }
    // Baseline's (and so restricted's) safe sysctls.
    let safe_sysctls = [
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    ];
    for sysctl in pod_sc.sysctls.iter().flatten() {
        if !safe_sysctls.contains(&sysctl.name.as_str()) {
            found.push(format!("unsafe sysctl {}", sysctl.name));
        }
    }
    let allowed_volumes = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for volume in pod.volumes.iter().flatten() {
        let json = serde_json::to_value(volume).unwrap();
        for key in json.as_object().unwrap().keys().filter(|k| *k != "name") {
            if !allowed_volumes.contains(&key.as_str()) {
                found.push(format!("volume {} has type {key}", volume.name));
            }
        }
    }
    let pod_seccomp_ok = pod_sc
        .seccomp_profile
        .as_ref()
        .is_some_and(|p| p.type_ == "RuntimeDefault" || p.type_ == "Localhost");
    let containers = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten());
    for c in containers {
        let sc = c.security_context.clone().unwrap_or_default();
        let name = &c.name;
        if sc.privileged == Some(true) {
            found.push(format!("{name}: privileged"));
        }
        if sc.allow_privilege_escalation != Some(false) {
            found.push(format!("{name}: allowPrivilegeEscalation is not false"));
        }
        if sc.run_as_non_root != Some(true) && pod_sc.run_as_non_root != Some(true) {
            found.push(format!("{name}: runAsNonRoot is not true"));
        }
        if sc.run_as_user == Some(0) {
            found.push(format!("{name}: runs as UID 0"));
        }
        let seccomp_ok = match &sc.seccomp_profile {
            Some(p) => p.type_ == "RuntimeDefault" || p.type_ == "Localhost",
            None => pod_seccomp_ok,
        };
        if !seccomp_ok {
            found.push(format!(
                "{name}: seccomp is not RuntimeDefault or Localhost"
            ));
        }
        let caps = sc.capabilities.clone().unwrap_or_default();
        if !caps.drop.iter().flatten().any(|c| c == "ALL") {
            found.push(format!("{name}: capabilities do not drop ALL"));
        }
        if caps.add.iter().flatten().any(|c| c != "NET_BIND_SERVICE") {
            found.push(format!("{name}: adds capabilities"));
        }
        if c.ports
            .iter()
            .flatten()
            .any(|p| p.host_port.unwrap_or(0) != 0)
        {
            found.push(format!("{name}: uses a host port"));
        }
        if sc.read_only_root_filesystem != Some(true) {
            found.push(format!("{name}: root filesystem is writable"));
        }
    }
    found
}

#[test]
fn every_pod_passes_the_restricted_pod_security_profile() {
    for (kind, manifests) in every_kind() {
        for pod in pods(&manifests) {
            let violations = restricted_violations(pod);
            assert!(violations.is_empty(), "{kind}: {violations:?}");
            assert_eq!(pod.automount_service_account_token, Some(false), "{kind}");
            assert_eq!(pod.service_account_name.as_deref(), Some("site"), "{kind}");
            assert!(
                pod.security_context.as_ref().unwrap().run_as_user.unwrap() > 0,
                "{kind}"
            );
        }
    }
}

#[test]
fn the_checker_catches_what_restricted_forbids() {
    let manifests = build(&static_template(), &site(None), Scale::Running).unwrap();
    let good = pod(&manifests).clone();
    type Breakage = Box<dyn Fn(&mut PodSpec)>;
    let cases: Vec<(&str, Breakage)> = vec![
        (
            "an unsafe sysctl",
            Box::new(|p| {
                p.security_context.as_mut().unwrap().sysctls =
                    Some(vec![k8s_openapi::api::core::v1::Sysctl {
                        name: "kernel.msgmax".into(),
                        value: "1".into(),
                    }])
            }),
        ),
        (
            "privilege escalation allowed",
            Box::new(|p| {
                p.containers[0]
                    .security_context
                    .as_mut()
                    .unwrap()
                    .allow_privilege_escalation = None
            }),
        ),
        (
            "capabilities kept",
            Box::new(|p| {
                p.containers[0]
                    .security_context
                    .as_mut()
                    .unwrap()
                    .capabilities = None
            }),
        ),
        (
            "no seccomp profile",
            Box::new(|p| {
                p.containers[0]
                    .security_context
                    .as_mut()
                    .unwrap()
                    .seccomp_profile = None;
                p.security_context.as_mut().unwrap().seccomp_profile = None;
            }),
        ),
        (
            "root allowed",
            Box::new(|p| {
                p.containers[0]
                    .security_context
                    .as_mut()
                    .unwrap()
                    .run_as_non_root = None;
                p.security_context.as_mut().unwrap().run_as_non_root = None;
            }),
        ),
        (
            "a hostPath volume",
            Box::new(|p| {
                p.volumes.as_mut().unwrap().push(Volume {
                    name: "host".into(),
                    host_path: Some(Default::default()),
                    ..Volume::default()
                })
            }),
        ),
        (
            "a writable root filesystem",
            Box::new(|p| {
                p.containers[0]
                    .security_context
                    .as_mut()
                    .unwrap()
                    .read_only_root_filesystem = Some(false)
            }),
        ),
    ];
    for (why, break_it) in cases {
        let mut bad = good.clone();
        break_it(&mut bad);
        assert!(
            !restricted_violations(&bad).is_empty(),
            "the checker missed: {why}"
        );
    }
}

#[test]
fn the_namespace_is_restricted_and_labelled_for_berth_tenant_and_site() {
    let manifests = build(&static_template(), &site(None), Scale::Running).unwrap();
    let labels = manifests.namespace.metadata.labels.clone().unwrap();
    for mode in ["enforce", "warn", "audit"] {
        assert_eq!(
            labels[&format!("pod-security.kubernetes.io/{mode}")],
            "restricted"
        );
        assert_eq!(
            labels[&format!("pod-security.kubernetes.io/{mode}-version")],
            "latest"
        );
    }
    assert_eq!(labels["app.kubernetes.io/managed-by"], "berth");
    assert_eq!(labels["berth.dev/tenant"], "acme");
    assert_eq!(labels["berth.dev/site"], "my-shop");
    assert_eq!(
        manifests.namespace_name(),
        names::namespace("acme", "my-shop")
    );
}

#[test]
fn every_object_lives_in_the_sites_namespace_with_berths_labels() {
    for (kind, manifests) in every_kind() {
        let ns = manifests.namespace_name().to_owned();
        let objects = manifests.objects();
        assert_eq!(
            objects[0].resource.kind, "Namespace",
            "{kind}: namespace first"
        );
        assert_eq!(objects[0].namespace, None);
        for object in &objects[1..] {
            assert_eq!(object.namespace.as_deref(), Some(ns.as_str()), "{kind}");
        }
        for object in &objects {
            let what = object.describe();
            assert!(object.name.len() <= 63, "{kind}: {what}");
            assert_eq!(
                object.body["metadata"]["labels"]["app.kubernetes.io/managed-by"], "berth",
                "{kind}: {what}"
            );
            assert_eq!(
                object.body["metadata"]["labels"]["berth.dev/site"],
                "my-shop"
            );
            assert_eq!(
                object.body["metadata"]["labels"]["berth.dev/tenant"],
                "acme"
            );
            // Server-side apply needs both, and nothing berth does not mean to own.
            assert!(object.body["apiVersion"].is_string(), "{kind}: {what}");
            assert!(object.body["kind"].is_string(), "{kind}: {what}");
            assert!(object.body.get("status").is_none(), "{kind}: {what}");
        }
        let kinds: Vec<&str> = objects.iter().map(|o| o.resource.kind.as_str()).collect();
        let position = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
        let first_workload = kinds
            .iter()
            .position(|x| *x == "Deployment" || *x == "StatefulSet")
            .unwrap();
        assert!(position("ResourceQuota") < first_workload, "{kind}");
        assert!(position("NetworkPolicy") < first_workload, "{kind}");
        assert!(position("ServiceAccount") < first_workload, "{kind}");
        assert!(position("Service") < first_workload, "{kind}");
        assert!(first_workload < position("Ingress"), "{kind}");
    }
}

#[test]
fn quota_and_limits_come_from_the_plan() {
    let manifests = build(&static_template(), &site(Some("pro")), Scale::Running).unwrap();
    let hard = manifests.quota.spec.clone().unwrap().hard.unwrap();
    let q = |k: &str| hard[k].0.clone();
    // Room for a second pod during a rolling update.
    assert_eq!(q("limits.cpu"), "1");
    assert_eq!(q("requests.cpu"), "1");
    assert_eq!(q("limits.memory"), "2Gi");
    assert_eq!(q("requests.memory"), "2Gi");
    assert_eq!(q("pods"), "2");
    assert_eq!(q("services.loadbalancers"), "0");
    assert_eq!(q("services.nodeports"), "0");
    assert_eq!(q("persistentvolumeclaims"), "0");

    let item = &manifests.limits.spec.clone().unwrap().limits[0];
    assert_eq!(item.type_, "Container");
    for values in [&item.default, &item.default_request, &item.max] {
        let values = values.clone().unwrap();
        assert_eq!(values["cpu"].0, "500m");
        assert_eq!(values["memory"].0, "1Gi");
    }
    let resources = container(&manifests).resources.clone().unwrap();
    assert_eq!(resources.requests, resources.limits);
    assert_eq!(resources.limits.unwrap()["cpu"].0, "500m");

    // The plan's key works as well as its name; no plan means the default plan.
    let by_key = build(&static_template(), &site(Some("price_pro")), Scale::Running).unwrap();
    assert_eq!(by_key.quota, manifests.quota);
    let default = build(&static_template(), &site(None), Scale::Running).unwrap();
    let limits = container(&default)
        .resources
        .clone()
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(limits["cpu"].0, "250m");
    assert_eq!(limits["memory"].0, "256Mi");

    let err = build(&static_template(), &site(Some("gold")), Scale::Running).unwrap_err();
    assert!(matches!(err, ManifestError::UnknownPlan(..)), "{err}");
}

#[test]
fn a_volume_gets_a_claim_a_quota_and_a_recreate_rollout() {
    let manifests = build(&container_template(true), &site(None), Scale::Running).unwrap();
    let claim = manifests.volume.clone().unwrap();
    let spec = claim.spec.unwrap();
    assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        spec.resources.unwrap().requests.unwrap()["storage"].0,
        "2Gi"
    );
    let hard = manifests.quota.spec.clone().unwrap().hard.unwrap();
    assert_eq!(hard["persistentvolumeclaims"].0, "1");
    assert_eq!(hard["requests.storage"].0, "2Gi");
    let strategy = manifests
        .deployment()
        .spec
        .clone()
        .unwrap()
        .strategy
        .unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
    let mounts = container(&manifests).volume_mounts.clone().unwrap();
    assert!(mounts
        .iter()
        .any(|m| m.mount_path == "/data" && m.name == "data"));
    assert_eq!(
        pod(&manifests).security_context.as_ref().unwrap().fs_group,
        Some(10001),
        "the volume is writable by the workload's group"
    );
}

#[test]
fn network_traffic_is_denied_except_dns_and_the_ingress_controller() {
    let manifests = build(&static_template(), &site(None), Scale::Running).unwrap();
    let policies: BTreeMap<String, NetworkPolicySpec> = manifests
        .network_policies
        .iter()
        .map(|p| (p.metadata.name.clone().unwrap(), p.spec.clone().unwrap()))
        .collect();
    let deny = &policies["default-deny"];
    assert_eq!(deny.pod_selector, Some(LabelSelector::default()));
    assert_eq!(
        deny.policy_types.as_deref(),
        Some(&["Ingress".to_owned(), "Egress".to_owned()][..])
    );
    assert!(deny.ingress.is_none() && deny.egress.is_none());

    let dns = serde_json::to_value(&policies["allow-dns-egress"]).unwrap();
    assert_eq!(
        dns["egress"][0]["to"][0]["namespaceSelector"]["matchLabels"]
            ["kubernetes.io/metadata.name"],
        "kube-system"
    );
    assert_eq!(dns["egress"][0]["ports"][0]["port"], 53);
    assert_eq!(dns["egress"][0]["ports"][0]["protocol"], "UDP");
    assert_eq!(dns["egress"][0]["ports"][1]["protocol"], "TCP");
    assert!(dns.get("ingress").is_none());

    let ingress = serde_json::to_value(&policies["allow-from-ingress-controller"]).unwrap();
    let from = &ingress["ingress"][0]["from"];
    assert_eq!(from.as_array().unwrap().len(), 1);
    assert_eq!(
        from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "ingress-nginx"
    );
    assert_eq!(
        ingress["ingress"][0]["ports"],
        serde_json::json!([{"port": 8080, "protocol": "TCP"}])
    );
    assert!(ingress.get("egress").is_none());

    // With TLS, cert-manager's HTTP-01 solver (in the site's namespace) must be reachable too.
    let mut tls = static_template();
    tls.kube.tls_issuer = "letsencrypt".into();
    let manifests = build(&tls, &site(None), Scale::Running).unwrap();
    let ingress = serde_json::to_value(&manifests.network_policies[2]).unwrap();
    assert_eq!(
        ingress["spec"]["ingress"][0]["ports"],
        serde_json::json!([{"port": 8080, "protocol": "TCP"}, {"port": 8089, "protocol": "TCP"}])
    );
}

#[test]
fn the_service_account_has_no_token() {
    for (kind, manifests) in every_kind() {
        assert_eq!(
            manifests.service_account.automount_service_account_token,
            Some(false),
            "{kind}"
        );
    }
}

#[test]
fn containers_have_probes_requests_and_limits() {
    for (kind, manifests) in every_kind() {
        for c in pods(&manifests).into_iter().map(|p| &p.containers[0]) {
            assert!(c.readiness_probe.is_some(), "{kind}");
            assert!(c.liveness_probe.is_some(), "{kind}");
            let resources = c.resources.clone().unwrap();
            for key in ["cpu", "memory"] {
                assert!(
                    resources.requests.as_ref().unwrap().contains_key(key),
                    "{kind}"
                );
                assert!(
                    resources.limits.as_ref().unwrap().contains_key(key),
                    "{kind}"
                );
                assert_eq!(resources.requests, resources.limits, "{kind}");
            }
        }
    }
    let container_site = build(&container_template(false), &site(None), Scale::Running).unwrap();
    let probe = container(&container_site).readiness_probe.clone().unwrap();
    assert_eq!(probe.http_get.unwrap().path.as_deref(), Some("/up"));
    let mut no_path = container_template(false);
    no_path.workload.health_path = None;
    let tcp = build(&no_path, &site(None), Scale::Running).unwrap();
    assert!(container(&tcp)
        .readiness_probe
        .clone()
        .unwrap()
        .tcp_socket
        .is_some());
}

#[test]
fn a_static_site_is_nginx_serving_the_html_from_a_config_map() {
    let manifests = build(&static_template(), &site(None), Scale::Running).unwrap();
    let c = container(&manifests);
    assert_eq!(
        c.image.as_deref(),
        Some("docker.io/nginxinc/nginx-unprivileged:1.28-alpine")
    );
    assert_eq!(c.ports.clone().unwrap()[0].container_port, 8080);
    let data = manifests.content.clone().unwrap().data.unwrap();
    assert_eq!(data["index.html"], "<h1>Hello</h1>");
    assert!(data["default.conf"].contains("listen 8080;"));
    assert!(data["default.conf"].contains(r#"Content-Security-Policy "sandbox" always"#));
    let mounts: BTreeMap<String, bool> = c
        .volume_mounts
        .clone()
        .unwrap()
        .into_iter()
        .map(|m| (m.mount_path, m.read_only == Some(true)))
        .collect();
    assert!(mounts["/usr/share/nginx/html"], "read-only");
    assert!(mounts["/etc/nginx/conf.d"], "read-only");
    // nginx writes its pid, temp files and cache here; the root filesystem is read-only.
    assert!(!mounts["/tmp"], "writable");
    assert!(!mounts["/var/cache/nginx"], "writable");
    assert!(manifests.env.is_none() && manifests.volume.is_none());

    let mut no_html = site(None);
    no_html.html = None;
    let err = build(&static_template(), &no_html, Scale::Running).unwrap_err();
    assert!(matches!(err, ManifestError::MissingHtml), "{err}");
}

#[test]
fn a_container_workload_gets_its_image_port_and_environment_from_a_secret() {
    let manifests = build(&container_template(false), &site(None), Scale::Running).unwrap();
    let c = container(&manifests);
    assert_eq!(c.image.as_deref(), Some("registry.example/shop:1.2"));
    assert_eq!(c.ports.clone().unwrap()[0].container_port, 3000);
    let secret = manifests.env.clone().unwrap();
    assert_eq!(secret.data.unwrap()["SHOP_MODE"].0, b"live");
    assert_eq!(
        c.env_from.clone().unwrap()[0]
            .secret_ref
            .clone()
            .unwrap()
            .name,
        "site-env"
    );
    let env: BTreeMap<String, String> = c
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap()))
        .collect();
    assert_eq!(env["PORT"], "3000");
    assert_eq!(env["BERTH_SITE_HOSTNAME"], "my-shop.acme.test");
    assert!(manifests.content.is_none());
}

#[test]
fn the_ingress_routes_the_hostname_through_the_class_with_optional_tls() {
    let manifests = build(&static_template(), &site(None), Scale::Running).unwrap();
    let ingress = serde_json::to_value(&manifests.ingress).unwrap();
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["rules"][0]["host"], "my-shop.acme.test");
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "site"
    );
    assert!(ingress["spec"].get("tls").is_none());
    assert!(ingress["metadata"].get("annotations").is_none());

    let mut tls = static_template();
    tls.kube.tls_issuer = "letsencrypt".into();
    tls.kube.ingress_class = "traefik".into();
    let manifests = build(&tls, &site(None), Scale::Running).unwrap();
    let ingress = serde_json::to_value(&manifests.ingress).unwrap();
    assert_eq!(ingress["spec"]["ingressClassName"], "traefik");
    assert_eq!(
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt"
    );
    assert_eq!(ingress["spec"]["tls"][0]["hosts"][0], "my-shop.acme.test");
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "site-tls");

    // No class configured: the cluster's default IngressClass.
    let mut default_class = static_template();
    default_class.kube.ingress_class = String::new();
    let manifests = build(&default_class, &site(None), Scale::Running).unwrap();
    let spec = serde_json::to_value(&manifests.ingress).unwrap()["spec"].clone();
    assert!(spec.get("ingressClassName").is_none(), "{spec}");
}

#[test]
fn the_same_site_always_gives_the_same_objects_and_new_html_rolls_the_pods() {
    let first = build(&static_template(), &site(None), Scale::Running).unwrap();
    let again = build(&static_template(), &site(None), Scale::Running).unwrap();
    let bodies = |m: &Manifests| m.objects().into_iter().map(|o| o.body).collect::<Vec<_>>();
    assert_eq!(bodies(&first), bodies(&again));

    let mut changed = site(None);
    changed.html = Some("<h1>New</h1>".into());
    let changed = build(&static_template(), &changed, Scale::Running).unwrap();
    let hash = |m: &Manifests| {
        m.deployment()
            .spec
            .clone()
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()[CONFIG_HASH_ANNOTATION]
            .clone()
    };
    assert_ne!(hash(&first), hash(&changed));
}

#[test]
fn suspended_differs_only_in_replicas() {
    let running = build(&static_template(), &site(None), Scale::Running).unwrap();
    let suspended = build(&static_template(), &site(None), Scale::Suspended).unwrap();
    assert_eq!(running.deployment().spec.clone().unwrap().replicas, Some(1));
    assert_eq!(
        suspended.deployment().spec.clone().unwrap().replicas,
        Some(0)
    );
    let mut resumed = suspended.deployment().clone();
    resumed.spec.as_mut().unwrap().replicas = Some(1);
    assert_eq!(&resumed, running.deployment());
}

#[test]
fn every_object_round_trips_through_its_api_type() {
    // Deserialising into the typed k8s-openapi struct catches fields in the wrong place.
    for (kind, manifests) in every_kind() {
        for object in manifests.objects() {
            let what = format!("{kind}: {}", object.describe());
            let body = object.body.clone();
            let back = match object.resource.kind.as_str() {
                "Namespace" => to_json::<Namespace>(body),
                "ResourceQuota" => to_json::<ResourceQuota>(body),
                "LimitRange" => to_json::<LimitRange>(body),
                "NetworkPolicy" => to_json::<NetworkPolicy>(body),
                "ServiceAccount" => to_json::<ServiceAccount>(body),
                "ConfigMap" => to_json::<ConfigMap>(body),
                "Secret" => to_json::<Secret>(body),
                "PersistentVolumeClaim" => to_json::<PersistentVolumeClaim>(body),
                "Service" => to_json::<Service>(body),
                "Deployment" => to_json::<Deployment>(body),
                "StatefulSet" => to_json::<StatefulSet>(body),
                "Ingress" => to_json::<Ingress>(body),
                other => panic!("{what}: unexpected kind {other}"),
            };
            assert_eq!(back, object.body, "{what}");
        }
    }
}

pub(super) fn to_json<K: serde::de::DeserializeOwned + Serialize>(
    body: serde_json::Value,
) -> serde_json::Value {
    let typed: K = serde_json::from_value(body).unwrap();
    serde_json::to_value(typed).unwrap()
}

#[test]
fn yaml_has_one_document_per_object_in_apply_order() {
    let manifests = build(&container_template(true), &site(None), Scale::Running).unwrap();
    let yaml = manifests.to_yaml().unwrap();
    let documents: Vec<&str> = yaml.split("---\n").filter(|d| !d.is_empty()).collect();
    let objects = manifests.objects();
    assert_eq!(documents.len(), objects.len(), "{yaml}");
    for (document, object) in documents.iter().zip(&objects) {
        assert!(
            document.contains(&format!("kind: {}", object.resource.kind)),
            "{document}"
        );
        let parsed: serde_json::Value = serde_saphyr::from_str(document).unwrap();
        assert_eq!(parsed, object.body, "{document}");
    }
}
