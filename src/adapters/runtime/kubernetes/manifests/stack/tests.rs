use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, PodSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::super::tests::{kube, pods, restricted_violations, site, stack_template};
use super::super::{build, Manifests, Scale, Template, WorkloadObject};
use super::GENERATED_ANNOTATION;

fn store() -> Manifests {
    build(&stack_template(), &site(Some("pro")), Scale::Running).unwrap()
}

fn pod<'a>(manifests: &'a Manifests, component: &str) -> &'a PodSpec {
    manifests
        .workload(component)
        .and_then(WorkloadObject::pod_spec)
        .unwrap()
}

fn env<'a>(manifests: &'a Manifests, component: &str) -> &'a [EnvVar] {
    pod(manifests, component).containers[0]
        .env
        .as_deref()
        .unwrap()
}

fn policy<'a>(manifests: &'a Manifests, name: &str) -> &'a NetworkPolicy {
    manifests
        .network_policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no network policy {name}"))
}

#[test]
fn a_component_with_a_volume_is_a_stateful_set_the_others_deployments_in_start_order() {
    let manifests = store();
    let names = |kind: &str| -> Vec<String> {
        manifests
            .objects()
            .iter()
            .filter(|o| o.resource.kind == kind)
            .map(|o| o.name.clone())
            .collect()
    };
    assert_eq!(names("Service"), ["db", "app"], "the database first");
    assert_eq!(names("StatefulSet"), ["db"]);
    assert_eq!(names("Deployment"), ["app"]);
    let order: Vec<&str> = manifests
        .workloads
        .iter()
        .map(WorkloadObject::name)
        .collect();
    assert_eq!(
        order,
        ["db", "app"],
        "app depends on db, so db starts first"
    );

    let WorkloadObject::StatefulSet(db) = &manifests.workloads[0] else {
        panic!("db is a StatefulSet");
    };
    let spec = db.spec.as_ref().unwrap();
    assert_eq!(spec.service_name.as_deref(), Some("db"));
    assert_eq!(spec.replicas, Some(1));
    let claim = &spec.volume_claim_templates.as_ref().unwrap()[0];
    assert_eq!(claim.metadata.name.as_deref(), Some("data"));
    assert_eq!(
        claim
            .spec
            .as_ref()
            .unwrap()
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0,
        "5Gi"
    );
    let mounts = pod(&manifests, "db").containers[0]
        .volume_mounts
        .clone()
        .unwrap();
    let mounted: BTreeMap<String, String> =
        mounts.into_iter().map(|m| (m.mount_path, m.name)).collect();
    assert_eq!(mounted["/var/lib/mysql"], "data");
    assert_eq!(mounted["/run/mysqld"], "scratch-0");
    assert_eq!(mounted["/tmp"], "tmp");
    assert_eq!(
        manifests.volume, None,
        "the claim comes from the StatefulSet's template"
    );

    // Each Service selects its own component's pods, on the component's own port.
    for (service, port) in manifests.services.iter().zip([3306, 8080]) {
        let name = service.metadata.name.clone().unwrap();
        let spec = service.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.selector.as_ref().unwrap()["berth.dev/component"], name);
        assert_eq!(spec.ports.as_ref().unwrap()[0].port, port, "{name}");
    }
    let backend = manifests
        .ingress
        .spec
        .as_ref()
        .unwrap()
        .rules
        .as_ref()
        .unwrap()[0]
        .http
        .as_ref()
        .unwrap()
        .paths[0]
        .backend
        .service
        .clone()
        .unwrap();
    assert_eq!(
        backend.name, "app",
        "the Ingress routes to the exposed component"
    );
}

#[test]
fn secrets_reach_pods_only_through_secret_key_refs_and_the_rest_is_filled_in() {
    let manifests = store();
    let app = env(&manifests, "app");
    let get = |name: &str| app.iter().find(|e| e.name == name).unwrap();
    let reference = |e: &EnvVar| {
        let source = e
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        (source.name.clone(), source.key.clone())
    };
    assert_eq!(get("DB_HOST").value.as_deref(), Some("db"));
    assert_eq!(get("DB_PASSWORD").value, None);
    assert_eq!(
        reference(get("DB_PASSWORD")),
        ("site-secrets".to_owned(), "db_password".to_owned())
    );
    // A secret inside other text: a variable of its own, defined before the one that uses it.
    let url = get("DATABASE_URL");
    assert_eq!(
        url.value.as_deref(),
        Some("mysql://app:$(BERTH_SECRET_DB_PASSWORD)@db:3306/shop")
    );
    let position = |name: &str| app.iter().position(|e| e.name == name).unwrap();
    assert!(position("BERTH_SECRET_DB_PASSWORD") < position("DATABASE_URL"));
    assert_eq!(
        reference(get("BERTH_SECRET_DB_PASSWORD")),
        ("site-secrets".to_owned(), "db_password".to_owned())
    );
    assert_eq!(
        get("SITE_URL").value.as_deref(),
        Some("https://my-shop.acme.test")
    );
    // Kubernetes reads `$$` as `$`, so the value arrives as written, not expanded.
    assert_eq!(get("GREETING").value.as_deref(), Some("costs $$(5), $${x}"));
    assert_eq!(get("BERTH_COMPONENT").value.as_deref(), Some("app"));
    assert_eq!(get("PORT").value.as_deref(), Some("8080"));

    let db = env(&manifests, "db");
    assert!(
        !db.iter().any(|e| e.name == "BERTH_SECRET_DB_PASSWORD"),
        "only where a secret is used inside text"
    );

    // The Secret names the keys to generate and holds no value: berth never knows them.
    let secrets = manifests.secrets.as_ref().unwrap();
    assert_eq!(secrets.metadata.name.as_deref(), Some("site-secrets"));
    assert_eq!(
        secrets.metadata.annotations.as_ref().unwrap()[GENERATED_ANNOTATION],
        "db_password,session_key"
    );
    assert_eq!(secrets.data, None);
    assert_eq!(secrets.string_data, None);
}

#[test]
fn network_policies_let_through_exactly_the_declared_traffic() {
    let manifests = store();
    let names: Vec<&str> = manifests
        .network_policies
        .iter()
        .map(|p| p.metadata.name.as_deref().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "default-deny",
            "allow-dns-egress",
            "allow-from-ingress-controller",
            "ingress-to-db",
            "egress-from-app"
        ]
    );
    let json = |p: &NetworkPolicy| serde_json::to_value(p.spec.as_ref().unwrap()).unwrap();

    let from_ingress = json(policy(&manifests, "allow-from-ingress-controller"));
    assert_eq!(
        from_ingress["podSelector"],
        serde_json::json!({"matchLabels": {"berth.dev/component": "app"}}),
        "only the exposed component"
    );
    assert_eq!(
        from_ingress["ingress"][0]["ports"],
        serde_json::json!([{"port": 8080, "protocol": "TCP"}])
    );

    let to_db = json(policy(&manifests, "ingress-to-db"));
    assert_eq!(
        to_db["podSelector"]["matchLabels"]["berth.dev/component"],
        "db"
    );
    assert_eq!(
        to_db["ingress"],
        serde_json::json!([{
            "from": [{"podSelector": {"matchExpressions": [
                {"key": "berth.dev/component", "operator": "In", "values": ["app"]}
            ]}}],
            "ports": [{"port": 3306, "protocol": "TCP"}]
        }])
    );
    let from_app = json(policy(&manifests, "egress-from-app"));
    assert_eq!(from_app["policyTypes"], serde_json::json!(["Egress"]));
    assert_eq!(
        from_app["egress"],
        serde_json::json!([{
            "to": [{"podSelector": {"matchLabels": {"berth.dev/component": "db"}}}],
            "ports": [{"port": 3306, "protocol": "TCP"}]
        }])
    );

    // With TLS, cert-manager's solver pods (and only they) are reachable on its port.
    let tls = Template {
        kube: crate::configuration::KubernetesSettings {
            tls_issuer: "letsencrypt".into(),
            ..kube()
        },
        ..stack_template()
    };
    let manifests = build(&tls, &site(None), Scale::Running).unwrap();
    let solver = json(policy(&manifests, "allow-acme-solver"));
    assert_eq!(
        solver["podSelector"],
        serde_json::json!({"matchLabels": {"acme.cert-manager.io/http01-solver": "true"}})
    );
    assert_eq!(solver["ingress"][0]["ports"][0]["port"], 8089);
}

#[test]
fn the_quota_covers_every_component_and_an_update_of_each() {
    let manifests = store();
    let hard = manifests.quota.spec.clone().unwrap().hard.unwrap();
    let get = |key: &str| hard[key].0.clone();
    // The plan is 500m / 1Gi. db: 1 CPU, the plan's memory, one pod (a StatefulSet replaces
    // its pod); app: the plan's CPU, 512Mi, two pods during an update; plus one plan-sized
    // pod for cert-manager's solver.
    assert_eq!(get("pods"), "4");
    assert_eq!(get("requests.cpu"), "2500m");
    assert_eq!(get("limits.cpu"), "2500m");
    assert_eq!(get("requests.memory"), "3Gi");
    assert_eq!(get("persistentvolumeclaims"), "1");
    assert_eq!(get("requests.storage"), "5Gi");
    let limits = manifests.limits.spec.clone().unwrap().limits[0].clone();
    assert_eq!(
        limits.default.unwrap()["cpu"].0,
        "500m",
        "the plan by default"
    );
    assert_eq!(
        limits.max.unwrap()["cpu"].0,
        "1",
        "the largest component fits"
    );

    let db = &pod(&manifests, "db").containers[0];
    let resources = db.resources.clone().unwrap();
    assert_eq!(resources.limits.unwrap()["cpu"].0, "1");
    assert_eq!(resources.requests.unwrap()["memory"].0, "1Gi");
    assert_eq!(
        pod(&manifests, "db")
            .security_context
            .as_ref()
            .unwrap()
            .run_as_user,
        Some(999)
    );
    assert_eq!(
        pod(&manifests, "app")
            .security_context
            .as_ref()
            .unwrap()
            .run_as_user,
        Some(10001)
    );
}

#[test]
fn every_component_passes_restricted_and_suspending_scales_each_to_zero() {
    let running = store();
    for pod in pods(&running) {
        assert_eq!(restricted_violations(pod), Vec::<String>::new());
    }
    let suspended = build(&stack_template(), &site(Some("pro")), Scale::Suspended).unwrap();
    for (up, down) in running.workloads.iter().zip(&suspended.workloads) {
        assert_eq!(up.replicas(), Some(1), "{}", up.name());
        assert_eq!(down.replicas(), Some(0), "{}", down.name());
    }
    let bodies = |m: &Manifests| {
        m.objects()
            .into_iter()
            .filter(|o| !matches!(o.resource.kind.as_str(), "Deployment" | "StatefulSet"))
            .map(|o| o.body)
            .collect::<Vec<_>>()
    };
    assert_eq!(bodies(&running), bodies(&suspended), "nothing else changes");
    let again = store();
    assert_eq!(
        running.to_yaml().unwrap(),
        again.to_yaml().unwrap(),
        "the same site always gives the same objects"
    );
}

/// The templates in `deploy/examples/` load, and every site they make passes `restricted`,
/// holds no secret value and survives a round trip through the Kubernetes API types.
#[test]
fn the_example_templates_build_sites_that_pass_restricted() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let settings = crate::configuration::Settings::load_from_text(&path, &text, Vec::new())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let tenant = &settings.tenants[0];
        let template = Template::new(&settings.kubernetes, tenant);
        let plans = tenant.plans.values().map(|p| Some(p.name.clone()));
        for plan in std::iter::once(None).chain(plans) {
            let mut spec = site(plan.as_deref());
            spec.tenant = tenant.name.clone();
            let manifests = build(&template, &spec, Scale::Running)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for pod in pods(&manifests) {
                assert_eq!(
                    restricted_violations(pod),
                    Vec::<String>::new(),
                    "{}",
                    path.display()
                );
                let probes = &pod.containers[0];
                assert!(probes.startup_probe.is_some() && probes.liveness_probe.is_some());
            }
            assert_eq!(manifests.secrets.as_ref().unwrap().data, None);
            let yaml = manifests.to_yaml().unwrap();
            assert!(
                !yaml.contains("${"),
                "every placeholder filled in: {}",
                path.display()
            );
            for object in manifests.objects() {
                let back = match object.resource.kind.as_str() {
                    "StatefulSet" => super::super::tests::to_json::<
                        k8s_openapi::api::apps::v1::StatefulSet,
                    >(object.body.clone()),
                    "Deployment" => super::super::tests::to_json::<
                        k8s_openapi::api::apps::v1::Deployment,
                    >(object.body.clone()),
                    _ => object.body.clone(),
                };
                assert_eq!(
                    back,
                    object.body,
                    "{}: {}",
                    path.display(),
                    object.describe()
                );
            }
        }
        seen += 1;
    }
    assert!(seen >= 2, "the example templates are in {dir}");
}

/// Component names are the template's to choose; none may make two objects share a name.
#[test]
fn no_component_name_makes_two_objects_share_a_name() {
    let mut template = stack_template();
    let components = &mut template.workload.components;
    components[0].name = "ingress-controller".into(); // the app
    components[0].depends_on = vec!["dns".into()];
    components[0].env.clear();
    components[1].name = "dns".into(); // the database
    template.workload.expose = "ingress-controller".into();
    let manifests = build(&template, &site(None), Scale::Running).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for object in manifests.objects() {
        let key = (object.resource.kind.clone(), object.name.clone());
        assert!(seen.insert(key), "two objects named {}", object.describe());
    }
}
