//! The admin API (bearer token; see `auth`).

mod dashboard;
pub(crate) mod events;
pub(crate) mod jobs;
pub(crate) mod plugins;
pub(crate) mod policies;
pub(crate) mod sites;

use crate::auth::Admin;
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::routes::registry::Routes;
use crate::routes::AppState;

pub fn routes(routes: &mut Routes) {
    sites::routes(routes);
    jobs::routes(routes);
    dashboard::routes(routes);
    plugins::routes(routes);
    policies::routes(routes);
    events::routes(routes);
}

/// `limit` query parameter: default 100, at most 1000.
fn limit(asked: Option<i64>) -> i64 {
    asked.unwrap_or(100).clamp(1, 1000)
}

/// Loads a tenant's record that the caller may see: `not_found` for a malformed (`id` is `None`)
/// or unknown id, `403` for another tenant's record.
async fn load_owned<T>(
    admin: &Admin,
    state: &AppState,
    id: Option<String>,
    not_found: impl Fn() -> ApiError,
    get: fn(&mut DbConnection, &str) -> anyhow::Result<Option<T>>,
    tenant_of: fn(&T) -> &str,
) -> Result<T, ApiError>
where
    T: Send + 'static,
{
    let id = id.ok_or_else(&not_found)?;
    let row = state
        .db
        .run(move |c| get(c, &id))
        .await?
        .ok_or_else(&not_found)?;
    admin.require(tenant_of(&row))?;
    Ok(row)
}
