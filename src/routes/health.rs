use actix_web::{get, web, HttpResponse};

use super::registry::Routes;
use super::state::AppState;
use crate::routes::error::ApiError;

pub fn routes(routes: &mut Routes) {
    routes.add(healthz).add(readyz);
}

/// The process is up.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The process is up: `{\"status\": \"ok\"}`", content_type = "application/json")),
)]
#[get("/healthz")]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// The database answers and every migration is applied.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "The database answers and is migrated: `{\"status\": \"ready\"}`", content_type = "application/json"),
        (
            status = 503,
            description = "Not ready (`unavailable`)",
            body = crate::routes::schemas::ErrorBody
        ),
    ),
)]
#[get("/readyz")]
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.db.is_ready().await {
        Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
    } else {
        Err(ApiError::Unavailable)
    }
}
