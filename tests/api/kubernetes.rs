//! The kubernetes runtime through the real application and job queue, against a mock API
//! server that checks every request in order (see `kube_mock`).

use http::StatusCode;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use berth::adapters::runtime::kubernetes::manifests::{self, Manifests, Scale, Template};
use berth::adapters::runtime::kubernetes::names;
use berth::adapters::runtime::SiteSpec;

use crate::helpers::{job_of, kube_tenant, TestApp, ADMIN_TOKEN};
use crate::kube_mock::{self as mock, Exchange, Reply};

const HTML: &str = "<h1>Hello from the cluster</h1>";
const ADDRESS: &str = "203.0.113.7";

/// A site of tenant `kube` and the objects berth must apply for it.
struct Expected {
    name: &'static str,
    namespace: String,
    running: Manifests,
    suspended: Manifests,
}

impl Expected {
    fn new(app: &TestApp, name: &'static str) -> Self {
        Self {
            name,
            namespace: names::namespace("kube", name),
            running: Self::build(app, name, HTML, Scale::Running),
            suspended: Self::build(app, name, HTML, Scale::Suspended),
        }
    }

    /// The objects of site `name` of tenant `kube` serving `html`.
    fn build(app: &TestApp, name: &str, html: &str, scale: Scale) -> Manifests {
        Self::build_on(&app.context().settings.get(), name, html, scale)
    }

    /// The same under `settings`.
    fn build_on(
        settings: &berth::configuration::Settings,
        name: &str,
        html: &str,
        scale: Scale,
    ) -> Manifests {
        let tenant = settings
            .tenants
            .iter()
            .find(|t| t.name == "kube")
            .unwrap_or_else(|| panic!("tenant kube is configured"));
        let template = Template::new(&settings.kubernetes, tenant);
        let spec = SiteSpec {
            id: String::new(),
            tenant: "kube".into(),
            name: name.into(),
            hostname: format!("{name}.kube.test"),
            html: Some(html.into()),
            plan: None,
            workload: None,
        };
        manifests::build(&template, &spec, scale).unwrap()
    }

    /// A whole provisioning: the namespace does not exist yet, every object is applied in
    /// order, the rollout is done at once and the Ingress has an address.
    fn provision(&self) -> Vec<Exchange> {
        [self.applies(), mock::ready(&self.namespace, ADDRESS)].concat()
    }

    /// The same on a namespace the site already has (a resume).
    fn reprovision(&self) -> Vec<Exchange> {
        [
            vec![self.owned()],
            mock::apply_all(&self.running),
            mock::ready(&self.namespace, ADDRESS),
        ]
        .concat()
    }

    /// The ownership check finds no namespace, then every object is applied.
    fn applies(&self) -> Vec<Exchange> {
        [vec![self.absent()], mock::apply_all(&self.running)].concat()
    }

    /// The ownership check, answered: no such namespace.
    fn absent(&self) -> Exchange {
        mock::get_namespace(&self.namespace, not_found(&self.namespace))
    }

    /// The ownership check, answered with this site's namespace.
    fn owned(&self) -> Exchange {
        self.held_by("kube", self.name)
    }

    /// The ownership check, answered with a namespace whose labels name `tenant/site`.
    fn held_by(&self, tenant: &str, site: &str) -> Exchange {
        let ns = mock::namespace_object(&self.namespace, tenant, site, "Active");
        mock::get_namespace(&self.namespace, Reply::Json(StatusCode::OK, ns))
    }

    fn deployment(&self, manifests: &Manifests) -> Exchange {
        let object = manifests
            .objects()
            .into_iter()
            .find(|o| o.resource.kind == "Deployment")
            .unwrap();
        mock::apply(&object)
    }

    /// The ownership check and the first `n` applies of a provisioning, the last one answered
    /// with `reply`.
    fn applies_ending_in(&self, n: usize, reply: Reply) -> Vec<Exchange> {
        let mut applies: Vec<Exchange> = self.applies().into_iter().take(n + 1).collect();
        applies[n].reply = reply;
        applies
    }
}

/// An application with tenant `kube` on a mock API server that plays `scenario` for site
/// `name`.
async fn start(
    name: &'static str,
    tweak: impl FnOnce(&mut berth::configuration::Settings),
    scenario: impl FnOnce(&Expected) -> Vec<Exchange>,
) -> (TestApp, Expected, JoinHandle<()>) {
    let (client, server) = mock::pair();
    let app = TestApp::spawn_with_kube(client, tweak).await;
    let site = Expected::new(&app, name);
    let server = server.run(scenario(&site));
    (app, site, server)
}

/// Signs the site up and runs its provisioning (and email) to the end.
async fn provisioned(app: &TestApp, site: &Expected) -> String {
    let id = sign_up(app, site.name).await;
    app.drain_jobs().await;
    assert_eq!(app.status("kube", &id).await["state"], "ready");
    id
}

async fn sign_up(app: &TestApp, name: &str) -> String {
    let response = app
        .post_json(
            "/t/kube/signup",
            &json!({"name": name, "email": "ann@example.com", "html": HTML}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

async fn admin_action(app: &TestApp, method: Method, path: String) {
    let response = app.admin(method, &path, ADMIN_TOKEN).await;
    assert_eq!(response.status(), 202, "{path}");
}

#[tokio::test]
async fn provisioning_applies_every_object_in_order_then_waits_and_points_dns_at_the_ingress() {
    let (app, site, server) = start(
        "cluster-shop",
        |_| {},
        |site| {
            let ns = &site.namespace;
            // The rollout is not done when the wait starts, and the Ingress has no address yet:
            // the watches bring the news.
            let modified = |object: Value| json!({"type": "MODIFIED", "object": object});
            [
                site.applies(),
                vec![
                    mock::list(
                        &mock::deployments(ns),
                        "site",
                        "Deployment",
                        vec![mock::deployment(ns, 1, 0)],
                    ),
                    mock::watch(
                        &mock::deployments(ns),
                        "site",
                        Reply::Events(vec![modified(mock::deployment(ns, 1, 1))]),
                    ),
                    mock::list(
                        &mock::ingresses(ns),
                        "site",
                        "Ingress",
                        vec![mock::ingress(ns, None)],
                    ),
                    mock::watch(
                        &mock::ingresses(ns),
                        "site",
                        Reply::Events(vec![modified(mock::ingress(ns, Some(ADDRESS)))]),
                    ),
                ],
            ]
            .concat()
        },
    )
    .await;

    let id = sign_up(&app, site.name).await;
    // The provision job, then the readiness email.
    assert_eq!(app.drain_jobs().await, 2);
    mock::finish(server).await;

    let status = app.status("kube", &id).await;
    assert_eq!(status["state"], "ready");
    assert_eq!(status["url"], "http://cluster-shop.kube.test/");
    assert_eq!(app.outbox_files().len(), 1);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"berth_kubernetes_operations_total{operation="apply",outcome="ok"}"#,
        r#"berth_kubernetes_operations_total{operation="ready",outcome="ok"}"#,
        r#"berth_kubernetes_operation_duration_seconds_count{operation="apply"}"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    let kinds: Vec<String> = site
        .running
        .objects()
        .iter()
        .map(|o| o.resource.kind.clone())
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ResourceQuota",
            "LimitRange",
            "NetworkPolicy",
            "NetworkPolicy",
            "NetworkPolicy",
            "ServiceAccount",
            "ConfigMap",
            "Service",
            "Deployment",
            "Ingress"
        ]
    );
}

#[tokio::test]
async fn suspend_scales_to_zero_and_resume_applies_the_same_objects_again() {
    let (app, site, server) = start(
        "pause-shop",
        |_| {},
        |site| {
            // Resume is a re-provision: the very same applies (and still never a create).
            [
                site.provision(),
                vec![site.owned(), site.deployment(&site.suspended)],
                site.reprovision(),
            ]
            .concat()
        },
    )
    .await;
    let id = provisioned(&app, &site).await;

    admin_action(&app, Method::POST, format!("/admin/sites/{id}/suspend")).await;
    assert_eq!(app.drain_jobs().await, 1);
    assert_eq!(app.status("kube", &id).await["state"], "suspended");

    admin_action(&app, Method::POST, format!("/admin/sites/{id}/resume")).await;
    app.drain_jobs().await;
    mock::finish(server).await;
    assert_eq!(app.status("kube", &id).await["state"], "ready");
    assert_eq!(app.outbox_files().len(), 1, "one readiness email per site");
    let replicas = |m: &Manifests| m.deployment().spec.as_ref().unwrap().replicas;
    assert_eq!(replicas(&site.suspended), Some(0));
    assert_eq!(replicas(&site.running), Some(1));
}

#[tokio::test]
async fn an_update_is_a_new_configmap_and_a_rollout_and_the_old_content_goes_once_it_serves() {
    const NEW: &str = "<h1>New look</h1>";
    let (client, server) = mock::pair();
    let app = TestApp::spawn_with_kube(client, |_| {}).await;
    let site = Expected::new(&app, "update-shop");
    let updated = Expected::build(&app, site.name, NEW, Scale::Running);
    let (old_content, new_content) = (content(&site.running), content(&updated));
    assert_ne!(old_content.metadata.name, new_content.metadata.name);
    assert_eq!(new_content.immutable, Some(true));
    let mounted = updated
        .deployment()
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .filter_map(|v| v.config_map.as_ref().map(|c| c.name.clone()))
        .collect::<Vec<_>>();
    let name = new_content.metadata.name.clone().unwrap();
    assert_eq!(mounted, [name.clone(), name]);
    // Provisioning, then the update: the same ownership check and applies as any apply (the new
    // ConfigMap among them, before the Deployment), the rollout and the Ingress, then the
    // earlier content is deleted by label.
    let server = server.run(
        [
            site.provision(),
            vec![site.owned()],
            mock::apply_all(&updated),
            mock::ready(&site.namespace, ADDRESS),
            vec![
                site.owned(),
                mock::delete_content_except(&site.namespace, &updated),
            ],
        ]
        .concat(),
    );
    let created = app
        .post_json(
            "/t/kube/signup",
            &json!({"name": site.name, "email": "ann@example.com", "html": HTML}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    app.drain_jobs().await;
    let response = app
        .client
        .put(app.url(&format!("/t/kube/sites/{id}/content")))
        .bearer_auth(created["manage_token"].as_str().unwrap())
        .json(&json!({"html": NEW}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    app.drain_jobs().await;
    mock::finish(server).await;
    let versions: Value = app
        .admin(
            Method::GET,
            &format!("/admin/sites/{id}/versions"),
            ADMIN_TOKEN,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(versions["live_version"], 2, "{versions}");
}

/// The static site's content ConfigMap.
fn content(manifests: &Manifests) -> k8s_openapi::api::core::v1::ConfigMap {
    manifests
        .content
        .clone()
        .expect("a static site has content")
}

#[tokio::test]
async fn suspending_a_site_whose_namespace_is_gone_succeeds() {
    let (app, site, server) = start(
        "gone-shop",
        |_| {},
        |site| [site.provision(), vec![site.absent()]].concat(),
    )
    .await;
    let id = provisioned(&app, &site).await;
    admin_action(&app, Method::POST, format!("/admin/sites/{id}/suspend")).await;
    assert_eq!(app.drain_jobs().await, 1);
    mock::finish(server).await;
    let jobs = app.site_detail(&id).await["jobs"].clone();
    assert_eq!(jobs[0]["kind"], "suspend");
    assert_eq!(jobs[0]["state"], "succeeded");
}

/// Provisions the site, deletes it through the admin API and checks it ends `deleted` after
/// `attempts` runs of the deprovision job.
async fn deprovision(
    name: &'static str,
    attempts: usize,
    deletion: fn(&Expected) -> Vec<Exchange>,
) {
    let (app, site, server) = start(
        name,
        |_| {},
        |site| [site.provision(), deletion(site)].concat(),
    )
    .await;
    let id = provisioned(&app, &site).await;
    admin_action(&app, Method::DELETE, format!("/admin/sites/{id}")).await;
    assert_eq!(app.drain_jobs().await, attempts);
    mock::finish(server).await;
    assert_eq!(app.status("kube", &id).await["state"], "deleted");
}

fn not_found(namespace: &str) -> Reply {
    mock::failure(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("namespaces \"{namespace}\" not found"),
    )
}

#[tokio::test]
async fn deprovisioning_deletes_the_namespace_and_waits_until_it_is_gone() {
    deprovision("bye-shop", 1, |site| {
        let ns = &site.namespace;
        let terminating = mock::namespace_object(ns, "kube", site.name, "Terminating");
        vec![
            site.owned(),
            mock::delete_namespace(ns, Reply::Json(StatusCode::OK, terminating.clone())),
            mock::list(mock::NAMESPACES, ns, "Namespace", vec![terminating.clone()]),
            mock::watch(
                mock::NAMESPACES,
                ns,
                Reply::Events(vec![json!({"type": "DELETED", "object": terminating})]),
            ),
        ]
    })
    .await;
}

#[tokio::test]
async fn deprovisioning_succeeds_when_the_namespace_is_already_gone() {
    deprovision("lost-shop", 1, |site| vec![site.absent()]).await;
}

#[tokio::test]
async fn deprovisioning_succeeds_when_the_namespace_vanishes_before_the_delete() {
    deprovision("vanished-shop", 1, |site| {
        let ns = &site.namespace;
        vec![site.owned(), mock::delete_namespace(ns, not_found(ns))]
    })
    .await;
}

#[tokio::test]
async fn a_namespace_still_terminating_is_waited_for_again_on_the_next_attempt() {
    deprovision("slow-shop", 2, |site| {
        let ns = &site.namespace;
        let terminating = mock::namespace_object(ns, "kube", site.name, "Terminating");
        let conflict = mock::failure(
            StatusCode::CONFLICT,
            "Conflict",
            "Operation cannot be fulfilled on namespaces: The system is ensuring all content is removed from this namespace.",
        );
        vec![
            // Attempt 1: deletion starts, but the namespace outlives delete_timeout_secs.
            site.owned(),
            mock::delete_namespace(ns, Reply::Json(StatusCode::OK, terminating.clone())),
            mock::list(mock::NAMESPACES, ns, "Namespace", vec![terminating]),
            mock::watch(mock::NAMESPACES, ns, Reply::Silence),
            // Attempt 2: already terminating (409), then gone.
            site.owned(),
            mock::delete_namespace(ns, conflict),
            mock::list(mock::NAMESPACES, ns, "Namespace", vec![]),
        ]
    })
    .await;
}

/// Provisions a site whose first attempt ends in `first_attempt`'s last answer; the job must
/// retry, apply everything again and finish.
async fn provision_after_a_failed_attempt(
    name: &'static str,
    first_attempt: impl FnOnce(&Expected) -> Vec<Exchange>,
) {
    let (app, site, server) = start(
        name,
        |_| {},
        |site| [first_attempt(site), site.provision()].concat(),
    )
    .await;
    let id = sign_up(&app, site.name).await;
    // Two attempts of the provision job, then the email.
    assert_eq!(app.drain_jobs().await, 3);
    mock::finish(server).await;
    assert_eq!(app.status("kube", &id).await["state"], "ready");
    let provision = job_of(&app.site_detail(&id).await, "provision");
    assert_eq!(provision["attempts"], 2, "{provision}");
}

#[tokio::test]
async fn a_server_error_is_retried() {
    provision_after_a_failed_attempt("error-shop", |site| {
        let error = mock::failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "etcdserver: request timed out",
        );
        site.applies_ending_in(1, error)
    })
    .await;
}

#[tokio::test]
async fn a_conflict_is_retried() {
    provision_after_a_failed_attempt("conflict-shop", |site| {
        let conflict = mock::failure(
            StatusCode::CONFLICT,
            "Conflict",
            "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas",
        );
        let first = site.applies_ending_in(10, conflict);
        let last = &first.last().unwrap().uri;
        assert!(last.contains("/deployments/"), "{last}");
        first
    })
    .await;
}

#[tokio::test]
async fn an_unanswered_request_times_out_and_is_retried() {
    provision_after_a_failed_attempt("quiet-shop", |site| {
        site.applies_ending_in(3, Reply::Silence)
    })
    .await;
}

#[tokio::test]
async fn a_rollout_that_does_not_finish_in_time_is_retried() {
    provision_after_a_failed_attempt("stuck-shop", |site| {
        let ns = &site.namespace;
        let pending = vec![mock::deployment(ns, 1, 0)];
        [
            site.applies(),
            vec![
                mock::list(&mock::deployments(ns), "site", "Deployment", pending),
                mock::watch(&mock::deployments(ns), "site", Reply::Silence),
            ],
        ]
        .concat()
    })
    .await;
}

/// Signs the site up and expects its provisioning to fail on the first attempt (no retry, no
/// request beyond the scenario); returns the site's last error.
async fn fails_at_once(app: &TestApp, site: &Expected, server: JoinHandle<()>) -> String {
    let id = sign_up(app, site.name).await;
    assert_eq!(app.drain_jobs().await, 1, "no retry");
    mock::finish(server).await;
    let detail = app.site_detail(&id).await;
    assert_eq!(detail["state"], "failed");
    detail["last_error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_refusal_fails_the_site_at_once() {
    let (app, site, server) = start("denied-shop", |_| {}, |site| {
        let forbidden = mock::failure(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "namespaces \"x\" is forbidden: User \"system:serviceaccount:berth:berth\" cannot patch resource \"namespaces\"",
        );
        site.applies_ending_in(1, forbidden)
    })
    .await;
    let error = fails_at_once(&app, &site, server).await;
    assert!(error.contains("403 Forbidden"), "{error}");
    assert!(error.contains("cannot patch resource"), "{error}");
}

#[tokio::test]
async fn a_configured_dns_target_needs_no_ingress_address() {
    let configured = |settings: &mut berth::configuration::Settings| {
        let kube = settings
            .tenants
            .iter_mut()
            .find(|t| t.name == "kube")
            .unwrap();
        kube.dns.target = "lb.example.net".into();
    };
    let (app, site, server) = start("target-shop", configured, |site| {
        let ns = &site.namespace;
        let ready = vec![mock::deployment(ns, 1, 1)];
        [
            site.applies(),
            vec![mock::list(
                &mock::deployments(ns),
                "site",
                "Deployment",
                ready,
            )],
        ]
        .concat()
    })
    .await;
    provisioned(&app, &site).await;
    mock::finish(server).await;
}

#[tokio::test]
async fn a_kubernetes_tenant_does_not_keep_berth_from_starting_without_a_cluster() {
    // No client given: berth builds one from an unreadable kubeconfig on first use only.
    let app = TestApp::spawn_with(|settings| {
        settings.tenants.push(kube_tenant());
        settings.kubernetes.kubeconfig = "/nonexistent/kubeconfig".into();
    })
    .await;
    let id = sign_up(&app, "later-shop").await;
    // max_attempts = 3 in tests: every attempt fails to connect, then the site fails.
    assert_eq!(app.drain_jobs().await, 3);
    let detail = app.site_detail(&id).await;
    assert_eq!(detail["state"], "failed");
    let error = detail["last_error"].as_str().unwrap();
    assert!(
        error.contains("cannot read kubeconfig /nonexistent/kubeconfig"),
        "{error}"
    );
}

#[tokio::test]
async fn provisioning_never_applies_into_a_namespace_that_belongs_to_another_site() {
    let (app, site, server) = start(
        "twin-shop",
        |_| {},
        |site| vec![site.held_by("kube", "other-shop")],
    )
    .await;
    let error = fails_at_once(&app, &site, server).await;
    assert!(error.contains("belongs to site kube/other-shop"), "{error}");
    assert!(error.contains("not to site kube/twin-shop"), "{error}");
}

#[tokio::test]
async fn provisioning_never_takes_over_a_namespace_berth_does_not_manage() {
    let (app, site, server) = start(
        "foreign-shop",
        |_| {},
        |site| {
            let foreign = json!({"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": site.namespace, "uid": "x"}});
            vec![mock::get_namespace(
                &site.namespace,
                Reply::Json(StatusCode::OK, foreign),
            )]
        },
    )
    .await;
    let error = fails_at_once(&app, &site, server).await;
    assert!(error.contains("is not managed by berth"), "{error}");
}

#[tokio::test]
async fn deprovisioning_never_deletes_a_namespace_that_belongs_to_another_site() {
    let (app, site, server) = start(
        "leave-shop",
        |_| {},
        // Between provisioning and deletion, the namespace came to hold another site.
        |site| [site.provision(), vec![site.held_by("acme", "leave-shop")]].concat(),
    )
    .await;
    let id = provisioned(&app, &site).await;
    admin_action(&app, Method::DELETE, format!("/admin/sites/{id}")).await;
    assert_eq!(app.drain_jobs().await, 1, "no retry, no DELETE");
    mock::finish(server).await;
    let detail = app.site_detail(&id).await;
    assert_eq!(detail["state"], "deprovisioning", "kept for an operator");
    assert_eq!(job_of(&detail, "deprovision")["state"], "failed");
    let error = detail["last_error"].as_str().unwrap();
    assert!(error.contains("belongs to site acme/leave-shop"), "{error}");
    assert!(error.contains("not to site kube/leave-shop"), "{error}");
}

/// The rollout of tenant `kube`, as the admin API shows it.
async fn rollout_status(app: &TestApp) -> Value {
    let response = app
        .admin(Method::GET, "/admin/t/kube/rollout", ADMIN_TOKEN)
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Runs jobs (the driver's steps come a poll interval apart) until the rollout has ended.
async fn run_rollout(app: &TestApp) -> Value {
    for _ in 0..200 {
        app.drain_jobs().await;
        let status = rollout_status(app).await;
        if status["rollout"]["state"] != "running" {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    }
    panic!("the rollout did not end: {}", rollout_status(app).await);
}

#[tokio::test]
async fn a_template_change_rolls_out_site_by_site_and_a_site_that_fails_goes_back_to_its_spec() {
    const IMAGE: &str = "registry.example.com/nginx-unprivileged:1.29-alpine";
    let (client, server) = mock::pair();
    let app = TestApp::spawn_with_kube(client, |_| {}).await;
    let sites = ["first-shop", "second-shop", "third-shop"].map(|name| Expected::new(&app, name));
    let mut changed = app.configured();
    changed.kubernetes.static_image = IMAGE.into();
    let new = sites
        .each_ref()
        .map(|site| Expected::build_on(&changed, site.name, HTML, Scale::Running));
    assert_ne!(
        sites[0].running.deployment(),
        new[0].deployment(),
        "the new image reaches the Deployment"
    );
    // The second site's new Deployment is refused; its previous spec is applied again.
    let mut refused = [vec![sites[1].owned()], mock::apply_all(&new[1])].concat();
    let at = refused
        .iter()
        .position(|e| e.uri.contains("/deployments/"))
        .unwrap();
    refused.truncate(at + 1);
    refused[at].reply = mock::failure(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        "Deployment.apps \"site\" is invalid: spec.template.spec.containers[0].image: Invalid value",
    );
    let server = server.run(
        [
            sites[0].provision(),
            sites[1].provision(),
            sites[2].provision(),
            vec![sites[0].owned()],
            mock::apply_all(&new[0]),
            mock::ready(&sites[0].namespace, ADDRESS),
            refused,
            sites[1].reprovision(),
        ]
        .concat(),
    );
    let mut ids = Vec::new();
    for site in &sites {
        ids.push(provisioned(&app, site).await);
    }
    let before = rollout_status(&app).await;
    assert_eq!(before["drift"]["ready"], 3, "{before}");
    assert_eq!(before["drift"]["drifted"], 0, "{before}");
    assert_eq!(before["rollout"], Value::Null);

    assert!(app
        .reload(|s| s.kubernetes.static_image = IMAGE.into())
        .await
        .unwrap()
        .is_empty());
    let drifted = rollout_status(&app).await;
    assert_eq!(drifted["drift"]["drifted"], 3, "{drifted}");
    let response = app
        .client
        .post(app.url("/admin/t/kube/rollout"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"max_parallel": 1, "max_failures": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let started: Value = response.json().await.unwrap();
    assert_eq!(
        (started["state"].clone(), started["total"].clone()),
        (json!("running"), json!(3))
    );
    let again = app
        .client
        .post(app.url("/admin/t/kube/rollout"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409, "one rollout at a time");

    let ended = run_rollout(&app).await;
    mock::finish(server).await;
    let rollout = &ended["rollout"];
    assert_eq!(rollout["state"], "stopped", "{ended}");
    assert_eq!(rollout["wave"], 2, "{ended}");
    assert_eq!(
        rollout["progress"],
        json!({"pending": 1, "applying": 0, "done": 1, "failed": 1, "skipped": 0})
    );
    let problem = &rollout["problems"][0];
    assert_eq!(problem["site_id"], ids[1].as_str());
    assert!(
        problem["error"].as_str().unwrap().contains("Invalid value"),
        "{problem}"
    );
    // Every site still serves; only the first runs the new spec, so two still drift.
    for id in &ids {
        assert_eq!(app.status("kube", id).await["state"], "ready");
    }
    assert_eq!(ended["drift"]["drifted"], 2, "{ended}");
    let metrics = app.get_text("/metrics").await;
    for line in [
        r#"berth_rollout_sites{tenant="kube",state="done"} 1"#,
        r#"berth_rollout_sites{tenant="kube",state="failed"} 1"#,
        r#"berth_rollout_wave{tenant="kube"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
}

/// A store: MariaDB keeping its data, and the app in front of it that needs it.
fn store(settings: &mut berth::configuration::Settings) {
    use berth::configuration::{ComponentSettings, VolumeSettings, WorkloadKind, WorkloadSettings};
    let tenant = settings
        .tenants
        .iter_mut()
        .find(|t| t.name == "kube")
        .unwrap();
    tenant.workload = WorkloadSettings {
        kind: WorkloadKind::Stack,
        expose: "app".into(),
        secrets: vec!["db_password".into()],
        components: vec![
            ComponentSettings {
                depends_on: vec!["db".into()],
                env: [("DB_PASSWORD".to_owned(), "${secret:db_password}".to_owned())].into(),
                ..ComponentSettings::new("app", "registry.example/shop:2", 8080)
            },
            ComponentSettings {
                env: [(
                    "MARIADB_PASSWORD".to_owned(),
                    "${secret:db_password}".to_owned(),
                )]
                .into(),
                volume: Some(VolumeSettings {
                    size: "5Gi".into(),
                    mount_path: "/var/lib/mysql".into(),
                    storage_class: String::new(),
                }),
                ..ComponentSettings::new("db", "registry.example/mariadb:11", 3306)
            },
        ],
        ..WorkloadSettings::default()
    };
}

impl Expected {
    fn object(manifests: &Manifests, kind: &str, name: &str) -> manifests::Object {
        manifests
            .objects()
            .into_iter()
            .find(|o| o.resource.kind == kind && o.name == name)
            .unwrap_or_else(|| panic!("no {kind}/{name}"))
    }

    /// The read of the stack's Secret, answered with the keys it holds.
    fn read_secrets(&self, keys: &[&str]) -> Exchange {
        let data: serde_json::Map<String, Value> = keys
            .iter()
            .map(|k| ((*k).to_owned(), json!("c2VjcmV0")))
            .collect();
        Exchange {
            method: Method::GET,
            uri: format!("/api/v1/namespaces/{}/secrets/site-secrets", self.namespace),
            body: None,
            reply: Reply::Json(
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "site-secrets", "namespace": self.namespace,
                                    "resourceVersion": "7"},
                       "data": data}),
            ),
        }
    }

    /// A stack applied: the foundation, the generated secrets (when `fresh`), the database,
    /// then, once the database is ready, the app, then the Ingress.
    fn stack_applies(&self, fresh: bool) -> Vec<Exchange> {
        let m = &self.running;
        let ns = &self.namespace;
        let mut exchanges: Vec<Exchange> = m.foundation().iter().map(mock::apply).collect();
        if fresh {
            exchanges.push(self.read_secrets(&[]));
            exchanges.push(Exchange {
                method: Method::PATCH,
                uri: format!(
                    "/api/v1/namespaces/{ns}/secrets/site-secrets?&fieldManager=berth-secrets"
                ),
                body: Some(json!({"apiVersion": "v1", "kind": "Secret",
                                  "metadata": {"resourceVersion": "7"},
                                  "data": {"db_password": mock::GENERATED}})),
                reply: Reply::Json(
                    StatusCode::OK,
                    json!({"apiVersion": "v1", "kind": "Secret",
                                                          "metadata": {"name": "site-secrets"}}),
                ),
            });
        } else {
            exchanges.push(self.read_secrets(&["db_password"]));
        }
        exchanges.extend([
            mock::apply(&Self::object(m, "StatefulSet", "db")),
            mock::list(
                &mock::stateful_sets(ns),
                "db",
                "StatefulSet",
                vec![mock::stateful_set_ready(ns, "db")],
            ),
            mock::apply(&Self::object(m, "Deployment", "app")),
            mock::apply(&Self::object(m, "Ingress", "site")),
        ]);
        exchanges
    }

    /// Every component ready, then the Ingress's address.
    fn stack_ready(&self) -> Vec<Exchange> {
        let ns = &self.namespace;
        vec![
            mock::list(
                &mock::stateful_sets(ns),
                "db",
                "StatefulSet",
                vec![mock::stateful_set_ready(ns, "db")],
            ),
            mock::list(
                &mock::deployments(ns),
                "app",
                "Deployment",
                vec![mock::deployment_named(ns, "app", 1, 1)],
            ),
            mock::list(
                &mock::ingresses(ns),
                "site",
                "Ingress",
                vec![mock::ingress(ns, Some(ADDRESS))],
            ),
        ]
    }
}

#[tokio::test]
async fn a_stack_starts_its_database_first_and_keeps_its_generated_secret_for_life() {
    let (app, site, server) = start("stack-shop", store, |site| {
        let ns = &site.namespace;
        let suspended = &site.suspended;
        [
            vec![site.absent()],
            site.stack_applies(true),
            site.stack_ready(),
            // Suspend: the app stops first, then the database.
            vec![
                site.owned(),
                mock::apply(&Expected::object(suspended, "Deployment", "app")),
                mock::apply(&Expected::object(suspended, "StatefulSet", "db")),
            ],
            // Resume: the same objects again; the secret is there, so nothing writes it.
            vec![site.owned()],
            site.stack_applies(false),
            site.stack_ready(),
            // Delete: the namespace, and with it the database's volume.
            vec![
                site.owned(),
                mock::delete_namespace(ns, Reply::Json(StatusCode::OK, json!({}))),
                mock::list(mock::NAMESPACES, ns, "Namespace", vec![]),
            ],
        ]
        .concat()
    })
    .await;
    let id = provisioned(&app, &site).await;
    admin_action(&app, Method::POST, format!("/admin/sites/{id}/suspend")).await;
    app.drain_jobs().await;
    assert_eq!(app.status("kube", &id).await["state"], "suspended");
    admin_action(&app, Method::POST, format!("/admin/sites/{id}/resume")).await;
    app.drain_jobs().await;
    assert_eq!(app.status("kube", &id).await["state"], "ready");
    admin_action(&app, Method::DELETE, format!("/admin/sites/{id}")).await;
    app.drain_jobs().await;
    mock::finish(server).await;
    assert_eq!(app.status("kube", &id).await["state"], "deleted");
    for workload in &site.suspended.workloads {
        assert_eq!(workload.replicas(), Some(0), "{}", workload.name());
    }
}
