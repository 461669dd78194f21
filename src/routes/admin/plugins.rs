//! `/admin/t/{tenant}/plugins`: upload, list, get, delete and test policy plugins.

use actix_web::http::{header, StatusCode};
use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{InvalidName, ManagedByConfig, PluginNotFound, UnknownTenant};
use crate::adapters::db::plugins::{self, PluginRow, Removal};
use crate::adapters::plugin_host::ModuleInfo;
use crate::domain::Hook;
use crate::domain::PluginName;
use crate::routes::auth::TenantAdmin;
use crate::routes::error::ApiError;
use crate::routes::params::{PluginNamePath, TenantPath};
use crate::routes::registry::Routes;
use crate::routes::request::json_ok;
use crate::routes::request::read_limited;
use crate::routes::schemas::{AdminErrors, ErrorBody};
use crate::routes::state::AppState;
use crate::services::signup::{Trial, TrialRefusal};
use crate::services::tenants::Tenant;

pub fn routes(routes: &mut Routes) {
    routes.add(upload).add(list).add(get).add(remove).add(test);
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
#[utoipa::path(
    operation_id = "upload_plugin",
    tag = "plugins",
    security(("bearer" = [])),
    params(TenantPath, PluginNamePath, UploadQuery),
    request_body(
        content = Vec<u8>,
        content_type = "application/wasm",
        description = "A core WebAssembly module that follows ABI v1, \
                       at most `plugins.max_module_bytes`"
    ),
    responses(
        (status = 201, description = "Uploaded", body = Uploaded, links(
            ("get" = (
                operation_id = "get_plugin",
                parameters(("tenant" = "$request.path.tenant"), ("name" = "$request.path.name"))
            )),
            ("test" = (
                operation_id = "test_plugin",
                parameters(("tenant" = "$request.path.tenant"), ("name" = "$request.path.name"))
            )),
            ("delete" = (
                operation_id = "delete_plugin",
                parameters(("tenant" = "$request.path.tenant"), ("name" = "$request.path.name"))
            )),
        )),
        (status = 200, description = "Replaced", body = Uploaded, links(
            ("get" = (
                operation_id = "get_plugin",
                parameters(("tenant" = "$request.path.tenant"), ("name" = "$request.path.name"))
            )),
            ("test" = (
                operation_id = "test_plugin",
                parameters(("tenant" = "$request.path.tenant"), ("name" = "$request.path.name"))
            )),
            ("delete" = (
                operation_id = "delete_plugin",
                parameters(("tenant" = "$request.path.tenant"), ("name" = "$request.path.name"))
            )),
        )),
        (
            status = 400,
            description = "Refused, with a reason naming the problem (`module_refused`), a malformed plugin name (`invalid_name`) or query",
            body = ErrorBody
        ),
        UnknownTenant,
        (
            status = 408,
            description = "The module did not arrive within `server.body_timeout_secs`",
            body = ErrorBody
        ),
        ManagedByConfig,
        (status = 415, description = "Not `application/wasm`", body = ErrorBody),
        AdminErrors,
    )
)]
#[put("/admin/t/{tenant}/plugins/{name}")]
pub(crate) async fn upload(
    admin: TenantAdmin<web::Query<UploadQuery>>,
    path: Result<PluginNamePath, ApiError>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let TenantAdmin {
        tenant,
        input: query,
    } = admin;
    refuse_if_configured(&tenant)?;
    let name = path?.name;
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

/// Lists the tenant's plugins.
#[utoipa::path(
    operation_id = "list_plugins",
    tag = "plugins",
    security(("bearer" = [])),
    params(TenantPath),
    responses(
        (status = 200, description = "The tenant's plugins", body = PluginList),
        UnknownTenant,
        AdminErrors,
    )
)]
#[get("/admin/t/{tenant}/plugins")]
pub(crate) async fn list(
    admin: TenantAdmin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = admin.tenant.name.to_string();
    let plugins = state.db.run(move |c| plugins::list(c, &name)).await?;
    Ok(json_ok(StatusCode::OK, &PluginList { plugins }))
}

async fn load(state: &AppState, tenant: &Tenant, name: &PluginName) -> Result<PluginRow, ApiError> {
    let (t, n) = (tenant.name.to_string(), name.to_string());
    state
        .db
        .run(move |c| plugins::get(c, &t, &n))
        .await?
        .ok_or_else(|| not_found(tenant, name))
}

fn not_found(tenant: &Tenant, name: &PluginName) -> ApiError {
    ApiError::not_found(
        "plugin_not_found",
        format!(
            "tenant {} has no plugin named {:?}",
            tenant.name,
            name.as_str()
        ),
    )
}

/// One plugin of the tenant.
#[utoipa::path(
    operation_id = "get_plugin",
    tag = "plugins",
    security(("bearer" = [])),
    params(TenantPath, PluginNamePath),
    responses(
        (status = 200, description = "The plugin", body = PluginRow),
        InvalidName,
        PluginNotFound,
        AdminErrors,
    )
)]
#[get("/admin/t/{tenant}/plugins/{name}")]
pub(crate) async fn get(
    admin: TenantAdmin,
    path: PluginNamePath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(json_ok(
        StatusCode::OK,
        &load(&state, &admin.tenant, &path.name).await?,
    ))
}

/// Deletes a plugin that no hook is bound to.
#[utoipa::path(
    operation_id = "delete_plugin",
    tag = "plugins",
    security(("bearer" = [])),
    params(TenantPath, PluginNamePath),
    responses(
        (status = 204, description = "Deleted"),
        InvalidName,
        PluginNotFound,
        (
            status = 409,
            description = "Still bound to a hook (`plugin_in_use`), or the tenant's policies are managed in the configuration (`managed_by_config`)",
            body = ErrorBody
        ),
        AdminErrors,
    )
)]
#[delete("/admin/t/{tenant}/plugins/{name}")]
pub(crate) async fn remove(
    admin: TenantAdmin,
    path: Result<PluginNamePath, ApiError>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = admin.tenant;
    refuse_if_configured(&tenant)?;
    let name = path?.name;
    let (t, n) = (tenant.name.to_string(), name.to_string());
    match state.db.write(move |c| plugins::delete(c, &t, &n)).await? {
        Removal::Deleted => {
            tracing::info!(tenant = %tenant.name, plugin = %name, "policy plugin deleted");
            Ok(HttpResponse::NoContent().finish())
        }
        Removal::NotFound => Err(not_found(&tenant, &name)),
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
    /// The hook to run the plugin as.
    #[schema(schema_with = hooks)]
    hook: String,
    /// The value under test.
    value: String,
    /// Settings for this run, a JSON object (default `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
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

/// The hooks a plugin can be run or bound as.
pub(super) fn hooks() -> utoipa::openapi::Object {
    super::one_of(&[Hook::Name.as_str(), Hook::Html.as_str()])
}

/// Runs the plugin once on a value, with settings, as a signup would: berth's built-in checks
/// (`422 invalid_fields`, as for a signup), the plugin's `berth_validate_settings`
/// (`422 invalid_settings`, as for a binding), then one call, reported with verdict, reasons,
/// failure class, time, fuel and logs.
#[utoipa::path(
    operation_id = "test_plugin",
    tag = "plugins",
    security(("bearer" = [])),
    params(TenantPath, PluginNamePath),
    request_body = TestIn,
    responses(
        (
            status = 200,
            description = "The call's result; failures are reported with their class",
            body = crate::services::policy::TestResult
        ),
        (
            status = 400,
            description = "A malformed body, plugin name (`invalid_name`), hook (`invalid_hook`), or settings that are not a JSON object (`invalid_settings`)",
            body = ErrorBody
        ),
        PluginNotFound,
        (
            status = 422,
            description = "berth's built-in checks refuse the submission (`invalid_fields`), or the plugin refuses the settings (`invalid_settings`)",
            body = ErrorBody
        ),
        AdminErrors,
    )
)]
#[post("/admin/t/{tenant}/plugins/{name}/test")]
pub(crate) async fn test(
    admin: TenantAdmin<web::Json<TestIn>>,
    path: PluginNamePath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let TenantAdmin {
        tenant,
        input: body,
    } = admin;
    let name = path.name;
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
    let trial = Trial {
        hook,
        value: body.value,
        settings,
        name: body.name.unwrap_or_else(|| "example".into()),
        email: body.email.unwrap_or_else(|| "customer@example.com".into()),
        plan: body.plan,
    };
    let result =
        crate::services::signup::test_stored(&state.policies, tenant.clone(), &row.name, trial)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(
                    "plugin_not_found",
                    format!("no plugin named {:?}", name.as_str()),
                )
            })?
            .map_err(|refusal| match refusal {
                TrialRefusal::Fields(fields) => ApiError::InvalidFields(fields),
                TrialRefusal::Settings(reason) => ApiError::InvalidSettings(reason),
            })?;
    Ok(json_ok(StatusCode::OK, &result))
}
