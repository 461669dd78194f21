//! `GET /t/{tenant}/sites/{id}`: the customer's status page. HTML that refreshes itself while
//! something is happening, or JSON with `Accept: application/json`. Never shows the email.

use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use maud::{html, Markup, DOCTYPE};
use serde::Serialize;

use super::params::TenantSitePath;
use super::registry::Routes;
use super::schemas::ErrorBody;
use super::state::AppState;
use crate::adapters::db::sites::{self, SiteRow};
use crate::adapters::db::versions;
use crate::domain::{SiteId, SiteState, VersionState};
use crate::routes::error::ApiError;
use crate::services::tenants::Tenant;

pub fn routes(routes: &mut Routes) {
    routes.add(status);
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": "site_01jd8x3v5c6b7n8m9k0a1s2d3f",
    "tenant": "default",
    "name": "my-shop",
    "hostname": "my-shop.localhost",
    "state": "ready",
    "step": null,
    "url": "http://my-shop.localhost:8081/",
    "checkout_url": null,
    "live_version": 2,
    "update_error": null,
    "reason": null,
    "status_url": "http://127.0.0.1:8080/t/default/sites/site_01jd8x3v5c6b7n8m9k0a1s2d3f",
    "created_at": 1764547200000_i64,
    "updated_at": 1764547203000_i64
}))]
pub(crate) struct Status<'a> {
    id: &'a str,
    tenant: &'a str,
    name: &'a str,
    hostname: &'a str,
    #[schema(value_type = SiteState)]
    state: &'a str,
    /// What provisioning is doing, while it is.
    step: Option<&'a str>,
    /// The site's address, once it is live.
    url: Option<String>,
    /// Where to pay, while the site waits for payment.
    checkout_url: Option<String>,
    /// The version of its content the site serves.
    live_version: Option<i64>,
    /// Why the newest change to the content failed to deploy, while it is the newest (the
    /// previous version stays live).
    update_error: Option<String>,
    /// Why a rejected site was refused (its name was taken or refused by a policy).
    reason: Option<String>,
    status_url: String,
    created_at: i64,
    updated_at: i64,
}

/// The customer's status page: HTML that refreshes itself, or JSON with `Accept: application/json`.
#[utoipa::path(
    operation_id = "site_status",
    tag = "signup",
    params(TenantSitePath),
    responses(
        (status = 200, description = "The site's state (never the email): JSON with `Accept: application/json`, else a page that refreshes itself", content(
            (Status = "application/json"),
            (String = "text/html"),
        )),
        (
            status = 404,
            description = "No such tenant (`unknown_tenant`) or site (`site_not_found`)",
            body = ErrorBody
        ),
        (
            status = 500,
            description = "berth failed on its side (`internal_error`)",
            body = ErrorBody
        ),
    ),
)]
#[get("/t/{tenant}/sites/{id}")]
pub(crate) async fn status(
    req: HttpRequest,
    path: web::Path<TenantSitePath>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let TenantSitePath { tenant, id } = path.into_inner();
    let tenant = state.tenant(&tenant)?;
    let not_found = || ApiError::not_found("site_not_found", "no such site");
    let id = SiteId::parse(&id).map_err(|_| not_found())?;
    let (site, newest) = state
        .db
        .run(move |c| {
            let site = sites::get(c, id.as_str())?;
            let newest = versions::newest(c, id.as_str())?;
            Ok((site, newest))
        })
        .await?;
    let site = site
        .filter(|site| site.tenant == tenant.name.as_str())
        .ok_or_else(not_found)?;
    let update_error = newest
        .filter(|v| v.state == VersionState::Failed)
        .map(|v| v.error.unwrap_or_default());
    let site_state = site.state;
    let body = Status {
        id: &site.id,
        tenant: &site.tenant,
        name: &site.name,
        hostname: &site.hostname,
        state: site.state.as_str(),
        step: site.step.as_deref(),
        url: (site_state == SiteState::Ready).then(|| tenant.site_url(&site.hostname)),
        checkout_url: (site_state == SiteState::PendingPayment)
            .then(|| checkout_link(&tenant.settings.checkout_url, &site.id))
            .flatten(),
        live_version: site.live_version,
        update_error,
        reason: (site_state == SiteState::Rejected)
            .then(|| site.last_error.clone())
            .flatten(),
        status_url: tenant.status_url(&site.id),
        created_at: site.created_at,
        updated_at: site.updated_at,
    };
    let wants_json = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept.contains("application/json") && !super::request::prefers_html(&req)
        });
    if wants_json {
        return Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(body));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        ))
        .body(page(&site, &body, &tenant).into_string()))
}

/// The tenant's checkout link carrying the site id as `client_reference_id`, which Stripe Checkout
/// and Payment Links copy into the `checkout.session.completed` event, so the payment finds its
/// site. The parameter goes before any `#fragment` and replaces one the configured URL carries.
/// Site ids are URL-safe, and within Stripe's rules for the value (letters, digits, `_`, `-`).
fn checkout_link(base: &str, site_id: &str) -> Option<String> {
    if base.is_empty() {
        return None;
    }
    let (before_fragment, fragment) = match base.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (base, None),
    };
    let (path, query) = before_fragment
        .split_once('?')
        .unwrap_or((before_fragment, ""));
    let ours = format!("client_reference_id={site_id}");
    let params: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some("client_reference_id"))
        .chain([ours.as_str()])
        .collect();
    let mut link = format!("{path}?{}", params.join("&"));
    if let Some(fragment) = fragment {
        link.push('#');
        link.push_str(fragment);
    }
    Some(link)
}

fn headline(state: SiteState) -> &'static str {
    match state {
        SiteState::PendingPayment => "Waiting for payment",
        SiteState::Provisioning => "Setting up your site",
        SiteState::Ready => "Your site is live",
        SiteState::Rejected => "This site was not accepted",
        SiteState::Suspended => "This site is suspended",
        SiteState::Deprovisioning => "This site is being removed",
        SiteState::Deleted => "This site was removed",
        SiteState::Failed => "Setting up this site failed",
    }
}

fn page(site: &SiteRow, view: &Status<'_>, tenant: &Tenant) -> Markup {
    let state = site.state;
    let brand = tenant.settings.display_name_or_name();
    let checkout_url = &tenant.settings.checkout_url;
    let signup = tenant.signup_path();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if !state.is_settled() || state == SiteState::PendingPayment {
                    meta http-equiv="refresh" content="3";
                }
                title { (site.name) " — " (headline(state)) " — " (brand) }
                style { "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#222}
                        .state{display:inline-block;padding:.2rem .6rem;border-radius:1rem;background:#eee;font-size:.9rem}
                        .ready{background:#d4f5dd}.failed,.rejected{background:#fadbd8}" }
            }
            body {
                h1 { (headline(state)) }
                p { "Site " strong { (site.hostname) } " " span class={"state " (site.state)} { (site.state) } }
                @if let Some(step) = view.step {
                    p { "Now: " (step) "…" }
                }
                @if let Some(url) = &view.url {
                    p { a href=(url) { (url) } }
                }
                @if let Some(live) = view.live_version {
                    p { "Serving version " (live) " of its content." }
                }
                @if let Some(error) = &view.update_error {
                    p { "The latest change to the content could not be published, so the previous version stays live: " (error) }
                }
                @if let Some(pay) = &view.checkout_url {
                    @if site.last_error.is_some() {
                        p { "Your last payment did not go through. You can try again." }
                    }
                    p { "Your site will be set up as soon as the payment goes through. " a href=(pay) { "Pay now" } }
                }
                @if state == SiteState::Failed {
                    p { "We could not finish setting it up. The people who run " (brand) " can see this in their dashboard and try again; nothing is lost, and this page will show it when the site is live." }
                }
                @if state == SiteState::Suspended {
                    p { "Its visitors are told it is paused. It comes back as it was once it is resumed." }
                    @if let Some(pay) = checkout_link(checkout_url, &site.id) {
                        p { "If it was paused for an unpaid bill, paying brings it back: " a href=(pay) { "Pay now" } }
                    }
                }
                @if state == SiteState::Deleted {
                    p { "Its content is gone. You can sign up again to start a new site: " a href=(signup) { "sign up" } "." }
                }
                @if !state.is_settled() {
                    p { small { "This page refreshes by itself." } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkout_link_carries_the_site_id_as_client_reference_id() {
        let id = "site_0123456789abcdefghjkmnpqrs";
        let cases = [
            ("https://buy.stripe.com/test_abc", format!("https://buy.stripe.com/test_abc?client_reference_id={id}")),
            (
                "https://buy.stripe.com/abc?prefilled_promo_code=SPRING",
                format!("https://buy.stripe.com/abc?prefilled_promo_code=SPRING&client_reference_id={id}"),
            ),
            ("https://pay.example/checkout?", format!("https://pay.example/checkout?client_reference_id={id}")),
            (
                "https://pay.example/c?client_reference_id=old&x=1#plans",
                format!("https://pay.example/c?x=1&client_reference_id={id}#plans"),
            ),
        ];
        for (base, expected) in cases {
            assert_eq!(
                checkout_link(base, id).as_deref(),
                Some(expected.as_str()),
                "{base}"
            );
        }
        assert_eq!(checkout_link("", id), None);
    }
}
