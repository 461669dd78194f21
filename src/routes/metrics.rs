use actix_web::{get, web, HttpRequest, HttpResponse, ResponseError};

use super::registry::Routes;
use super::state::AppState;
use crate::adapters::db::{jobs, sites, stripe_events};
use crate::adapters::telemetry::metrics_handle;
use crate::routes::auth::require_token;

pub fn routes(routes: &mut Routes) {
    routes.add(render);
}

/// Prometheus text format. Gauges that describe stored state are read at scrape time. With
/// `server.metrics_token` set, only a scraper with that bearer token gets them.
#[utoipa::path(
    tag = "operations",
    security((), ("metrics" = [])),
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, description = "`server.metrics_token` is set and the request does not carry it", body = crate::routes::schemas::ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Too many wrong tokens from this address", body = crate::routes::schemas::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until a request can succeed"))),
    ),
)]
#[get("/metrics")]
pub(crate) async fn render(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(error) = require_token(&req, &state, &state.settings.get().server.metrics_token) {
        return error.error_response();
    }
    let counts = state
        .db
        .run(|c| {
            Ok((
                sites::count_by_state(c)?,
                stripe_events::count_deferred(c)?,
                jobs::Backlog::read(c)?,
            ))
        })
        .await;
    match counts {
        Ok((by_state, deferred, backlog)) => {
            for kind in crate::jobs::registry().kinds() {
                let of_kind = backlog.by_kind.iter().find(|k| k.kind == kind);
                let (queued, running) = of_kind.map_or((0, 0), |k| (k.queued, k.running));
                metrics::gauge!("berth_jobs", "kind" => kind, "state" => jobs::QUEUED)
                    .set(queued as f64);
                metrics::gauge!("berth_jobs", "kind" => kind, "state" => jobs::RUNNING)
                    .set(running as f64);
            }
            for site_state in crate::domain::SiteState::ALL {
                let n = by_state
                    .iter()
                    .find(|(s, _)| s == site_state.as_str())
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("berth_sites", "state" => site_state.as_str()).set(n as f64);
            }
            metrics::gauge!("berth_job_queue_lag_seconds").set(backlog.oldest_due_secs);
            for tenant in state.tenants.get().names() {
                let n = deferred
                    .iter()
                    .find(|(t, _)| t == tenant)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("berth_stripe_events_deferred", "tenant" => tenant.to_owned())
                    .set(n as f64);
            }
        }
        Err(error) => tracing::warn!(
            error = format!("{error:#}"),
            "metrics: cannot read site counts"
        ),
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics_handle().render())
}
