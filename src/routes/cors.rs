//! Cross-origin calls from a tenant's own pages (`allowed_origins`): its signup form, and a
//! manage page it hosts itself calling the customer API with the manage token. An origin not in
//! the list gets no CORS header, so browsers keep its pages from reading any answer.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use super::state::AppState;
use crate::services::tenants::Tenant;

/// The request's `Origin` when the tenant allows it.
pub fn allowed_origin<'a>(headers: &'a HeaderMap, tenant: &Tenant) -> Option<&'a str> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    tenant
        .settings
        .allowed_origins
        .iter()
        .any(|o| o == origin)
        .then_some(origin)
}

/// Lets the allowed origin of `request` read `response` (and the headers in `expose`).
pub fn allow(request: &HeaderMap, tenant: &Tenant, response: &mut HeaderMap, expose: &'static str) {
    if let Some(origin) =
        allowed_origin(request, tenant).and_then(|o| HeaderValue::from_str(o).ok())
    {
        grant(response, origin, expose);
    }
}

fn grant(response: &mut HeaderMap, origin: HeaderValue, expose: &'static str) {
    response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    response.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(expose),
    );
    response.insert(header::VARY, HeaderValue::from_static("Origin"));
}

/// Answers a CORS preflight for `tenant`: an allowed origin may use `methods` with `headers`;
/// others get no CORS headers.
pub fn preflight(
    req: &HttpRequest,
    state: &AppState,
    tenant: &str,
    methods: &'static str,
    headers: &'static str,
    expose: &'static str,
) -> HttpResponse {
    let tenant = match state.tenant(tenant) {
        Ok(tenant) => tenant,
        Err(error) => return error.error_response(),
    };
    let mut response = HttpResponse::NoContent().finish();
    if allowed_origin(req.headers(), &tenant).is_some() {
        let answer = response.headers_mut();
        allow(req.headers(), &tenant, answer, expose);
        answer.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(methods),
        );
        answer.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(headers),
        );
        answer.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    response
}

/// The manage API's paths, `/t/{tenant}/sites/{id}/{content,versions,rollback,name}`: the
/// tenant they name.
pub fn manage_api_tenant(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/t/")?;
    let (tenant, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("sites/")?;
    let (_id, leaf) = rest.split_once('/')?;
    matches!(leaf, "content" | "versions" | "rollback" | "name").then_some(tenant)
}

/// What the manage API's answers expose to an allowed origin.
pub const MANAGE_EXPOSE: &str = "retry-after";

/// For a request to the manage API from an origin its tenant allows: that origin, to let it read
/// the answer whatever the answer is (errors included, so that a page can show them).
pub fn manage_origin(req: &actix_web::dev::ServiceRequest) -> Option<HeaderValue> {
    let tenant = manage_api_tenant(req.path())?;
    let state = req.app_data::<actix_web::web::Data<AppState>>()?;
    let tenant = state.tenants.get().find(tenant)?;
    allowed_origin(req.headers(), &tenant).and_then(|o| HeaderValue::from_str(o).ok())
}

/// Lets `origin` (from [`manage_origin`]) read an answer of the manage API.
pub fn allow_manage(response: &mut HeaderMap, origin: HeaderValue) {
    grant(response, origin, MANAGE_EXPOSE);
}

#[cfg(test)]
mod tests {
    use super::manage_api_tenant;

    #[test]
    fn only_the_manage_api_paths_name_their_tenant() {
        for (path, tenant) in [
            ("/t/acme/sites/site_x/content", Some("acme")),
            ("/t/acme/sites/site_x/versions", Some("acme")),
            ("/t/acme/sites/site_x/rollback", Some("acme")),
            ("/t/acme/sites/site_x/name", Some("acme")),
            ("/t/acme/sites/site_x/manage", None),
            ("/t/acme/sites/site_x", None),
            ("/t/acme/signup", None),
            ("/admin/sites/site_x/content", None),
            ("/t/acme/sites/site_x/content/extra", None),
        ] {
            assert_eq!(manage_api_tenant(path), tenant, "{path}");
        }
    }
}
