//! The runtime's conversations with the API server. Every request has a deadline; every wait
//! watches (no polling sleeps) and has a deadline too.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::wait::{await_condition, Condition};
use kube::{Api, Client};

use super::manifests::{Object, WorkloadObject};
use super::names;
use crate::error::Permanent;

/// Applies `objects` in order with server-side apply (field manager `berth`, forced: berth is
/// the only writer of these fields).
pub async fn apply_all(
    client: &Client,
    objects: &[Object],
    timeout: Duration,
) -> anyhow::Result<()> {
    for object in objects {
        apply_one(client, object, timeout).await?;
    }
    Ok(())
}

#[tracing::instrument(name = "kubernetes.apply_object", skip_all, fields(k8s.object = %object.describe()))]
async fn apply_one(client: &Client, object: &Object, timeout: Duration) -> anyhow::Result<()> {
    let what = format!("applying {}", object.describe());
    within(timeout, &what, patch(client, object))
        .await?
        .map_err(|e| job_error(e, &what))?;
    tracing::debug!("applied");
    Ok(())
}

/// Applies `object` unless its namespace is gone; `false` when it is.
pub async fn apply_if_namespace_exists(
    client: &Client,
    object: &Object,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let what = format!("applying {}", object.describe());
    match within(timeout, &what, patch(client, object)).await? {
        Ok(()) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(error) => Err(job_error(error, &what)),
    }
}

async fn patch(client: &Client, object: &Object) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> = match &object.namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &object.resource),
        None => Api::all_with(client.clone(), &object.resource),
    };
    let params = PatchParams::apply(names::FIELD_MANAGER).force();
    api.patch(&object.name, &params, &Patch::Apply(&object.body))
        .await
        .map(drop)
}

/// The site's namespace when it exists and belongs to the site, `None` when it does not exist.
/// A namespace whose berth labels name another site (or that berth does not manage) is a
/// [`Permanent`] error naming both: berth never applies into it nor deletes it, whatever
/// made the names meet.
#[tracing::instrument(name = "kubernetes.check_owner", skip_all, fields(k8s.namespace = namespace))]
pub async fn check_owner(
    client: &Client,
    namespace: &str,
    tenant: &str,
    site: &str,
    timeout: Duration,
) -> anyhow::Result<Option<Namespace>> {
    let api: Api<Namespace> = Api::all(client.clone());
    let what = format!("reading namespace {namespace}");
    let Some(found) = within(timeout, &what, api.get_opt(namespace))
        .await?
        .map_err(|e| job_error(e, &what))?
    else {
        return Ok(None);
    };
    let labels = found.metadata.labels.clone().unwrap_or_default();
    let label = |key: &str| labels.get(key).map_or("", String::as_str);
    if label(names::MANAGED_BY_LABEL) != names::MANAGED_BY {
        return Err(Permanent::new(format!(
            "namespace {namespace} exists and is not managed by berth; refusing to use it for site {tenant}/{site}"
        ))
        .into());
    }
    let (owner_tenant, owner_site) = (label(names::TENANT_LABEL), label(names::SITE_LABEL));
    if (owner_tenant, owner_site) != (tenant, site) {
        tracing::error!(
            k8s.owner = format!("{owner_tenant}/{owner_site}"),
            "namespace belongs to another site"
        );
        return Err(Permanent::new(format!(
            "namespace {namespace} belongs to site {owner_tenant}/{owner_site}, not to site {tenant}/{site}; refusing to touch it"
        ))
        .into());
    }
    Ok(Some(found))
}

/// Waits until `workload` has rolled out (see [`rollout_status`] and [`stateful_set_status`]).
#[tracing::instrument(name = "kubernetes.wait_rollout", skip_all, fields(k8s.namespace = namespace, k8s.object = workload.name()))]
pub async fn wait_rollout(
    client: &Client,
    namespace: &str,
    workload: &WorkloadObject,
    timeout: Duration,
) -> anyhow::Result<()> {
    let name = workload.name();
    match workload {
        WorkloadObject::Deployment(_) => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            wait_status(api, namespace, name, "Deployment", rollout_status, timeout).await
        }
        WorkloadObject::StatefulSet(_) => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
            wait_status(
                api,
                namespace,
                name,
                "StatefulSet",
                stateful_set_status,
                timeout,
            )
            .await
        }
    }
}

/// Watches `kind` `name` until `status` says it is done; on time out, says what it last said.
async fn wait_status<K>(
    api: Api<K>,
    namespace: &str,
    name: &str,
    kind: &str,
    status: fn(&K) -> Result<(), String>,
    timeout: Duration,
) -> anyhow::Result<()>
where
    K: Clone + std::fmt::Debug + Send + serde::de::DeserializeOwned + kube::Resource + 'static,
{
    let last = Arc::new(Mutex::new(String::from("nothing seen yet")));
    let seen = last.clone();
    let missing = format!("the {kind} does not exist");
    let done = move |object: Option<&K>| {
        let outcome = object.map_or_else(|| Err(missing.clone()), status);
        let done = outcome.is_ok();
        if let Err(why) = outcome {
            *seen.lock().expect("status lock") = why;
        }
        done
    };
    let what = format!("waiting for {kind} {namespace}/{name}");
    wait_for(api, name, done, timeout, &what, || {
        last.lock().expect("status lock").clone()
    })
    .await?;
    Ok(())
}

/// Gives the Secret `name` of `namespace` a random value for each of `keys` it lacks, and
/// leaves every value it has as it is: a generated secret never changes (the app would be
/// locked out of its own database). Values are 64 hex characters, written with a merge patch
/// that carries the `resourceVersion` read, so two writers can never both add one (the second
/// gets a conflict and retries, then finds it). berth never logs, stores or returns them.
#[tracing::instrument(name = "kubernetes.generate_secrets", skip_all, fields(k8s.namespace = namespace))]
pub async fn generate_secrets(
    client: &Client,
    namespace: &str,
    name: &str,
    keys: &[String],
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let what = format!("reading Secret {namespace}/{name}");
    let found = within(timeout, &what, api.get_opt(name))
        .await?
        .map_err(|e| job_error(e, &what))?
        .ok_or_else(|| anyhow::anyhow!("{what}: it does not exist (it was applied just now)"))?;
    let held = found.data.unwrap_or_default();
    let missing: Vec<&String> = keys.iter().filter(|k| !held.contains_key(*k)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let patch = Secret {
        metadata: kube::api::ObjectMeta {
            resource_version: found.metadata.resource_version,
            ..kube::api::ObjectMeta::default()
        },
        data: Some(
            missing
                .iter()
                .map(|key| ((*key).clone(), ByteString(random_text().into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    };
    let what = format!("generating the secrets {missing:?} in Secret {namespace}/{name}");
    within(
        timeout,
        &what,
        // Under a manager of its own: the Secret's server-side apply (manager `berth`) never
        // owns its data, so re-applying it can never remove a value.
        api.patch(
            name,
            &PatchParams {
                field_manager: Some(names::SECRETS_FIELD_MANAGER.into()),
                ..PatchParams::default()
            },
            &Patch::Merge(&patch),
        ),
    )
    .await?
    .map_err(|e| job_error(e, &what))?;
    tracing::info!(keys = ?missing, "generated the site's secrets");
    Ok(())
}

/// Waits until the ingress controller publishes the site's Ingress address; returns its
/// hostname, or its IP when it has no hostname.
#[tracing::instrument(name = "kubernetes.wait_ingress", skip_all, fields(k8s.namespace = namespace))]
pub async fn wait_ingress_address(
    client: &Client,
    namespace: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let api: Api<Ingress> = Api::namespaced(client.clone(), namespace);
    let has_address = |ingress: Option<&Ingress>| ingress.and_then(ingress_address).is_some();
    let what = format!(
        "waiting for the address of Ingress {namespace}/{}",
        names::SITE
    );
    let ingress = wait_for(api, names::SITE, has_address, timeout, &what, || {
        "the ingress controller has not published an address (set dns.target if it never does)"
            .to_owned()
    })
    .await?;
    ingress
        .as_ref()
        .and_then(ingress_address)
        .ok_or_else(|| anyhow::anyhow!("{what}: the Ingress has no address"))
}

/// Deletes the namespace (and with it everything of the site), then waits, at most `wait`,
/// until it is gone. `uid` is the namespace [`check_owner`] found: the deletion holds only for
/// that very object, never for one that replaced it since. Succeeds at once when it is
/// already gone; a namespace that is already terminating (409) is waited for like a fresh
/// deletion.
#[tracing::instrument(name = "kubernetes.delete_namespace", skip_all, fields(k8s.namespace = namespace))]
pub async fn delete_namespace(
    client: &Client,
    namespace: &str,
    uid: Option<String>,
    timeout: Duration,
    wait: Duration,
) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let what = format!("deleting namespace {namespace}");
    let params = DeleteParams {
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match within(timeout, &what, api.delete(namespace, &params)).await? {
        Ok(_) => tracing::info!("namespace deletion started"),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            tracing::info!("namespace is already gone");
            return Ok(());
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            tracing::info!("namespace is already terminating");
        }
        Err(error) => return Err(job_error(error, &what)),
    }
    let gone = |ns: Option<&Namespace>| ns.is_none();
    let what = format!("waiting for namespace {namespace} to be gone");
    wait_for(api, namespace, gone, wait, &what, || {
        "it is still terminating (a finalizer may be stuck)".to_owned()
    })
    .await?;
    tracing::info!("namespace is gone");
    Ok(())
}

/// Deletes the content ConfigMaps of `namespace` but the one labelled `keep`: what earlier
/// versions of a static site left behind once a newer one serves. One request, by label: berth
/// never reads ConfigMaps back.
#[tracing::instrument(name = "kubernetes.delete_old_content", skip_all, fields(k8s.namespace = namespace))]
pub async fn delete_content_except(
    client: &Client,
    namespace: &str,
    keep: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let what = format!("deleting the earlier content of namespace {namespace}");
    let selector = format!("{label},{label}!={keep}", label = names::CONTENT_LABEL);
    let params = ListParams::default().labels(&selector);
    match within(
        timeout,
        &what,
        api.delete_collection(&DeleteParams::background(), &params),
    )
    .await?
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(job_error(error, &what)),
    }
}

/// Watches `name` until `condition` holds, at most `timeout`; `why_not` says what was last
/// seen when time runs out.
async fn wait_for<K>(
    api: Api<K>,
    name: &str,
    condition: impl Condition<K>,
    timeout: Duration,
    what: &str,
    why_not: impl FnOnce() -> String,
) -> anyhow::Result<Option<K>>
where
    K: Clone + std::fmt::Debug + Send + serde::de::DeserializeOwned + kube::Resource + 'static,
{
    match tokio::time::timeout(timeout, await_condition(api, name, condition)).await {
        Ok(Ok(object)) => Ok(object),
        Ok(Err(kube::runtime::wait::Error::ProbeFailed(error))) => Err(watch_error(error, what)),
        Err(_) => Err(anyhow::anyhow!(
            "{what}: not done after {} s: {}",
            timeout.as_secs(),
            why_not()
        )),
    }
}

/// `Ok` when the Deployment has rolled out, as `kubectl rollout status` judges it: the
/// controller has seen the latest spec (`observedGeneration >= generation`), and every desired
/// replica is updated and available, with no old replica left. Else why not.
pub fn rollout_status(deployment: &Deployment) -> Result<(), String> {
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let status = deployment.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return Err(format!(
            "the controller has not seen generation {generation} yet (observed {observed})"
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        return Err(format!("{updated} of {desired} replicas updated"));
    }
    if total > updated {
        return Err(format!(
            "{} old replicas still terminating",
            total - updated
        ));
    }
    if available != desired {
        return Err(format!("{available} of {desired} replicas available"));
    }
    Ok(())
}

/// 256 random bits as 64 hex characters: safe in a URL, a connection string or a config file.
fn random_text() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// `Ok` when the StatefulSet has rolled out: the controller has seen the latest spec, and
/// every desired replica runs the current revision and is ready. Else why not.
pub fn stateful_set_status(set: &StatefulSet) -> Result<(), String> {
    let desired = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = set.metadata.generation.unwrap_or(0);
    let status = set.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return Err(format!(
            "the controller has not seen generation {generation} yet (observed {observed})"
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    if desired > 0
        && status.update_revision.is_some()
        && status.current_revision != status.update_revision
    {
        return Err(format!("{updated} of {desired} replicas updated"));
    }
    if status.replicas > desired {
        return Err(format!(
            "{} old replicas still terminating",
            status.replicas - desired
        ));
    }
    if ready != desired {
        return Err(format!("{ready} of {desired} replicas ready"));
    }
    Ok(())
}

/// The first load-balancer hostname or IP the ingress controller published.
pub fn ingress_address(ingress: &Ingress) -> Option<String> {
    let entries = ingress
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?;
    entries.iter().find_map(|entry| {
        entry
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .or_else(|| entry.ip.clone().filter(|ip| !ip.is_empty()))
    })
}

/// Runs one request with a deadline; a missed deadline is a retryable error.
async fn within<T>(
    timeout: Duration,
    what: &str,
    request: impl std::future::Future<Output = T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(timeout, request).await.map_err(|_| {
        anyhow::anyhow!(
            "{what}: no answer from the Kubernetes API within {} s",
            timeout.as_secs()
        )
    })
}

/// A job error from an API error. Retrying cannot fix an object the API server refuses as
/// invalid (400, 422) or a permission berth lacks (403, except while a namespace terminates):
/// those are [`Permanent`]. Conflicts, throttling, server errors and network trouble retry.
pub fn job_error(error: kube::Error, what: &str) -> anyhow::Error {
    if let kube::Error::Api(status) = &error {
        let permanent = match status.code {
            400 | 422 => true,
            403 => !status.message.contains("being terminated"),
            _ => false,
        };
        if permanent {
            return Permanent::new(format!(
                "{what}: the Kubernetes API refused it ({} {}): {}",
                status.code, status.reason, status.message
            ))
            .into();
        }
    }
    anyhow::Error::new(error).context(what.to_owned())
}

fn watch_error(error: kube::runtime::watcher::Error, what: &str) -> anyhow::Error {
    use kube::runtime::watcher::Error as W;
    match error {
        W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e) => job_error(e, what),
        other => anyhow::Error::new(other).context(what.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::networking::v1::{
        IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment(replicas: i32, generation: i64, status: DeploymentStatus) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..DeploymentSpec::default()
            }),
            status: Some(status),
        }
    }

    fn status(observed: i64, replicas: i32, updated: i32, available: i32) -> DeploymentStatus {
        DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        }
    }

    #[test]
    fn a_deployment_is_rolled_out_only_when_the_latest_spec_is_available() {
        assert_eq!(
            rollout_status(&deployment(1, 2, status(2, 1, 1, 1))),
            Ok(())
        );
        assert_eq!(
            rollout_status(&deployment(0, 3, status(3, 0, 0, 0))),
            Ok(())
        );
        let not_yet = [
            ("the controller lags", deployment(1, 3, status(2, 1, 1, 1))),
            (
                "no status yet",
                deployment(1, 1, DeploymentStatus::default()),
            ),
            (
                "old pod still serving",
                deployment(1, 2, status(2, 2, 1, 1)),
            ),
            ("new pod not updated", deployment(1, 2, status(2, 1, 0, 1))),
            (
                "new pod not available",
                deployment(1, 2, status(2, 1, 1, 0)),
            ),
            ("scaling down to zero", deployment(0, 2, status(2, 1, 0, 1))),
        ];
        for (why, d) in not_yet {
            assert!(rollout_status(&d).is_err(), "{why}");
        }
    }

    #[test]
    fn the_ingress_address_prefers_a_hostname_then_an_ip() {
        let ingress = |entries: Vec<IngressLoadBalancerIngress>| Ingress {
            status: Some(IngressStatus {
                load_balancer: Some(IngressLoadBalancerStatus {
                    ingress: Some(entries),
                }),
            }),
            ..Ingress::default()
        };
        let entry = |hostname: Option<&str>, ip: Option<&str>| IngressLoadBalancerIngress {
            hostname: hostname.map(str::to_owned),
            ip: ip.map(str::to_owned),
            ..IngressLoadBalancerIngress::default()
        };
        assert_eq!(
            ingress_address(&ingress(vec![entry(Some("lb.example"), Some("10.0.0.1"))])),
            Some("lb.example".into())
        );
        assert_eq!(
            ingress_address(&ingress(vec![entry(None, Some("10.0.0.1"))])),
            Some("10.0.0.1".into())
        );
        assert_eq!(ingress_address(&ingress(vec![])), None);
        assert_eq!(ingress_address(&Ingress::default()), None);
    }

    #[test]
    fn refusals_are_permanent_and_the_rest_retries() {
        let api = |code: u16, reason: &str, message: &str| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                reason: reason.into(),
                message: message.into(),
                ..kube::core::Status::default()
            }))
        };
        let permanent = [
            api(422, "Invalid", "spec.template: Invalid value"),
            api(400, "BadRequest", "bad"),
            api(403, "Forbidden", "cannot patch resource \"deployments\""),
        ];
        for error in permanent {
            assert!(crate::error::is_permanent(&job_error(error, "x")));
        }
        let retryable = [
            api(409, "Conflict", "the object has been modified"),
            api(500, "InternalError", "etcd timeout"),
            api(429, "TooManyRequests", "slow down"),
            api(404, "NotFound", "namespaces \"x\" not found"),
            api(
                403,
                "Forbidden",
                "unable to create new content in namespace x because it is being terminated",
            ),
        ];
        for error in retryable {
            assert!(!crate::error::is_permanent(&job_error(error, "x")));
        }
    }
}
