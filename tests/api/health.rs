use std::collections::BTreeSet;

use crate::helpers::TestApp;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn metrics_are_exposed_in_prometheus_format() {
    let app = TestApp::spawn().await;
    app.signup("metric-shop").await;
    app.drain_jobs().await;
    let metrics = app.get_text("/metrics").await;
    for name in [
        "berth_sites{state=\"ready\"}",
        "berth_signups_total",
        "berth_jobs_total",
        "berth_provision_duration_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
}

#[tokio::test]
async fn unknown_paths_get_a_json_404() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

/// The routes come from the list that registers them with actix (`berth::routes::registered`):
/// the document has each of them with its method and nothing else, each answers at its path
/// (never the fallback `404 not_found` of unknown paths, nor `405`), and any other method on a
/// registered path gets `405` with `Allow` naming exactly the registered methods.
#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let registered: BTreeSet<(String, String)> = berth::routes::registered().into_iter().collect();
    assert!(
        registered.contains(&("POST".to_owned(), "/signup".to_owned())),
        "{registered:?}"
    );
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|key| HTTP_METHODS.contains(&key.as_str()))
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    assert_eq!(documented, registered, "the document and the router differ");

    for (method, path) in &registered {
        let url = app.url(
            &path
                .replace("{tenant}", "default")
                .replace("{id}", "site_00000000000000000000000000")
                .replace("{name}", "no-such-plugin"),
        );
        let response = app
            .client
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path} is not routed: {body}");
        assert!(
            !(status == 404 && body.contains("\"no such endpoint\"")),
            "{method} {path} fell through to the unknown-path answer: {body}"
        );
        let response = app
            .client
            .request(reqwest::Method::PATCH, &url)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "PATCH {path}");
        let mut allowed: Vec<&str> = registered
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.as_str())
            .collect();
        allowed.sort_unstable();
        assert_eq!(
            response.headers()["allow"].to_str().unwrap(),
            allowed.join(", "),
            "Allow of {path}"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());

    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        }
    }
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let pointer = reference.strip_prefix('#').unwrap();
        assert!(
            doc.pointer(pointer).is_some(),
            "{reference} does not resolve"
        );
    }
}

fn collect_refs(value: &serde_json::Value, refs: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", serde_json::Value::String(target)) => refs.push(target.clone()),
                    _ => collect_refs(value, refs),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
