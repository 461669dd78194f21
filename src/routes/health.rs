use actix_web::{get, web, HttpResponse};

use super::AppState;
use crate::error::ApiError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// The process is up.
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// The database answers and every migration is applied.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.db.is_ready().await {
        Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
    } else {
        Err(ApiError::Unavailable)
    }
}
