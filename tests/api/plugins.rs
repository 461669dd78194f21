//! Policy plugins: upload validation, bindings, the signup hooks, hostile modules and the CLI.

use std::path::{Path, PathBuf};

use berth::adapters::plugin_host::{Metering, PluginHost};
use berth::configuration::{OnError, PolicySettings};
use reqwest::Method;

use crate::helpers::{TestApp, ACME_TOKEN, ADMIN_TOKEN};

/// A shipped example plugin: the module committed under `plugins/dist` (the bytes built into
/// berth, rebuilt from source byte for byte by `.ci/run`).
/// `html-guard` bound on tenant `default`'s html hook in the configuration, failing closed.
pub fn html_guard_binding() -> berth::configuration::PolicySettings {
    berth::configuration::PolicySettings {
        plugin: "html-guard".into(),
        file: example("html_guard.wasm").display().to_string(),
        hook: "html".into(),
        settings: serde_json::json!({}),
        on_error: berth::configuration::OnError::Deny,
        mutating: false,
    }
}

pub fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plugins/dist")
        .join(file)
}

/// A hostile or hand-made module from `tests/fixtures/plugins/*.wat`, assembled.
pub fn fixture(name: &str) -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/plugins/{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn upload(
    app: &TestApp,
    tenant: &str,
    name: &str,
    bytes: Vec<u8>,
    query: &str,
) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/admin/t/{tenant}/plugins/{name}{query}")))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

async fn bind(app: &TestApp, tenant: &str, bindings: serde_json::Value) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/admin/t/{tenant}/policies")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&bindings)
        .send()
        .await
        .unwrap()
}

async fn signup(app: &TestApp, tenant: &str, name: &str, html: &str) -> reqwest::Response {
    app.post_json(
        &format!("/t/{tenant}/signup"),
        &serde_json::json!({"name": name, "email": "ann@example.com", "html": html}),
    )
    .await
}

#[tokio::test]
async fn uploaded_plugins_can_be_listed_fetched_replaced_and_deleted() {
    let app = TestApp::spawn().await;
    let bytes = std::fs::read(example("reserved_names.wasm")).unwrap();
    let created = upload(&app, "default", "reserved-names", bytes.clone(), "").await;
    assert_eq!(created.status(), 201);
    let body: serde_json::Value = created.json().await.unwrap();
    assert!(body["hash"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(body["module"]["abi_version"], 1);
    assert_eq!(body["validates_settings"], true);
    assert_eq!(
        upload(&app, "default", "reserved-names", bytes, "")
            .await
            .status(),
        200,
        "a re-upload replaces"
    );

    let list: serde_json::Value = app
        .admin(Method::GET, "/admin/t/default/plugins", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["plugins"].as_array().unwrap().len(), 1);
    assert!(
        list["plugins"][0].get("module").is_none(),
        "listings never carry module bytes"
    );
    assert_eq!(
        app.admin(
            Method::GET,
            "/admin/t/default/plugins/reserved-names",
            ADMIN_TOKEN
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        app.admin(Method::GET, "/admin/t/default/plugins/nope", ADMIN_TOKEN)
            .await
            .status(),
        404
    );

    assert_eq!(
        app.admin(
            Method::DELETE,
            "/admin/t/default/plugins/reserved-names",
            ADMIN_TOKEN
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        app.admin(
            Method::DELETE,
            "/admin/t/default/plugins/reserved-names",
            ADMIN_TOKEN
        )
        .await
        .status(),
        404
    );
}

#[tokio::test]
async fn bad_modules_are_refused_at_upload_with_a_reason_that_names_the_problem() {
    let app = TestApp::spawn().await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "wasi",
            fixture("wasi_import"),
            "wasi_snapshot_preview1.fd_write",
        ),
        (
            "signature",
            fixture("wrong_signature"),
            "berth_validate as (i32, i32) -> (i32)",
        ),
        (
            "version",
            fixture("abi_version_2"),
            "berth_abi_version returned 2",
        ),
        (
            "memory",
            fixture("huge_memory"),
            "more than a call may have: module memory does not fit",
        ),
        ("text", b"(module)".to_vec(), "text .wat is not accepted"),
        (
            "garbage",
            b"\0asm\x01\0\0\0garbage".to_vec(),
            "not a valid WebAssembly module",
        ),
    ];
    for (name, bytes, reason) in cases {
        let response = upload(&app, "default", name, bytes, "").await;
        assert_eq!(response.status(), 400, "{name}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "module_refused", "{name}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{name}: {message}");
    }
    let wrong_type = app
        .client
        .put(app.url("/admin/t/default/plugins/x"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/octet-stream")
        .body(fixture("allow"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
    assert_eq!(
        upload(&app, "default", "Bad_Name", fixture("allow"), "")
            .await
            .status(),
        400
    );
    let list: serde_json::Value = app
        .admin(Method::GET, "/admin/t/default/plugins", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        list["plugins"].as_array().unwrap().is_empty(),
        "nothing refused was stored"
    );
}

#[tokio::test]
async fn modules_over_the_size_limit_are_refused() {
    let app = TestApp::spawn_with(|s| s.plugins.max_module_bytes = 1000).await;
    let response = upload(
        &app,
        "default",
        "big",
        std::fs::read(example("html_guard.wasm")).unwrap(),
        "",
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("larger than 1000 bytes"));
}

#[tokio::test]
async fn signups_run_the_name_hook_then_the_html_hook_with_each_plugins_reasons() {
    let app = TestApp::spawn().await;
    for (name, file) in [
        ("reserved-names", "reserved_names.wasm"),
        ("brand-guard", "brand_guard.wasm"),
        ("html-guard", "html_guard.wasm"),
        ("digit-limit", "digit_limit.wasm"),
    ] {
        assert_eq!(
            upload(
                &app,
                "default",
                name,
                std::fs::read(example(file)).unwrap(),
                ""
            )
            .await
            .status(),
            201
        );
    }
    let bound = bind(
        &app,
        "default",
        serde_json::json!([
            {"plugin": "reserved-names", "hook": "name", "settings": {"names": ["shop"]}},
            {"plugin": "brand-guard", "hook": "name", "settings": {"brands": ["paypal"]}},
            {"plugin": "digit-limit", "hook": "name", "settings": {"max_digits": 2}},
            {"plugin": "html-guard", "hook": "html"},
        ]),
    )
    .await;
    assert_eq!(bound.status(), 200);
    let listed: serde_json::Value = app
        .admin(Method::GET, "/admin/t/default/policies", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["policies"].as_array().unwrap().len(), 4);
    assert_eq!(listed["policies"][3]["on_error"], "deny");

    let reserved = signup(&app, "default", "shop", "<p>hi</p>").await;
    assert_eq!(reserved.status(), 422);
    let body: serde_json::Value = reserved.json().await.unwrap();
    assert_eq!(body["error"]["code"], "policy_rejected");
    assert_eq!(body["error"]["reasons"][0]["plugin"], "reserved-names");
    assert_eq!(body["error"]["reasons"][0]["code"], "reserved");

    let lookalike = signup(&app, "default", "paypa1-123", "<p>hi</p>").await;
    let body: serde_json::Value = lookalike.json().await.unwrap();
    let plugins: Vec<_> = body["error"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["plugin"].as_str().unwrap())
        .collect();
    assert_eq!(
        plugins,
        ["brand-guard", "digit-limit"],
        "every plugin that said no is reported"
    );

    let scripted = signup(
        &app,
        "default",
        "fine-shop",
        "<p onclick=\"x()\">hi</p>\n<script>alert(1)</script>",
    )
    .await;
    assert_eq!(scripted.status(), 422);
    let body: serde_json::Value = scripted.json().await.unwrap();
    let codes: Vec<_> = body["error"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["inline_handler", "script_tag"]);

    assert_eq!(
        signup(&app, "default", "fine-shop", "<h1>Welcome</h1>")
            .await
            .status(),
        201
    );
    assert_eq!(app.count_sites().await, 1, "rejected signups store nothing");
}

#[tokio::test]
async fn settings_are_checked_by_the_plugin_when_a_binding_is_saved() {
    let app = TestApp::spawn().await;
    upload(
        &app,
        "default",
        "brand-guard",
        std::fs::read(example("brand_guard.wasm")).unwrap(),
        "",
    )
    .await;
    let refused = bind(&app, "default", serde_json::json!([{"plugin": "brand-guard", "hook": "name", "settings": {"brands": "paypal"}}])).await;
    assert_eq!(refused.status(), 422);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_settings");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("brands must be a list of strings"),
        "{body}"
    );

    for (bindings, why) in [
        (
            serde_json::json!([{"plugin": "missing", "hook": "name"}]),
            "no plugin named",
        ),
        (
            serde_json::json!([{"plugin": "brand-guard", "hook": "footer"}]),
            "unknown hook",
        ),
        (
            serde_json::json!([{"plugin": "brand-guard", "hook": "name", "on_error": "maybe"}]),
            "on_error",
        ),
        (
            serde_json::json!([{"plugin": "brand-guard", "hook": "name", "settings": []}]),
            "settings must be a JSON object",
        ),
        (serde_json::json!({"plugin": "brand-guard"}), "invalid type"),
    ] {
        let response = bind(&app, "default", bindings).await;
        assert_eq!(response.status(), 400, "{why}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{why}: {body}"
        );
    }
    let listed: serde_json::Value = app
        .admin(Method::GET, "/admin/t/default/policies", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        listed["policies"].as_array().unwrap().is_empty(),
        "refused bindings leave nothing behind"
    );
}

#[tokio::test]
async fn the_test_endpoint_reports_each_failure_class() {
    let app = TestApp::spawn().await;
    let cases = [
        ("endless_loop", "timeout"),
        ("memory_hog", "oom"),
        ("deep_recursion", "crash"),
        ("aborts", "crash"),
        ("alloc_traps", "crash"),
        ("alloc_returns_zero", "abi_error"),
        ("oob_output", "abi_error"),
        ("invalid_utf8_output", "bad_output"),
        ("oversized_output", "bad_output"),
        ("not_json_output", "bad_output"),
    ];
    for (fixture_name, class) in cases {
        let name = fixture_name.replace('_', "-");
        assert_eq!(
            upload(&app, "default", &name, fixture(fixture_name), "")
                .await
                .status(),
            201,
            "{fixture_name} uploads"
        );
        let response = app
            .client
            .post(app.url(&format!("/admin/t/default/plugins/{name}/test")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"hook": "html", "value": "<p>hi</p>"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{fixture_name}");
        let result: serde_json::Value = response.json().await.unwrap();
        assert_eq!(result["verdict"], "error", "{fixture_name}: {result}");
        assert_eq!(result["error_class"], class, "{fixture_name}: {result}");
    }
    upload(&app, "default", "allow", fixture("allow"), "").await;
    let ok: serde_json::Value = app
        .client
        .post(app.url("/admin/t/default/plugins/allow/test"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"hook": "name", "value": "shop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["verdict"], "allow");
}

/// Hostile modules deny their own tenant's signups (fail closed) while signups elsewhere go on.
#[tokio::test]
async fn hostile_modules_deny_with_policy_error_while_other_signups_succeed() {
    // Every hostile module must get to run and fail in its own way, however loaded the machine:
    // a submission budget that a slow machine spends would turn the later ones into `budget`
    // (which has its own test).
    let app = TestApp::spawn_with(|s| s.plugins.submission_budget_ms = 60_000).await;
    let hostile = [
        "endless_loop",
        "memory_hog",
        "deep_recursion",
        "oob_output",
        "invalid_utf8_output",
        "alloc_traps",
    ];
    for name in hostile {
        let plugin = name.replace('_', "-");
        assert_eq!(
            upload(&app, "acme", &plugin, fixture(name), "")
                .await
                .status(),
            201
        );
    }
    let bindings: Vec<_> = hostile
        .iter()
        .map(|n| serde_json::json!({"plugin": n.replace('_', "-"), "hook": "html"}))
        .collect();
    assert_eq!(
        bind(&app, "acme", serde_json::Value::Array(bindings))
            .await
            .status(),
        200
    );

    let denied = (0..4).map(|i| {
        let app = &app;
        async move { signup(app, "acme", &format!("acme-shop-{i}"), "<p>hi</p>").await }
    });
    let fine = (0..20).map(|i| {
        let app = &app;
        async move { signup(app, "default", &format!("calm-shop-{i}"), "<p>hi</p>").await }
    });
    let (denied, fine) = tokio::join!(
        futures_util::future::join_all(denied),
        futures_util::future::join_all(fine)
    );
    for response in fine {
        assert_eq!(response.status(), 201);
    }
    for response in denied {
        assert_eq!(response.status(), 422);
        let body: serde_json::Value = response.json().await.unwrap();
        let reasons = body["error"]["reasons"].as_array().unwrap();
        assert_eq!(reasons.len(), hostile.len(), "{body}");
        assert!(
            reasons.iter().all(|r| r["code"] == "policy_error"),
            "{body}"
        );
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for class in ["timeout", "oom", "crash", "abi_error", "bad_output"] {
        assert!(
            metrics.contains(&format!("outcome=\"{class}\"")),
            "{class} is not counted:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn on_error_allow_lets_a_failing_plugin_pass() {
    let app = TestApp::spawn().await;
    // Metrics are process-wide: a plugin name no other test uses keeps this count its own.
    let plugin = "patient-loop";
    assert_eq!(
        upload(&app, "default", plugin, fixture("endless_loop"), "")
            .await
            .status(),
        201
    );
    let bound = bind(
        &app,
        "default",
        serde_json::json!([{"plugin": plugin, "hook": "name", "on_error": "allow"}]),
    )
    .await;
    assert_eq!(bound.status(), 200);
    let timeouts = calls_where(&app, &[("plugin", plugin), ("outcome", "timeout")]).await;
    assert_eq!(
        signup(&app, "default", "patient-shop", "<p>x</p>")
            .await
            .status(),
        201
    );
    assert_eq!(
        calls_where(&app, &[("plugin", plugin), ("outcome", "timeout")]).await,
        timeouts + 1,
        "the plugin ran on the signup and timed out"
    );
}

#[tokio::test]
async fn a_mutating_html_plugin_rewrites_what_is_stored_and_served() {
    let app = TestApp::spawn().await;
    assert_eq!(
        upload(
            &app,
            "default",
            "cleaner",
            fixture("rewrite"),
            "?mutating=true"
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        upload(&app, "default", "plain-rewriter", fixture("rewrite"), "")
            .await
            .status(),
        201
    );
    let refused = bind(
        &app,
        "default",
        serde_json::json!([{"plugin": "cleaner", "hook": "name"}]),
    )
    .await;
    assert_eq!(
        refused.status(),
        400,
        "mutating plugins only take the html hook"
    );
    bind(
        &app,
        "default",
        serde_json::json!([{"plugin": "cleaner", "hook": "html"}]),
    )
    .await;
    assert_eq!(
        signup(&app, "default", "clean-shop", "<p>original</p>")
            .await
            .status(),
        201
    );
    app.drain_jobs().await;
    assert_eq!(
        app.get_site("clean-shop.localhost")
            .await
            .text()
            .await
            .unwrap(),
        "<p>cleaned by a plugin</p>"
    );

    // The same module uploaded without ?mutating=true may not rewrite.
    bind(
        &app,
        "default",
        serde_json::json!([{"plugin": "plain-rewriter", "hook": "html"}]),
    )
    .await;
    assert_eq!(
        signup(&app, "default", "kept-shop", "<p>original</p>")
            .await
            .status(),
        201
    );
    app.drain_jobs().await;
    assert_eq!(
        app.get_site("kept-shop.localhost")
            .await
            .text()
            .await
            .unwrap(),
        "<p>original</p>"
    );
}

#[tokio::test]
async fn a_rewrite_that_breaks_the_built_in_rules_is_refused() {
    let app = TestApp::spawn_with(|s| s.tenants[0].html_max_bytes = 10).await;
    upload(
        &app,
        "default",
        "cleaner",
        fixture("rewrite"),
        "?mutating=true",
    )
    .await;
    bind(
        &app,
        "default",
        serde_json::json!([{"plugin": "cleaner", "hook": "html"}]),
    )
    .await;
    let response = signup(&app, "default", "small-shop", "<p>x</p>").await;
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["fields"][0]["code"], "too_large");
}

#[tokio::test]
async fn plugins_are_per_tenant() {
    let app = TestApp::spawn().await;
    upload(&app, "default", "allow", fixture("allow"), "").await;
    assert_eq!(
        app.admin(Method::GET, "/admin/t/default/plugins", ACME_TOKEN)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.admin(Method::GET, "/admin/t/default/plugins/allow", ACME_TOKEN)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.admin(Method::DELETE, "/admin/t/default/plugins/allow", ACME_TOKEN)
            .await
            .status(),
        403
    );
    let own: serde_json::Value = app
        .admin(Method::GET, "/admin/t/acme/plugins", ACME_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert!(own["plugins"].as_array().unwrap().is_empty());
    assert_eq!(
        app.admin(Method::GET, "/admin/t/nobody/plugins", ADMIN_TOKEN)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn a_bound_plugin_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    upload(&app, "default", "allow", fixture("allow"), "").await;
    bind(
        &app,
        "default",
        serde_json::json!([{"plugin": "allow", "hook": "name"}]),
    )
    .await;
    let response = app
        .admin(
            Method::DELETE,
            "/admin/t/default/plugins/allow",
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(response.status(), 409);
    bind(&app, "default", serde_json::json!([])).await;
    assert_eq!(
        app.admin(
            Method::DELETE,
            "/admin/t/default/plugins/allow",
            ADMIN_TOKEN
        )
        .await
        .status(),
        204
    );
}

#[tokio::test]
async fn policies_declared_in_the_configuration_run_and_are_managed_there() {
    let policy =
        |plugin: &str, file: &str, hook: &str, settings: serde_json::Value| PolicySettings {
            plugin: plugin.into(),
            file: example(file).display().to_string(),
            hook: hook.into(),
            settings,
            on_error: OnError::Deny,
            mutating: false,
        };
    let app = TestApp::spawn_with(|s| {
        s.tenants[0].policies = vec![
            policy(
                "reserved-names",
                "reserved_names.wasm",
                "name",
                serde_json::json!({"names": ["shop"]}),
            ),
            policy(
                "html-guard",
                "html_guard.wasm",
                "html",
                serde_json::json!({}),
            ),
        ];
    })
    .await;
    assert_eq!(
        signup(&app, "default", "shop", "<p>x</p>").await.status(),
        422
    );
    assert_eq!(
        signup(&app, "default", "nice-shop", "<iframe src=x></iframe>")
            .await
            .status(),
        422
    );
    assert_eq!(
        signup(&app, "default", "nice-shop", "<p>x</p>")
            .await
            .status(),
        201
    );
    let response = bind(&app, "default", serde_json::json!([])).await;
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "managed_by_config");
}

#[test]
fn the_host_counts_fuel_and_keeps_logs_bounded_and_tagged() {
    let settings = berth::configuration::PluginSettings {
        max_instances: 2,
        ..Default::default()
    };
    let host = PluginHost::new(&settings, Metering::Fuel).unwrap();
    let plugin = host.load(&fixture("rewrite")).unwrap();
    assert_eq!(plugin.info.imports, ["berth_v1.log"]);
    let report = host.validate(&plugin, "{}", "<p>x</p>").unwrap();
    assert!(report.fuel.unwrap() > 0);
    assert_eq!(report.logs.len(), 1);
    assert_eq!(report.logs[0].message, "rewrote the page");
    // Loading the same bytes again reuses the compiled module.
    let again = host.load(&fixture("rewrite")).unwrap();
    assert!(std::sync::Arc::ptr_eq(&plugin, &again));
    // The host signups run on counts none: the deadline bounds its calls.
    let service = PluginHost::new(&settings, Metering::DeadlineOnly).unwrap();
    let plugin = service.load(&fixture("rewrite")).unwrap();
    let report = service.validate(&plugin, "{}", "<p>x</p>").unwrap();
    assert_eq!(report.fuel, None);
    assert_eq!(report.logs[0].message, "rewrote the page");
}

/// The scanner inside `html-guard`, compiled natively, to compare the shipped module with.
#[path = "../../plugins/examples/html-guard/src/scan.rs"]
#[allow(dead_code)]
mod html_guard_scan;

/// The shipped `html-guard` module (with its WebAssembly SIMD search) reports exactly what its
/// scanner reports natively, on pages put together at random from the pieces that matter to it.
#[test]
fn the_shipped_html_guard_finds_what_its_scanner_finds_natively() {
    const PIECES: &[&str] = &[
        "<p",
        "<script>",
        "<IFRAME",
        "<a href=",
        "<form action=",
        "<meta http-equiv=",
        " ",
        "\n",
        "\t",
        "\"",
        "'",
        "=",
        ">",
        "/",
        "<!--",
        "-->",
        "onclick=x",
        "On",
        "javascript:",
        "https://e.example/x",
        "refresh",
        "é",
        "text, and more text",
        ":",
        "<",
        "o",
        "n",
    ];
    let host = PluginHost::new(
        &berth::configuration::PluginSettings {
            timeout_ms: 10_000,
            ..Default::default()
        },
        Metering::DeadlineOnly,
    )
    .unwrap();
    let guard = host
        .load(&std::fs::read(example("html_guard.wasm")).unwrap())
        .unwrap();
    let mut state = 0x853c_49e6_748f_ea9b_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as usize
    };
    let (mut clean, mut refused) = (0, 0);
    for _ in 0..2_000 {
        let page: String = (0..next() % 80)
            .map(|_| PIECES[next() % PIECES.len()])
            .collect();
        // html-guard reads nothing from the context but its settings, which default to none.
        let report = host.validate(&guard, "{}", &page).unwrap();
        let reasons: Vec<(String, String)> = report
            .result
            .reasons
            .into_iter()
            .map(|r| (r.code, r.message))
            .collect();
        let native: Vec<(String, String)> = html_guard_scan::scan(&page, &[])
            .into_iter()
            .map(|f| (f.code.to_string(), f.message))
            .collect();
        assert_eq!(reasons, native, "{page:?}");
        if native.is_empty() {
            clean += 1
        } else {
            refused += 1
        }
    }
    assert!(
        clean > 200 && refused > 200,
        "{clean} clean, {refused} refused"
    );
}

fn berth(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn plugin_check_and_run_work_from_the_command_line() {
    let guard = example("html_guard.wasm");
    let out = berth(&["plugin", "check", guard.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("conforms to ABI v1") && stdout.contains("validates settings: yes"),
        "{stdout}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.trim_start().starts_with("ok "))
            .count(),
        berth::adapters::plugin_host::CONFORMANCE.len(),
        "every conformance item is listed: {stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("index.html");
    std::fs::write(&page, "<h1>Hi</h1>\n<script>alert(1)</script>").unwrap();
    let out = berth(&[
        "plugin",
        "run",
        guard.to_str().unwrap(),
        "--hook",
        "html",
        "--value",
        &format!("@{}", page.display()),
    ]);
    assert_eq!(out.status.code(), Some(1), "a deny exits 1");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("verdict: deny") && stdout.contains("script_tag: line 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fuel used: ") && stdout.contains("time: "),
        "{stdout}"
    );

    let wasi = dir.path().join("wasi.wasm");
    std::fs::write(&wasi, fixture("wasi_import")).unwrap();
    let out = berth(&["plugin", "check", wasi.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a module that does not conform exits 1"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let imports = stdout
        .lines()
        .find(|l| l.contains("imports only what is granted"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        imports.contains("FAIL") && imports.contains("wasi_snapshot_preview1.fd_write"),
        "{stdout}"
    );
    assert!(
        stdout.contains("does not conform") && stdout.contains("skip"),
        "{stdout}"
    );

    let names = example("brand_guard.wasm");
    let out = berth(&[
        "plugin",
        "run",
        names.to_str().unwrap(),
        "--hook",
        "name",
        "--value",
        "paypa1",
        "--settings",
        "{\"brands\": [\"paypal\"]}",
    ]);
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("brand_imitation"));
    let out = berth(&[
        "plugin",
        "run",
        names.to_str().unwrap(),
        "--hook",
        "name",
        "--value",
        "paypa1-shop",
        "--settings",
        "{}",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "settings the plugin refuses exit 4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `count` bindings of `plugin` on `hook`.
fn bindings_of(plugin: &str, hook: &str, count: usize) -> serde_json::Value {
    serde_json::Value::Array(
        (0..count)
            .map(|_| serde_json::json!({"plugin": plugin, "hook": hook}))
            .collect(),
    )
}

/// The number of plugin calls counted for `tenant` with `outcome`.
async fn calls(app: &TestApp, tenant: &str, outcome: &str) -> u64 {
    calls_where(app, &[("tenant", tenant), ("outcome", outcome)]).await
}

/// The number of plugin calls counted with all of `labels`.
async fn calls_where(app: &TestApp, labels: &[(&str, &str)]) -> u64 {
    let metrics = app.get_text("/metrics").await;
    metrics
        .lines()
        .filter(|l| l.starts_with("berth_plugin_calls_total{"))
        .filter(|l| {
            labels
                .iter()
                .all(|(label, value)| l.contains(&format!("{label}=\"{value}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Tenant `spinner` gets `spins` bindings of a plugin that loops forever on the name hook;
/// tenant `calm` one that allows everything.
async fn spinner_beside_calm(app: &TestApp, spinner: &str, spins: usize, calm: &str) {
    upload(app, spinner, "spin", fixture("endless_loop"), "").await;
    let bound = bind(app, spinner, bindings_of("spin", "name", spins)).await;
    assert_eq!(bound.status(), 200);
    upload(app, calm, "allow", fixture("allow"), "").await;
    assert_eq!(
        bind(app, calm, bindings_of("allow", "name", 1))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_hook_holds_at_most_max_bindings_per_hook() {
    let app = TestApp::spawn_with(|s| s.plugins.max_bindings_per_hook = 3).await;
    upload(&app, "acme", "allow", fixture("allow"), "").await;
    for (count, status) in [(3, 200), (4, 400), (5_000, 400)] {
        let response = bind(&app, "acme", bindings_of("allow", "name", count)).await;
        assert_eq!(response.status(), status, "{count} bindings");
        if status == 400 {
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "too_many_bindings", "{body}");
        }
    }
    let kept: serde_json::Value = app
        .admin(Method::GET, "/admin/t/acme/policies", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["policies"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_submission_s_plugins_share_one_time_budget() {
    let app = TestApp::spawn_with(|s| {
        s.plugins.timeout_ms = 100;
        s.plugins.submission_budget_ms = 250;
    })
    .await;
    upload(&app, "acme", "spin", fixture("endless_loop"), "").await;
    assert_eq!(
        bind(&app, "acme", bindings_of("spin", "name", 10))
            .await
            .status(),
        200
    );
    let response = signup(&app, "acme", "budget-shop", "<p>x</p>").await;
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    let reasons = body["error"]["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 10, "every binding fails closed: {body}");
    let class = |c: &str| {
        reasons
            .iter()
            .filter(|r| r["message"].as_str().unwrap().ends_with(&format!("({c})")))
            .count()
    };
    // A call runs its whole 100 ms deadline, so at most three start within 250 ms.
    assert!((1..=3).contains(&class("timeout")), "{body}");
    assert_eq!(class("timeout") + class("budget"), 10, "{body}");
}

#[tokio::test]
async fn a_tenant_spinning_its_plugins_leaves_instance_slots_for_the_others() {
    let app = TestApp::spawn_with(|s| {
        s.plugins.max_instances = 2;
        s.plugins.max_instances_per_tenant = 1;
        s.plugins.timeout_ms = 3_000;
        s.plugins.submission_budget_ms = 3_000;
    })
    .await;
    spinner_beside_calm(&app, "acme", 1, "default").await;

    let app = std::sync::Arc::new(app);
    let spinning: Vec<_> = (0..3)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(
                async move { signup(&app, "acme", &format!("spin-{i}"), "<p>x</p>").await },
            )
        })
        .collect();
    // Let acme's calls take their slot (not a timing assertion: if they start later, the
    // other tenant's signup only has it easier).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for i in 0..5 {
        let response = signup(&app, "default", &format!("calm-{i}"), "<p>x</p>").await;
        assert_eq!(response.status(), 201);
    }
    assert!(
        spinning.iter().all(|s| !s.is_finished()),
        "the other tenant's signups had to wait for acme's plugins"
    );
    for task in spinning {
        assert_eq!(task.await.unwrap().status(), 422);
    }
}

#[tokio::test]
async fn a_call_keeps_its_slot_until_it_returns_even_when_the_client_has_gone() {
    // Tenants of this test only: the metrics they count are theirs alone.
    let app = TestApp::spawn_with(|s| {
        s.plugins.max_instances = 1;
        s.plugins.max_instances_per_tenant = 1;
        s.plugins.timeout_ms = 1_500;
        s.plugins.submission_budget_ms = 10_000;
        for name in ["leaver", "stayer"] {
            s.tenants.push(berth::configuration::TenantSettings {
                name: name.into(),
                base_domain: format!("{name}.test"),
                ..berth::configuration::TenantSettings::default()
            });
        }
    })
    .await;
    spinner_beside_calm(&app, "leaver", 3, "stayer").await;

    // The client gives up while the first of three spinning calls runs.
    let gone = app
        .client
        .post(app.url("/t/leaver/signup"))
        .timeout(std::time::Duration::from_millis(300))
        .json(&serde_json::json!({"name": "gone-shop", "email": "ann@example.com", "html": "x"}))
        .send()
        .await;
    assert!(gone.is_err(), "the client timed out");
    // The only instance slot is still taken by that call: this signup waits for it rather
    // than failing to instantiate.
    let response = signup(&app, "stayer", "after-shop", "<p>x</p>").await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    assert_eq!(calls(&app, "stayer", "allow").await, 1);
    assert_eq!(
        calls(&app, "leaver", "timeout").await,
        1,
        "the abandoned call ran to its deadline, holding the slot, and was counted"
    );
    // Evaluation stopped with the request: had it gone on, the second binding's call would
    // have timed out by now.
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    assert_eq!(
        calls(&app, "leaver", "timeout").await,
        1,
        "no binding ran after the client left"
    );
    assert_eq!(app.count_sites().await, 1);
}

/// An AssemblyScript plugin from `tests/fixtures/plugins/*.ts`, as `plugins/build.sh` compiles
/// it with the pinned assemblyscript: the `.wasm` beside its source (`.ci/run` checks they match).
fn assemblyscript(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/plugins/{name}.wasm"))
}

/// What one surface (CLI, test endpoint, signup) said about one case, in common terms.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Said {
    /// `allow`, `deny`, `error`, `invalid_fields` or `invalid_settings`.
    verdict: String,
    /// Reason codes (deny), field codes (invalid_fields), or the failure class (error).
    codes: Vec<String>,
    fuel: Option<u64>,
}

fn said(verdict: &str, codes: Vec<String>, fuel: Option<u64>) -> Said {
    Said {
        verdict: verdict.into(),
        codes,
        fuel,
    }
}

/// `berth plugin run`, read from its output and exit status; with the error or refusal text.
fn cli_says(file: &Path, value: &str, settings: &serde_json::Value) -> (Said, String) {
    let out = berth(&[
        "plugin",
        "run",
        file.to_str().unwrap(),
        "--hook",
        "name",
        "--value",
        value,
        "--settings",
        &settings.to_string(),
        "--plugin",
        "table",
        "--email",
        "ann@example.com",
    ]);
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    let fuel = stdout
        .lines()
        .find_map(|l| l.strip_prefix("fuel used: "))
        .and_then(|f| f.parse().ok());
    let items: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- "))
        .map(|l| l.split([':', ' ']).next().unwrap().to_owned())
        .collect();
    let class = || {
        let line = stdout.lines().next().unwrap_or_default();
        vec![line
            .trim_start_matches("verdict: error (")
            .trim_end_matches(')')
            .to_owned()]
    };
    let result = match out.status.code() {
        Some(0) => said("allow", items, fuel),
        Some(1) if stdout.contains("built-in checks") => {
            let fields = stdout
                .lines()
                .filter_map(|l| l.trim_start().strip_prefix("- "))
                .map(|l| l.split(['(', ')']).nth(1).unwrap().to_owned())
                .collect();
            said("invalid_fields", fields, None)
        }
        Some(1) => said("deny", items, fuel),
        Some(3) => said("error", class(), fuel),
        Some(4) => said("invalid_settings", Vec::new(), None),
        other => panic!("plugin run exited {other:?}: {stdout}{stderr}"),
    };
    (result, format!("{stdout}{stderr}"))
}

async fn endpoint_says(
    app: &TestApp,
    value: &str,
    settings: &serde_json::Value,
) -> (Said, serde_json::Value) {
    let response = app
        .client
        .post(app.url("/admin/t/default/plugins/table/test"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"hook": "name", "value": value, "settings": settings, "email": "ann@example.com"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    let codes = |list: &serde_json::Value, key: &str| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|item| item[key].as_str().unwrap().to_owned())
            .collect()
    };
    let result = match (status, body["verdict"].as_str()) {
        (200, Some("error")) => said(
            "error",
            vec![body["error_class"].as_str().unwrap().to_owned()],
            body["fuel"].as_u64(),
        ),
        (200, Some(verdict)) => said(
            verdict,
            codes(&body["reasons"], "code"),
            body["fuel"].as_u64(),
        ),
        (422, _) if body["error"]["code"] == "invalid_fields" => said(
            "invalid_fields",
            codes(&body["error"]["fields"], "code"),
            None,
        ),
        (422, _) if body["error"]["code"] == "invalid_settings" => {
            said("invalid_settings", Vec::new(), None)
        }
        other => panic!("the test endpoint answered {other:?}: {body}"),
    };
    (result, body)
}

/// A real signup with `table` bound on the name hook with `settings`. Signups count no fuel
/// (only the authoring tools do), so what it says has none.
async fn signup_says(
    app: &TestApp,
    value: &str,
    settings: &serde_json::Value,
) -> (Said, serde_json::Value) {
    let bound = bind(
        app,
        "default",
        serde_json::json!([{"plugin": "table", "hook": "name", "settings": settings}]),
    )
    .await;
    if bound.status() == 422 {
        let body: serde_json::Value = bound.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_settings");
        return (said("invalid_settings", Vec::new(), None), body);
    }
    assert_eq!(bound.status(), 200);
    let response = signup(app, "default", value, "<p>hi</p>").await;
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    let list = |key: &str, field: &str| -> Vec<String> {
        body["error"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item[field].as_str().unwrap().to_owned())
            .collect()
    };
    let result = match (status, body["error"]["code"].as_str()) {
        (201, _) => said("allow", Vec::new(), None),
        (422, Some("invalid_fields")) => said("invalid_fields", list("fields", "code"), None),
        (422, Some("policy_rejected")) if list("reasons", "code") == ["policy_error"] => {
            // The customer sees only the class, in the reason's message: "… (crash)".
            let message = body["error"]["reasons"][0]["message"].as_str().unwrap();
            let class = message.rsplit('(').next().unwrap().trim_end_matches(')');
            said("error", vec![class.to_owned()], None)
        }
        (422, Some("policy_rejected")) => said("deny", list("reasons", "code"), None),
        other => panic!("the signup answered {other:?}: {body}"),
    };
    (result, body)
}

/// `berth plugin run`, the admin test endpoint and a real signup take one table of cases
/// through the same built-in checks, settings validation and limits, and say the same (the
/// first two with the same fuel; signups count none).
#[tokio::test]
async fn plugin_run_the_test_endpoint_and_a_signup_say_the_same_for_each_case() {
    let wasm = assemblyscript("table");
    let none = serde_json::json!({});
    let cases: &[(&str, serde_json::Value, &str, &[&str])] = &[
        ("my-shop", none.clone(), "allow", &[]),
        ("bad-shop", none.clone(), "deny", &["bad_word"]),
        // AssemblyScript's throw: env.abort, a crash with the author's message.
        ("boom-shop", none.clone(), "error", &["crash"]),
        // berth's own rules come first: the plugin never sees these.
        ("Bad Name!", none.clone(), "invalid_fields", &["invalid"]),
        ("admin", none.clone(), "invalid_fields", &["reserved"]),
        ("loud-shop", none.clone(), "allow", &[]),
        (
            "other-shop",
            serde_json::json!({"refuse": true}),
            "invalid_settings",
            &[],
        ),
    ];
    // The command line first, for every case, before the server starts: a slow `plugin run`
    // between two requests would let the server close the client's idle keep-alive connection
    // under it.
    let from_cli: Vec<_> = cases
        .iter()
        .map(|(value, settings, ..)| cli_says(&wasm, value, settings))
        .collect();
    let app = TestApp::spawn().await;
    assert_eq!(
        upload(&app, "default", "table", std::fs::read(&wasm).unwrap(), "")
            .await
            .status(),
        201
    );
    for ((value, settings, verdict, codes), (cli, cli_text)) in cases.iter().zip(from_cli) {
        let (endpoint, endpoint_body) = endpoint_says(&app, value, settings).await;
        let (real, signup_body) = signup_says(&app, value, settings).await;
        let expected: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            (cli.verdict.as_str(), &cli.codes),
            (*verdict, &expected),
            "{value}: {cli_text}"
        );
        assert_eq!(
            cli, endpoint,
            "{value}: CLI {cli_text} / endpoint {endpoint_body}"
        );
        let without_fuel = Said {
            fuel: None,
            ..cli.clone()
        };
        assert_eq!(
            without_fuel, real,
            "{value}: CLI {cli_text} / signup {signup_body}"
        );
        if *verdict == "allow" || *verdict == "deny" || *verdict == "error" {
            assert!(
                cli.fuel.is_some(),
                "{value}: a call that returned reports its fuel"
            );
            assert!(cli_text.contains("time: ") && endpoint_body["duration_us"].as_u64().is_some());
        }
        match *value {
            "boom-shop" => {
                let error = endpoint_body["error"].as_str().unwrap();
                assert!(
                    error.contains("boom-shop blew up in table") && error.contains("table.ts:13:"),
                    "the abort's message and location: {error}"
                );
                assert!(
                    cli_text.contains("boom-shop blew up in table (at "),
                    "{cli_text}"
                );
            }
            "loud-shop" => {
                assert_eq!(
                    endpoint_body["logs"][0]["message"],
                    "[log level 9 is not 0..3; shown as info] shouting about loud-shop"
                );
                assert!(
                    cli_text.contains("log info: [log level 9 is not 0..3"),
                    "{cli_text}"
                );
            }
            "my-shop" => {
                assert_eq!(
                    endpoint_body["settings_logs"][0]["message"],
                    "checking settings"
                );
                assert!(
                    cli_text.contains("settings log info: checking settings"),
                    "{cli_text}"
                );
            }
            "other-shop" => {
                let message = "refuse is set (the plugin logged: info: checking settings)";
                assert!(
                    endpoint_body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .ends_with(message),
                    "{endpoint_body}"
                );
                assert!(
                    signup_body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .ends_with(message),
                    "{signup_body}"
                );
                assert!(cli_text.contains(message), "{cli_text}");
            }
            _ => {}
        }
    }
}

/// The AssemblyScript example, as an operator would use it.
#[tokio::test]
async fn the_assemblyscript_example_checks_its_settings_and_denies_blocked_words() {
    let app = TestApp::spawn().await;
    let bytes = std::fs::read(example("blocked_words.wasm")).unwrap();
    assert_eq!(
        upload(&app, "default", "blocked-words", bytes, "")
            .await
            .status(),
        201
    );
    let refused = bind(
        &app,
        "default",
        serde_json::json!([{"plugin": "blocked-words", "hook": "name", "settings": {"words": ["casino", "Crypto!"]}}]),
    )
    .await;
    assert_eq!(refused.status(), 422);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("words[1] (\"Crypto!\") may only hold lowercase letters and digits"),
        "{body}"
    );
    let bound = bind(
        &app,
        "default",
        serde_json::json!([{"plugin": "blocked-words", "hook": "name", "settings": {"words": ["casino", "lotto"]}}]),
    )
    .await;
    assert_eq!(bound.status(), 200);
    let denied = signup(&app, "default", "my-casino-shop", "<p>hi</p>").await;
    assert_eq!(denied.status(), 422);
    let body: serde_json::Value = denied.json().await.unwrap();
    assert_eq!(
        body["error"]["reasons"][0]["code"], "blocked_word",
        "{body}"
    );
    assert!(body["error"]["reasons"][0]["message"]
        .as_str()
        .unwrap()
        .contains("\"casino\""));
    assert_eq!(
        signup(&app, "default", "my-pottery", "<p>hi</p>")
            .await
            .status(),
        201
    );
}
