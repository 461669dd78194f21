//! The local runtime: berth serves each ready static site itself on `server.sites_listen`,
//! routed by `Host`, never on the API origin. The site's HTML lives in the database, so a site
//! is served exactly while its state is `ready`, by every replica alike, and always its live
//! version: applying, suspending, deleting and switching versions need no separate step.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use async_trait::async_trait;

use super::{Runtime, SiteSpec};
use crate::adapters::db::{versions, Db};

pub struct LocalRuntime {
    /// The sites listener as customers reach it, e.g. `127.0.0.1:8081`.
    sites_addr: SocketAddr,
}

impl LocalRuntime {
    pub fn new(sites_addr: SocketAddr) -> Self {
        Self { sites_addr }
    }
}

#[async_trait]
impl Runtime for LocalRuntime {
    fn name(&self) -> &'static str {
        "local"
    }

    /// berth serves the content itself, the same way for every site: nothing to roll out.
    fn workload(&self, _plan: Option<&str>) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::json!({ "runtime": "local" }))
    }

    async fn apply(&self, site: &SiteSpec) -> anyhow::Result<()> {
        anyhow::ensure!(site.html.is_some(), "a static site needs HTML");
        Ok(())
    }

    async fn wait_ready(
        &self,
        _site: &SiteSpec,
        _timeout: Duration,
    ) -> anyhow::Result<Option<String>> {
        Ok(Some(self.sites_addr.ip().to_string()))
    }

    async fn suspend(&self, _site: &SiteSpec) -> anyhow::Result<()> {
        Ok(())
    }

    async fn delete(&self, _site: &SiteSpec) -> anyhow::Result<()> {
        Ok(())
    }

    fn site_url(&self, hostname: &str) -> String {
        match self.sites_addr.port() {
            80 => format!("http://{hostname}/"),
            port => format!("http://{hostname}:{port}/"),
        }
    }
}

/// Customer HTML is untrusted: it runs sandboxed (no scripts, no same-origin access, no forms
/// posting anywhere), is never sniffed as another type, and cannot be framed.
const SANDBOX_HEADERS: [(&str, &str); 4] = [
    ("content-security-policy", "sandbox"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
];

/// What the sites listener has for a hostname.
enum Served {
    Page(String),
    /// The site exists but is suspended (unpaid, or by its operator).
    Paused,
    Nothing,
}

/// A suspended site's visitors: the site exists and may come back (`503`, try again in an hour).
const PAUSED: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>This site is paused</title></head>\
<body style=\"font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem\">\
<h1>This site is paused</h1><p>Its owner has paused it for now. Please come back later.</p></body></html>\n";
const PAUSED_RETRY_SECS: u64 = 3600;

/// The one handler of the sites listener: any path of a ready site serves its HTML.
pub async fn serve_site(req: HttpRequest, db: web::Data<Db>) -> HttpResponse {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':').map_or(h, |(name, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    name
                } else {
                    h
                }
            })
        })
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase());
    let mut response = match host {
        None => HttpResponse::BadRequest().body("missing Host header\n"),
        Some(host) => match db
            .run(move |c| {
                Ok(match versions::live_html(c, &host)? {
                    Some(html) => Served::Page(html),
                    None if versions::suspended_at(c, &host)? => Served::Paused,
                    None => Served::Nothing,
                })
            })
            .await
        {
            Ok(Served::Page(html)) => HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .body(html),
            Ok(Served::Paused) => HttpResponse::ServiceUnavailable()
                .content_type("text/html; charset=utf-8")
                .insert_header((header::RETRY_AFTER, PAUSED_RETRY_SECS.to_string()))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body(PAUSED),
            Ok(Served::Nothing) => HttpResponse::NotFound()
                .content_type("text/plain; charset=utf-8")
                .body("no site here\n"),
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "failed to load a site");
                HttpResponse::ServiceUnavailable().body("try again shortly\n")
            }
        },
    };
    for (name, value) in SANDBOX_HEADERS {
        response.headers_mut().insert(
            header::HeaderName::from_static(name),
            header::HeaderValue::from_static(value),
        );
    }
    response
}
