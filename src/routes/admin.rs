//! The admin API (bearer token; see `auth`).

mod dashboard;
pub(crate) mod jobs;
pub(crate) mod plugins;
pub(crate) mod policies;
pub(crate) mod sites;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(sites::routes)
        .configure(jobs::routes)
        .configure(dashboard::routes)
        .configure(plugins::routes)
        .configure(policies::routes);
}

/// `limit` query parameter: default 100, at most 1000.
fn limit(asked: Option<i64>) -> i64 {
    asked.unwrap_or(100).clamp(1, 1000)
}
