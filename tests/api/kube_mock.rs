//! A mock Kubernetes API server in the style of kube-rs's controller-rs: a `tower_test` service
//! under a real `kube::Client`, and a verifier that takes the requests one at a time, checks
//! each one's method, path, query and body against the scenario, in order, and answers as the
//! API server would. A request the scenario does not expect fails the test; so does one it
//! expects but never gets.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use berth::adapters::runtime::kubernetes::manifests::{Manifests, Object};
use berth::adapters::runtime::kubernetes::names;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The query every server-side apply of berth carries.
pub const APPLY_QUERY: &str = "?&force=true&fieldManager=berth";

/// One request the scenario expects and the answer it gets.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: Method,
    /// Path and query, exactly.
    pub uri: String,
    /// The JSON body the request must carry, exactly; `None` = no body expected.
    pub body: Option<Value>,
    pub reply: Reply,
}

#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON answer with this status.
    Json(StatusCode, Value),
    /// A watch stream: these events, one JSON object per line, then the end of the stream.
    Events(Vec<Value>),
    /// No answer: the client's deadline must end the request.
    Silence,
}

/// A client wired to a fresh mock server, and the server's handle.
pub fn pair() -> (kube::Client, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), ApiServer(handle))
}

pub struct ApiServer(Handle);

impl ApiServer {
    /// Serves `scenario` in a task; awaiting it (see [`finish`]) reports the first mismatch.
    pub fn run(self, scenario: Vec<Exchange>) -> JoinHandle<()> {
        let mut handle = self.0;
        tokio::spawn(async move {
            let total = scenario.len();
            for (i, expected) in scenario.into_iter().enumerate() {
                let Some((request, send)) = handle.next_request().await else {
                    panic!(
                        "request {}/{total} never came: {} {}",
                        i + 1,
                        expected.method,
                        expected.uri
                    );
                };
                let (parts, body) = request.into_parts();
                let uri = parts.uri.to_string();
                assert_eq!(
                    (parts.method.clone(), uri.as_str()),
                    (expected.method.clone(), expected.uri.as_str()),
                    "request {}/{total}",
                    i + 1
                );
                if parts.method == Method::PATCH {
                    // Server-side apply; a merge patch only where berth adds generated secrets.
                    let kind = if expected.uri.contains(APPLY_QUERY) {
                        "application/apply-patch+yaml"
                    } else {
                        "application/merge-patch+json"
                    };
                    assert_eq!(
                        parts
                            .headers
                            .get("content-type")
                            .map(|v| v.to_str().unwrap()),
                        Some(kind),
                        "request {}/{total} ({uri})",
                        i + 1
                    );
                }
                let bytes = body.collect_bytes().await.unwrap();
                match &expected.body {
                    Some(want) => {
                        let got: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                            panic!("request {}/{total} ({uri}): body is not JSON: {e}", i + 1)
                        });
                        assert!(
                            matches(&got, want),
                            "request {}/{total} ({uri}): body\n got: {got}\nwant: {want}",
                            i + 1
                        );
                    }
                    None => {
                        assert!(
                            bytes.is_empty(),
                            "request {}/{total} ({uri}) has a body",
                            i + 1
                        );
                    }
                }
                match expected.reply {
                    Reply::Json(status, value) => send.send_response(
                        Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Body::from(serde_json::to_vec(&value).unwrap()))
                            .unwrap(),
                    ),
                    Reply::Events(events) => {
                        let mut lines = Vec::new();
                        for event in events {
                            lines.extend(serde_json::to_vec(&event).unwrap());
                            lines.push(b'\n');
                        }
                        send.send_response(
                            Response::builder()
                                .status(StatusCode::OK)
                                .body(Body::from(lines))
                                .unwrap(),
                        )
                    }
                    Reply::Silence => {
                        // Hold the answer back (the client gives up first) while serving on.
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            drop(send);
                        });
                    }
                }
            }
        })
    }
}

/// In an expected body: any generated secret (base64 of 64 hex characters).
pub const GENERATED: &str = "<a generated secret>";

/// `got` is `want`, where a [`GENERATED`] in `want` stands for any generated secret.
fn matches(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::String(_), Value::String(marker)) if marker == GENERATED => {
            serde_json::from_value::<k8s_openapi::ByteString>(got.clone())
                .is_ok_and(|b| b.0.len() == 64 && b.0.iter().all(u8::is_ascii_hexdigit))
        }
        (Value::Object(got), Value::Object(want)) => {
            got.len() == want.len()
                && want
                    .iter()
                    .all(|(key, w)| got.get(key).is_some_and(|g| matches(g, w)))
        }
        (Value::Array(got), Value::Array(want)) => {
            got.len() == want.len() && got.iter().zip(want).all(|(g, w)| matches(g, w))
        }
        _ => got == want,
    }
}

/// Waits for the scenario to be served completely; panics with the verifier's message.
pub async fn finish(server: JoinHandle<()>) {
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => std::panic::resume_unwind(error.into_panic()),
        Err(_) => panic!("the scenario was not played to the end"),
    }
}

/// The API path of an object (without query).
pub fn path(object: &Object) -> String {
    let resource = &object.resource;
    let base = if resource.group.is_empty() {
        format!("/api/{}", resource.version)
    } else {
        format!("/apis/{}/{}", resource.group, resource.version)
    };
    match &object.namespace {
        Some(ns) => format!("{base}/namespaces/{ns}/{}/{}", resource.plural, object.name),
        None => format!("{base}/{}/{}", resource.plural, object.name),
    }
}

/// The server-side apply of one object, answered as applied.
pub fn apply(object: &Object) -> Exchange {
    Exchange {
        method: Method::PATCH,
        uri: format!("{}{APPLY_QUERY}", path(object)),
        body: Some(object.body.clone()),
        reply: Reply::Json(StatusCode::OK, object.body.clone()),
    }
}

/// Every object of a site applied, in order.
pub fn apply_all(manifests: &Manifests) -> Vec<Exchange> {
    manifests.objects().iter().map(apply).collect()
}

/// An API error answer of `status`, as the API server words it.
pub fn failure(status: StatusCode, reason: &str, message: &str) -> Reply {
    Reply::Json(
        status,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": status.as_u16()
        }),
    )
}

fn list_uri(collection: &str) -> String {
    format!("{collection}?&fieldSelector=metadata.name%3D{{name}}&limit=500")
}

/// The initial list of a watch on one object by name, answered with `items`.
pub fn list(collection: &str, name: &str, kind: &str, items: Vec<Value>) -> Exchange {
    Exchange {
        method: Method::GET,
        uri: list_uri(collection).replace("{name}", name),
        body: None,
        reply: Reply::Json(
            StatusCode::OK,
            json!({"kind": format!("{kind}List"), "apiVersion": "v1",
                   "metadata": {"resourceVersion": "100"}, "items": items}),
        ),
    }
}

/// The watch that follows a list, answered with `events`.
pub fn watch(collection: &str, name: &str, reply: Reply) -> Exchange {
    Exchange {
        method: Method::GET,
        uri: format!(
            "{collection}?&watch=true&timeoutSeconds=290&fieldSelector=metadata.name%3D{name}&allowWatchBookmarks=true&resourceVersion=100"
        ),
        body: None,
        reply,
    }
}

pub fn deployments(namespace: &str) -> String {
    format!("/apis/apps/v1/namespaces/{namespace}/deployments")
}

pub fn stateful_sets(namespace: &str) -> String {
    format!("/apis/apps/v1/namespaces/{namespace}/statefulsets")
}

pub fn ingresses(namespace: &str) -> String {
    format!("/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses")
}

pub const NAMESPACES: &str = "/api/v1/namespaces";

/// A Deployment as the controller reports it: `available` of `replicas` available, status
/// observed for its generation.
pub fn deployment(namespace: &str, replicas: i32, available: i32) -> Value {
    deployment_named(namespace, "site", replicas, available)
}

/// The same for Deployment `name`.
pub fn deployment_named(namespace: &str, name: &str, replicas: i32, available: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "generation": 2, "resourceVersion": "101"},
        "spec": {"replicas": replicas, "selector": {}, "template": {}},
        "status": {"observedGeneration": 2, "replicas": replicas, "updatedReplicas": replicas,
                   "availableReplicas": available}
    })
}

/// A StatefulSet whose one replica runs its current revision and is ready.
pub fn stateful_set_ready(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace, "generation": 3, "resourceVersion": "104"},
        "spec": {"replicas": 1, "selector": {}, "template": {}, "serviceName": name},
        "status": {"observedGeneration": 3, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                   "currentRevision": format!("{name}-1"), "updateRevision": format!("{name}-1")}
    })
}

pub fn ingress(namespace: &str, address: Option<&str>) -> Value {
    let status = match address {
        Some(ip) => json!({"loadBalancer": {"ingress": [{"ip": ip}]}}),
        None => json!({"loadBalancer": {}}),
    };
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "site", "namespace": namespace, "resourceVersion": "102"},
        "status": status
    })
}

/// The uid of every namespace the mock server answers with.
pub const NAMESPACE_UID: &str = "ns-uid-1";

/// A namespace berth made for site `tenant/site`, in `phase`.
pub fn namespace_object(name: &str, tenant: &str, site: &str, phase: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "uid": NAMESPACE_UID, "resourceVersion": "103",
                     "labels": {"app.kubernetes.io/managed-by": "berth",
                                "berth.dev/tenant": tenant, "berth.dev/site": site}},
        "status": {"phase": phase}
    })
}

/// The read of a namespace that comes before berth applies into it or deletes it.
pub fn get_namespace(namespace: &str, reply: Reply) -> Exchange {
    Exchange {
        method: Method::GET,
        uri: format!("{NAMESPACES}/{namespace}"),
        body: None,
        reply,
    }
}

/// The Deployment is ready at once, and the Ingress has an address.
pub fn ready(namespace: &str, address: &str) -> Vec<Exchange> {
    vec![
        list(
            &deployments(namespace),
            "site",
            "Deployment",
            vec![deployment(namespace, 1, 1)],
        ),
        list(
            &ingresses(namespace),
            "site",
            "Ingress",
            vec![ingress(namespace, Some(address))],
        ),
    ]
}

/// The DELETE of every content ConfigMap of `namespace` but the one `manifests` serves, by
/// label.
pub fn delete_content_except(namespace: &str, manifests: &Manifests) -> Exchange {
    let content = manifests
        .content
        .as_ref()
        .expect("a static site has content");
    let keep = &content.metadata.labels.as_ref().unwrap()[names::CONTENT_LABEL];
    let selector = format!("{label},{label}!={keep}", label = names::CONTENT_LABEL);
    let query = serde_urlencoded::to_string([("labelSelector", &selector)]).unwrap();
    Exchange {
        method: Method::DELETE,
        uri: format!("/api/v1/namespaces/{namespace}/configmaps?&{query}"),
        body: Some(json!({"propagationPolicy": "Background"})),
        reply: Reply::Json(
            StatusCode::OK,
            json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {}, "items": []}),
        ),
    }
}

/// The DELETE of a namespace (its contents go with it, in the background), only if it is
/// still the object berth read.
pub fn delete_namespace(namespace: &str, reply: Reply) -> Exchange {
    Exchange {
        method: Method::DELETE,
        uri: format!("{NAMESPACES}/{namespace}?"),
        body: Some(json!({"propagationPolicy": "Background",
                          "preconditions": {"uid": NAMESPACE_UID}})),
        reply,
    }
}
