//! `GET /admin`: the operator dashboard. The page itself holds no data: its script asks for the
//! admin token (kept in the tab's session storage) and reads the admin API with it.

use actix_web::http::header;
use actix_web::{get, HttpResponse};

use crate::routes::registry::Routes;

pub fn routes(routes: &mut Routes) {
    routes.add(page).add(script);
}

const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'";

/// The operator dashboard: a page that asks for the admin token and reads the admin API with it.
#[utoipa::path(
    operation_id = "dashboard_page",
    tag = "admin",
    responses((status = 200, description = "The dashboard page (it holds no data)", content_type = "text/html")),
)]
#[get("/admin")]
pub(crate) async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(include_str!("dashboard.html"))
}

/// The dashboard's script.
#[utoipa::path(
    operation_id = "dashboard_script",
    tag = "admin",
    responses((status = 200, description = "The dashboard's script", content_type = "text/javascript")),
)]
#[get("/admin/dashboard.js")]
pub(crate) async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(include_str!("dashboard.js"))
}
