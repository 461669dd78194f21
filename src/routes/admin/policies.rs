//! `/admin/t/{tenant}/policies`: the ordered bindings of a tenant's plugins to hooks.

use actix_web::http::StatusCode;
use actix_web::{get, put, web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::plugins::refuse_if_configured;
use super::{ManagedByConfig, UnknownTenant};
use crate::adapters::db::plugins::{self, BindingRow};
use crate::domain::Hook;
use crate::routes::auth::TenantAdmin;
use crate::routes::error::ApiError;
use crate::routes::params::TenantPath;
use crate::routes::registry::Routes;
use crate::routes::request::json_ok;
use crate::routes::schemas::{AdminErrors, ErrorBody};
use crate::routes::state::AppState;

pub fn routes(routes: &mut Routes) {
    routes.add(list).add(replace);
}

/// One binding: run `plugin` on `hook` with `settings`; `on_error` says what a failing call means.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Binding {
    /// One of the tenant's plugins.
    #[schema(pattern = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")]
    plugin: String,
    /// The hook it runs on.
    #[schema(schema_with = super::plugins::hooks)]
    hook: String,
    /// The plugin's settings, a JSON object its `berth_validate_settings` checks (default `{}`).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    settings: serde_json::Value,
    /// What a failing call means: `deny` (the default: fail closed) or `allow`.
    #[serde(default = "deny")]
    #[schema(schema_with = on_error_values)]
    on_error: String,
}

fn on_error_values() -> utoipa::openapi::Object {
    super::one_of(&["deny", "allow"])
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

fn deny() -> String {
    "deny".into()
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Policies {
    policies: Vec<Binding>,
}

fn to_binding(row: BindingRow) -> Binding {
    Binding {
        plugin: row.plugin,
        hook: row.hook,
        settings: serde_json::from_str(&row.settings).unwrap_or_else(|_| empty_object()),
        on_error: row.on_error,
    }
}

/// The tenant's bindings of plugins to hooks, in order.
#[utoipa::path(
    operation_id = "list_policies",
    tag = "plugins",
    security(("bearer" = [])),
    params(TenantPath),
    responses(
        (status = 200, description = "The tenant's bindings, in order", body = Policies),
        UnknownTenant,
        AdminErrors,
    )
)]
#[get("/admin/t/{tenant}/policies")]
pub(crate) async fn list(
    admin: TenantAdmin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = admin.tenant.name.to_string();
    let rows = state.db.run(move |c| plugins::bindings(c, &name)).await?;
    Ok(json_ok(
        StatusCode::OK,
        &Policies {
            policies: rows.into_iter().map(to_binding).collect(),
        },
    ))
}

/// `400 too_many_bindings` when a hook would hold more than `max` bindings: checked before any
/// binding is looked at, so a huge list costs nothing.
fn refuse_too_many(bindings: &[Binding], max: usize) -> Result<(), ApiError> {
    for hook in [Hook::Name, Hook::Html] {
        let bound = bindings.iter().filter(|b| b.hook == hook.as_str()).count();
        if bound > max {
            return Err(ApiError::bad_request(
                "too_many_bindings",
                format!(
                    "{bound} bindings on the {} hook; at most {max} are allowed (plugins.max_bindings_per_hook)",
                    hook.as_str()
                ),
            ));
        }
    }
    Ok(())
}

/// Replaces the tenant's bindings. Each plugin's `berth_validate_settings` checks its settings.
#[utoipa::path(
    operation_id = "replace_policies",
    tag = "plugins",
    security(("bearer" = [])),
    params(TenantPath),
    request_body = Vec<Binding>,
    responses(
        (status = 200, description = "The new bindings", body = Policies),
        (
            status = 400,
            description = "A binding is malformed or names no plugin of the tenant (`invalid_binding`), or a hook would hold more than `plugins.max_bindings_per_hook` bindings (`too_many_bindings`)",
            body = ErrorBody
        ),
        UnknownTenant,
        ManagedByConfig,
        (
            status = 422,
            description = "A plugin refused its settings (`invalid_settings`)",
            body = ErrorBody
        ),
        AdminErrors,
    )
)]
#[put("/admin/t/{tenant}/policies")]
pub(crate) async fn replace(
    admin: TenantAdmin<web::Json<Vec<Binding>>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let TenantAdmin {
        tenant,
        input: body,
    } = admin;
    refuse_if_configured(&tenant)?;
    let bindings = body.into_inner();
    refuse_too_many(
        &bindings,
        state.settings.get().plugins.max_bindings_per_hook,
    )?;
    let mut rows = Vec::with_capacity(bindings.len());
    for (i, binding) in bindings.iter().enumerate() {
        let at = |message: String| {
            ApiError::bad_request("invalid_binding", format!("policies[{i}]: {message}"))
        };
        let hook = Hook::parse(&binding.hook).map_err(at)?;
        if !binding.settings.is_object() {
            return Err(at("settings must be a JSON object".into()));
        }
        if binding.on_error != "deny" && binding.on_error != "allow" {
            return Err(at(format!(
                "on_error must be deny or allow, not {:?}",
                binding.on_error
            )));
        }
        let (t, n) = (tenant.name.to_string(), binding.plugin.clone());
        let Some(stored) = state.db.run(move |c| plugins::get(c, &t, &n)).await? else {
            return Err(at(format!(
                "tenant {} has no plugin named {:?}",
                tenant.name, binding.plugin
            )));
        };
        if stored.mutating && hook == Hook::Name {
            return Err(at(format!(
                "plugin {} is mutating; only the html hook takes rewrites",
                stored.name
            )));
        }
        let plugin = state
            .policies
            .stored(tenant.name.as_str(), &binding.plugin)
            .await?
            .ok_or_else(|| at(format!("plugin {} is gone", binding.plugin)))?;
        if let Err(reason) = state
            .policies
            .check_settings(
                tenant.name.as_str(),
                &binding.plugin,
                plugin,
                &binding.settings,
            )
            .await?
        {
            return Err(ApiError::InvalidSettings(format!(
                "policies[{i}] ({}): {reason}",
                binding.plugin
            )));
        }
        rows.push(BindingRow {
            tenant: tenant.name.to_string(),
            position: i as i32,
            plugin: binding.plugin.clone(),
            hook: hook.as_str().to_owned(),
            settings: binding.settings.to_string(),
            on_error: binding.on_error.clone(),
        });
    }
    let name = tenant.name.to_string();
    state
        .db
        .write(move |c| plugins::replace_bindings(c, &name, &rows))
        .await?;
    tracing::info!(tenant = %tenant.name, bindings = bindings.len(), "policies replaced");
    Ok(json_ok(StatusCode::OK, &Policies { policies: bindings }))
}
