//! `/admin/t/{tenant}/plugins`: upload, list, get, delete and test policy plugins.

use actix_web::http::{header, StatusCode};
use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::Admin;
use crate::db::plugins::{self, PluginRow, Removal};
use crate::domain::PluginName;
use crate::error::ApiError;
use crate::plugin_host::ModuleInfo;
use crate::policy::Hook;
use crate::routes::read_limited;
use crate::routes::{json_ok, AppState};
use crate::signup::{Trial, TrialRefusal};
use crate::tenants::Tenant;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(upload)
        .service(list)
        .service(get)
        .service(remove)
        .service(test);
}

/// The tenant named in the path, if the caller may manage it. Scope comes first: a tenant
/// token gets the same `403` for a tenant that does not exist as for one that does, so it
/// cannot list the other tenants by trying names.
pub(super) fn tenant_for(
    admin: &Admin,
    state: &AppState,
    tenant: &str,
) -> Result<std::sync::Arc<Tenant>, ApiError> {
    admin.require(tenant)?;
    state.tenant(tenant)
}

/// Tenants that declare `policies` in the configuration are managed there, not through the API.
pub(super) fn refuse_if_configured(tenant: &Tenant) -> Result<(), ApiError> {
    if tenant.settings.policies.is_empty() {
        return Ok(());
    }
    Err(ApiError::conflict(
        "managed_by_config",
        format!(
            "tenant {}'s policies are declared in the configuration file; change them there",
            tenant.name
        ),
    ))
}

fn plugin_name(name: &str) -> Result<PluginName, ApiError> {
    PluginName::parse(name)
        .map_err(|e| ApiError::bad_request("invalid_name", format!("plugin name {e}")))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    /// The plugin may rewrite the HTML it checks (html hook only).
    #[serde(default)]
    mutating: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Uploaded {
    #[serde(flatten)]
    plugin: PluginRow,
    module: ModuleInfo,
}

/// Uploads (or replaces) a plugin. The module is checked against ABI v1 first.
#[utoipa::path(put, path = "/admin/t/{tenant}/plugins/{name}", tag = "plugins", security(("bearer" = [])),
    params(("tenant" = String, Path), ("name" = String, Path), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "The core WebAssembly module"),
    responses(
        (status = 201, description = "Uploaded", body = Uploaded), (status = 200, description = "Replaced", body = Uploaded),
        (status = 400, description = "Refused, with a reason naming the problem", body = crate::routes::openapi::ErrorBody),
        (status = 409, description = "The tenant's policies are managed in the configuration", body = crate::routes::openapi::ErrorBody),
        (status = 415, description = "Not application/wasm", body = crate::routes::openapi::ErrorBody),
    ))]
#[put("/admin/t/{tenant}/plugins/{name}")]
pub(crate) async fn upload(
    admin: Admin,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<UploadQuery>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, name) = path.into_inner();
    let tenant = tenant_for(&admin, &state, &tenant)?;
    refuse_if_configured(&tenant)?;
    let name = plugin_name(&name)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some("application/wasm") {
        return Err(ApiError::UnsupportedMediaType(
            "upload the module with Content-Type: application/wasm".into(),
        ));
    }
    let limit = state.policies.host().settings().max_module_bytes;
    let bytes = read_limited(&req, payload, limit)
        .await
        .map_err(|e| match e {
            ApiError::PayloadTooLarge(_) => ApiError::bad_request(
                "module_refused",
                format!("the module is larger than {limit} bytes"),
            ),
            other => other,
        })?;
    let plugin = state
        .policies
        .load(tenant.name.as_str(), bytes.to_vec())
        .await?
        .map_err(|reason| ApiError::bad_request("module_refused", reason))?;
    let row = plugins::new_plugin(
        tenant.name.as_str(),
        name.as_str(),
        &plugin.info.hash,
        bytes.to_vec(),
        query.mutating,
        plugin.info.validates_settings,
    );
    let created = state.db.write(move |c| plugins::put(c, &row)).await?;
    let (t, n) = (tenant.name.to_string(), name.to_string());
    let stored = state
        .db
        .run(move |c| plugins::get(c, &t, &n))
        .await?
        .ok_or_else(|| anyhow::anyhow!("plugin vanished"))?;
    tracing::info!(tenant = %tenant.name, plugin = %name, plugin.hash = %plugin.info.hash, size = plugin.info.size, "policy plugin uploaded");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_ok(
        status,
        &Uploaded {
            plugin: stored,
            module: plugin.info.clone(),
        },
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PluginList {
    plugins: Vec<PluginRow>,
}

#[utoipa::path(get, path = "/admin/t/{tenant}/plugins", tag = "plugins", security(("bearer" = [])),
    params(("tenant" = String, Path)), responses((status = 200, description = "The tenant's plugins", body = PluginList)))]
#[get("/admin/t/{tenant}/plugins")]
pub(crate) async fn list(
    admin: Admin,
    tenant: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant_for(&admin, &state, &tenant)?;
    let name = tenant.name.to_string();
    let plugins = state.db.run(move |c| plugins::list(c, &name)).await?;
    Ok(json_ok(StatusCode::OK, &PluginList { plugins }))
}

async fn load(state: &AppState, tenant: &Tenant, name: &str) -> Result<PluginRow, ApiError> {
    let (t, n) = (tenant.name.to_string(), plugin_name(name)?.to_string());
    state
        .db
        .run(move |c| plugins::get(c, &t, &n))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "plugin_not_found",
                format!("tenant {} has no plugin named {name:?}", tenant.name),
            )
        })
}

#[utoipa::path(get, path = "/admin/t/{tenant}/plugins/{name}", tag = "plugins", security(("bearer" = [])),
    params(("tenant" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "The plugin", body = PluginRow), (status = 404, description = "No such plugin", body = crate::routes::openapi::ErrorBody)))]
#[get("/admin/t/{tenant}/plugins/{name}")]
pub(crate) async fn get(
    admin: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, name) = path.into_inner();
    let tenant = tenant_for(&admin, &state, &tenant)?;
    Ok(json_ok(
        StatusCode::OK,
        &load(&state, &tenant, &name).await?,
    ))
}

#[utoipa::path(delete, path = "/admin/t/{tenant}/plugins/{name}", tag = "plugins", security(("bearer" = [])),
    params(("tenant" = String, Path), ("name" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such plugin", body = crate::routes::openapi::ErrorBody),
        (status = 409, description = "Still bound to a hook", body = crate::routes::openapi::ErrorBody)))]
#[delete("/admin/t/{tenant}/plugins/{name}")]
pub(crate) async fn remove(
    admin: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, name) = path.into_inner();
    let tenant = tenant_for(&admin, &state, &tenant)?;
    refuse_if_configured(&tenant)?;
    let (t, n) = (tenant.name.to_string(), plugin_name(&name)?.to_string());
    match state.db.write(move |c| plugins::delete(c, &t, &n)).await? {
        Removal::Deleted => {
            tracing::info!(tenant = %tenant.name, plugin = %name, "policy plugin deleted");
            Ok(HttpResponse::NoContent().finish())
        }
        Removal::NotFound => Err(ApiError::not_found(
            "plugin_not_found",
            format!("tenant {} has no plugin named {name:?}", tenant.name),
        )),
        Removal::Bound(hooks) => Err(ApiError::conflict(
            "plugin_in_use",
            format!(
                "plugin {name} is bound to the {} hook; remove it from the policies first",
                hooks.join(" and ")
            ),
        )),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestIn {
    /// `name` or `html`.
    hook: String,
    /// The value under test.
    value: String,
    /// Settings for this run (default `{}`).
    #[serde(default)]
    settings: Option<serde_json::Value>,
    /// The submission's name, for the html hook (default `example`; the name hook tests
    /// `value`).
    #[serde(default)]
    name: Option<String>,
    /// The submission's email (default `customer@example.com`).
    #[serde(default)]
    email: Option<String>,
    /// The submission's plan (default none).
    #[serde(default)]
    plan: Option<String>,
}

/// Runs the plugin once on a value, with settings, as a signup would: berth's built-in checks
/// (`422 invalid_fields`, as for a signup), the plugin's `berth_validate_settings`
/// (`422 invalid_settings`, as for a binding), then one call, reported with verdict, reasons,
/// failure class, time, fuel and logs.
#[utoipa::path(post, path = "/admin/t/{tenant}/plugins/{name}/test", tag = "plugins", security(("bearer" = [])),
    params(("tenant" = String, Path), ("name" = String, Path)), request_body = TestIn,
    responses((status = 200, description = "The call's result; failures are reported with their class", body = crate::policy::TestResult),
        (status = 400, description = "Bad request", body = crate::routes::openapi::ErrorBody),
        (status = 404, description = "No such plugin", body = crate::routes::openapi::ErrorBody),
        (status = 422, description = "berth's built-in checks refuse the submission (invalid_fields), or the plugin refuses the settings (invalid_settings)", body = crate::routes::openapi::ErrorBody)))]
#[post("/admin/t/{tenant}/plugins/{name}/test")]
pub(crate) async fn test(
    admin: Admin,
    path: web::Path<(String, String)>,
    body: web::Json<TestIn>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, name) = path.into_inner();
    let tenant = tenant_for(&admin, &state, &tenant)?;
    let row = load(&state, &tenant, &name).await?;
    let body = body.into_inner();
    let hook = Hook::parse(&body.hook).map_err(|e| ApiError::bad_request("invalid_hook", e))?;
    let settings = body.settings.unwrap_or_else(|| serde_json::json!({}));
    if !settings.is_object() {
        return Err(ApiError::bad_request(
            "invalid_settings",
            "settings must be a JSON object",
        ));
    }
    let plugin = state
        .policies
        .stored(tenant.name.as_str(), &row.name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found("plugin_not_found", format!("no plugin named {name:?}"))
        })?;
    let trial = Trial {
        hook,
        value: body.value,
        settings,
        name: body.name.unwrap_or_else(|| "example".into()),
        email: body.email.unwrap_or_else(|| "customer@example.com".into()),
        plan: body.plan,
    };
    let in_slot = tenant.clone();
    let result = state
        .policies
        .in_slot(tenant.name.as_str(), move |host| {
            crate::signup::trial(host, &in_slot, &row.name, &plugin, &trial)
        })
        .await?
        .map_err(|refusal| match refusal {
            TrialRefusal::Fields(fields) => ApiError::InvalidFields(fields),
            TrialRefusal::Settings(reason) => ApiError::InvalidSettings(reason),
        })?;
    Ok(json_ok(StatusCode::OK, &result))
}
