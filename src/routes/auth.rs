//! Admin authentication: `Authorization: Bearer <token>` against the global admin token or a
//! tenant's token, compared in constant time. A tenant token sees only its tenant.
//!
//! Wrong tokens are limited per client IP (`rate_limits.admin_failures_per_ip`): each one is
//! charged, and an address over its budget gets `429` before any token it sends is looked at,
//! so guessing cannot go on at speed. A request without a token is not a guess and is not
//! charged.
//!
//! Handlers take [`Admin`] (any valid token), [`GlobalAdmin`] (the global token only) or
//! [`TenantAdmin`] (a token that may manage the path's `{tenant}`, with that tenant).

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use crate::domain::Secret;
use crate::routes::client_ip::client_ip;
use crate::routes::error::ApiError;
use crate::routes::params::segment;
use crate::routes::rate_limit::ip_key;
use crate::routes::state::AppState;
use crate::services::tenants::Tenant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Global,
    Tenant(String),
}

/// An authenticated admin caller.
#[derive(Debug, Clone)]
pub struct Admin {
    pub scope: Scope,
}

impl Admin {
    /// `Ok` when the caller may act on `tenant`'s resources.
    pub fn require(&self, tenant: &str) -> Result<(), ApiError> {
        match &self.scope {
            Scope::Global => Ok(()),
            Scope::Tenant(own) if own == tenant => Ok(()),
            Scope::Tenant(_) => Err(ApiError::Forbidden(
                "this token belongs to another tenant".into(),
            )),
        }
    }

    pub fn require_global(&self) -> Result<(), ApiError> {
        match self.scope {
            Scope::Global => Ok(()),
            Scope::Tenant(_) => Err(ApiError::Forbidden(
                "this needs the global admin token".into(),
            )),
        }
    }

    /// The tenant a listing is limited to: the asked-for one (if allowed) or the token's own.
    pub fn tenant_filter(&self, asked: Option<&str>) -> Result<Option<String>, ApiError> {
        match (&self.scope, asked) {
            (_, Some(tenant)) => self.require(tenant).map(|()| Some(tenant.to_owned())),
            (Scope::Tenant(own), None) => Ok(Some(own.clone())),
            (Scope::Global, None) => Ok(None),
        }
    }
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("app state missing")))
}

fn authenticate(req: &HttpRequest) -> Result<Admin, ApiError> {
    let state = app_state(req)?;
    let state = &*state;
    let ip = unrefused_address(req, state)?;
    let token = bearer(req)
        .ok_or_else(|| ApiError::Unauthorized("send Authorization: Bearer <admin token>".into()))?;
    let Some(scope) = admin_scope(state, token) else {
        return Err(wrong_token(
            state,
            ip.as_deref(),
            "the admin token is not valid",
        ));
    };
    admitted(state, scope)
}

/// Whose admin token `token` is, if anyone's. Every token is compared, so the time taken does
/// not tell which one matched.
fn admin_scope(state: &AppState, token: &str) -> Option<Scope> {
    let mut scope = None;
    if state.settings.get().server.admin_token.matches(token) {
        scope = Some(Scope::Global);
    }
    for tenant in &state.settings.get().tenants {
        if tenant.admin_token.matches(token) && scope.is_none() {
            scope = Some(Scope::Tenant(tenant.name.clone()));
        }
    }
    scope
}

/// An admin token's caller, within its per-token rate limit.
fn admitted(state: &AppState, scope: Scope) -> Result<Admin, ApiError> {
    let key = match &scope {
        Scope::Global => "global".to_owned(),
        Scope::Tenant(name) => format!("tenant:{name}"),
    };
    state.limits.get().admin_per_token.check(&key)?;
    Ok(Admin { scope })
}

/// Who calls a site's customer API (SPEC §7): its customer, with the site's manage token, or an
/// operator, with an admin token that sees the site's tenant. Wrong tokens are charged like
/// wrong admin tokens; each site's calls share one budget of `rate_limits.admin_per_token`.
pub fn site_caller(
    req: &HttpRequest,
    state: &AppState,
    site: &crate::adapters::db::sites::SiteRow,
) -> Result<crate::domain::Author, ApiError> {
    let ip = unrefused_address(req, state)?;
    let token = bearer(req).ok_or_else(|| {
        ApiError::Unauthorized("send Authorization: Bearer <the site's manage token>".into())
    })?;
    if let Some(scope) = admin_scope(state, token) {
        admitted(state, scope)?.require(&site.tenant)?;
        return Ok(crate::domain::Author::Operator);
    }
    let customer = site
        .manage_token_hash
        .as_deref()
        .is_some_and(|stored| crate::domain::manage_token::matches(stored, token));
    if !customer {
        return Err(wrong_token(
            state,
            ip.as_deref(),
            "the manage token is not valid for this site",
        ));
    }
    state
        .limits
        .get()
        .admin_per_token
        .check(&format!("site:{}", site.id))?;
    Ok(crate::domain::Author::Customer)
}

/// The client's address key, unless it is refused for too many wrong tokens (`429`).
fn unrefused_address(req: &HttpRequest, state: &AppState) -> Result<Option<String>, ApiError> {
    let ip = client_ip(req, &state.settings.get().server.trusted_proxies).map(ip_key);
    if let Some(ip) = &ip {
        state.limits.get().admin_failures_per_ip.check(ip)?;
    }
    Ok(ip)
}

/// The bearer token of the request, if it sends one.
fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// A `401` for a wrong token, charged to the client's address (a `429` once it is over its
/// budget).
fn wrong_token(state: &AppState, ip: Option<&str>, message: &str) -> ApiError {
    if let Some(Err(limited)) = ip.map(|ip| state.limits.get().admin_failures_per_ip.fail(ip)) {
        return limited;
    }
    ApiError::Unauthorized(message.into())
}

/// `Ok` when `secret` is empty (nothing to protect) or the request carries it as its bearer
/// token; wrong tokens are charged like wrong admin tokens.
pub fn require_token(req: &HttpRequest, state: &AppState, secret: &Secret) -> Result<(), ApiError> {
    if secret.is_empty() {
        return Ok(());
    }
    let ip = unrefused_address(req, state)?;
    match bearer(req) {
        None => Err(ApiError::Unauthorized(
            "send Authorization: Bearer <token>".into(),
        )),
        Some(token) if secret.matches(token) => Ok(()),
        Some(_) => Err(wrong_token(state, ip.as_deref(), "the token is not valid")),
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

/// A caller with the global admin token (`403` for a tenant's), and `T`: the rest of the request
/// the handler reads before it runs (a query, a JSON body), read after the token and before the
/// scope check, so a malformed request is a `400` for any valid token.
pub struct GlobalAdmin<T = ()> {
    pub input: T,
}

/// A caller who may manage the tenant the path's `{tenant}` names, with that tenant, and `T` as
/// for [`GlobalAdmin`]. The answers come in this order: the token (`401`, `429`), `T` (its
/// `400`), the scope (`403`), the tenant (`404 unknown_tenant`). Scope comes before existence: a
/// tenant token gets the same `403` for a tenant that does not exist as for one that does, so it
/// cannot list the other tenants by trying names.
pub struct TenantAdmin<T = ()> {
    pub tenant: Arc<Tenant>,
    pub input: T,
}

/// Authenticates at once (as [`Admin`] does), then reads `T`, then lets `allow` judge the
/// caller and build the extractor.
fn authorized<T, S>(
    req: &HttpRequest,
    payload: &mut Payload,
    allow: fn(&HttpRequest, Admin, T) -> Result<S, ApiError>,
) -> LocalBoxFuture<'static, Result<S, actix_web::Error>>
where
    T: FromRequest + 'static,
    T::Future: 'static,
    S: 'static,
{
    let admin = authenticate(req);
    let input = T::from_request(req, payload);
    let req = req.clone();
    Box::pin(async move {
        let admin = admin?;
        let input = input.await.map_err(Into::into)?;
        allow(&req, admin, input).map_err(Into::into)
    })
}

/// `GlobalAdmin` and `TenantAdmin` are extracted by [`authorized`] with their own judgement.
macro_rules! authorized_by {
    ($($extractor:ident: $allow:expr;)+) => {$(
        impl<T> FromRequest for $extractor<T>
        where
            T: FromRequest + 'static,
            T::Future: 'static,
        {
            type Error = actix_web::Error;
            type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

            fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
                authorized(req, payload, $allow)
            }
        }
    )+};
}

authorized_by! {
    GlobalAdmin: |_, admin, input| {
        admin.require_global()?;
        Ok(Self { input })
    };
    TenantAdmin: |req, admin, input| {
        let tenant = segment(req, "tenant")?;
        admin.require(&tenant)?;
        let tenant = app_state(req)?.tenant(&tenant)?;
        Ok(Self { tenant, input })
    };
}
