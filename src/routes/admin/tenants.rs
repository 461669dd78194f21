//! `GET /admin/tenants`: the tenants a token may see, with what the dashboard needs to know
//! about each (where customers sign up, whether Stripe posts to it, its plans).

use actix_web::http::StatusCode;
use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::routes::auth::Admin;
use crate::routes::error::ApiError;
use crate::routes::registry::Routes;
use crate::routes::request::json_ok;
use crate::routes::schemas::AdminErrors;
use crate::routes::state::AppState;
use crate::services::tenants::Tenant;

pub fn routes(routes: &mut Routes) {
    routes.add(list);
}

/// A tenant as operators see it. Its secrets are not part of it.
#[derive(Serialize, ToSchema)]
pub(crate) struct TenantOut {
    name: String,
    /// What customers see it called.
    display_name: String,
    /// berth's hosted signup page for it.
    signup_url: String,
    /// Whether Stripe posts signed events to it (it has a webhook signing secret).
    stripe: bool,
    /// Whether a site waits for a paid checkout before it is provisioned.
    payment_required: bool,
    /// Its plans' names.
    plans: Vec<String>,
}

impl TenantOut {
    fn of(tenant: &Tenant) -> Self {
        let settings = &tenant.settings;
        Self {
            name: tenant.name.to_string(),
            display_name: settings.display_name_or_name().to_owned(),
            signup_url: tenant.signup_url(),
            stripe: !settings.stripe.webhook_secrets.is_empty(),
            payment_required: settings.payment_required,
            plans: settings.plans.values().map(|p| p.name.clone()).collect(),
        }
    }
}

/// Whose token asked: the global one, or a tenant's own.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scope {
    Global,
    Tenant,
}

// The body of `GET /admin/tenants` (no doc comment: it would become the schema description).
#[derive(Serialize, ToSchema)]
pub(crate) struct TenantList {
    scope: Scope,
    tenants: Vec<TenantOut>,
}

/// The tenants this token may see (a tenant's token: its own), by name, and whose token it is.
#[utoipa::path(
    operation_id = "list_tenants",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenants, by name", body = TenantList),
        AdminErrors,
    )
)]
#[get("/admin/tenants")]
pub(crate) async fn list(
    admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let only = admin.tenant_filter(None)?;
    let tenants = state.tenants.get();
    let tenants = tenants
        .all()
        .filter(|t| only.as_deref().is_none_or(|own| t.name.as_str() == own))
        .map(|t| TenantOut::of(t))
        .collect();
    let scope = if only.is_some() {
        Scope::Tenant
    } else {
        Scope::Global
    };
    Ok(json_ok(StatusCode::OK, &TenantList { scope, tenants }))
}
