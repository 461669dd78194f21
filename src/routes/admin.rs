//! The admin API (bearer token; see `auth`).

mod content;
mod dashboard;
pub(crate) mod events;
pub(crate) mod jobs;
pub(crate) mod plugins;
pub(crate) mod policies;
pub(crate) mod rollouts;
pub(crate) mod sites;
mod tenants;

use crate::adapters::db::DbConnection;
use crate::domain::TenantName;
use crate::routes::auth::Admin;
use crate::routes::error::ApiError;
use crate::routes::registry::Routes;
use crate::routes::schemas::ErrorBody;
use crate::routes::state::AppState;

pub fn routes(routes: &mut Routes) {
    sites::routes(routes);
    content::routes(routes);
    jobs::routes(routes);
    dashboard::routes(routes);
    plugins::routes(routes);
    policies::routes(routes);
    events::routes(routes);
    rollouts::routes(routes);
    tenants::routes(routes);
}

/// Error answers that several admin routes give, each a type to list in their `responses(...)`.
macro_rules! shared_answers {
    ($($name:ident = $status:tt, $description:tt;)+) => {$(
        #[derive(utoipa::IntoResponses)]
        #[allow(dead_code)]
        pub(crate) enum $name {
            #[response(status = $status, description = $description)]
            Error(ErrorBody),
        }
    )+};
}

shared_answers! {
    BadFilter = 400, "A filter or `limit` out of its range, or an unknown query parameter";
    InvalidName = 400, "A malformed plugin name (`invalid_name`)";
    SiteNotFound = 404, "No site with this id (`site_not_found`)";
    EventNotFound = 404, "No event with this id (`event_not_found`)";
    UnknownTenant = 404, "No tenant by this name (`unknown_tenant`), for the global token";
    PluginNotFound = 404, "No such tenant (`unknown_tenant`) or plugin (`plugin_not_found`)";
    ManagedByConfig = 409, "The tenant's policies are managed in the configuration (`managed_by_config`)";
}

/// The `limit` query parameter: 1 to 1000, default 100.
fn limit(asked: Option<i64>) -> Result<i64, ApiError> {
    match asked {
        None => Ok(100),
        Some(n @ 1..=1000) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be 1 to 1000, not {n}"),
        )),
    }
}

/// The `tenant` query filter, which names a tenant or nothing: `400` for a value that is not a
/// tenant name at all (an unknown but well-formed one lists nothing).
fn tenant_param(asked: Option<&str>) -> Result<(), ApiError> {
    match asked.map(TenantName::parse) {
        Some(Err(why)) => Err(ApiError::bad_request(
            "invalid_tenant",
            format!("tenant {why}"),
        )),
        _ => Ok(()),
    }
}

/// A string schema whose values are exactly `values` (for query filters over a fixed set).
fn one_of(values: &[&str]) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

/// Loads a tenant's record that the caller may see: `not_found` for an unknown id, `403` for
/// another tenant's record.
async fn load_owned<T>(
    admin: &Admin,
    state: &AppState,
    id: &str,
    not_found: fn(&str) -> ApiError,
    get: fn(&mut DbConnection, &str) -> anyhow::Result<Option<T>>,
    tenant_of: fn(&T) -> &str,
) -> Result<T, ApiError>
where
    T: Send + 'static,
{
    let lookup = id.to_owned();
    let row = state
        .db
        .run(move |c| get(c, &lookup))
        .await?
        .ok_or_else(|| not_found(id))?;
    admin.require(tenant_of(&row))?;
    Ok(row)
}
