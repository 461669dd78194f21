//! `[server]`: the API and sites listeners, the proxies believed, the global admin and metrics
//! tokens, the public URL and the limits of one client's requests.

use std::net::SocketAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::error::{invalid, ConfigError};
use super::MIN_ADMIN_TOKEN_CHARS;
use crate::domain::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// The API listener: signup, webhooks, status pages, admin API.
    pub listen: SocketAddr,
    /// The local runtime's listener that serves customer sites (never the API origin).
    pub sites_listen: SocketAddr,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Global admin token; empty disables the global token.
    pub admin_token: Secret,
    /// Base of the links berth hands out (status pages, emails). Empty: `http://<listen>`.
    pub public_url: String,
    /// When set, `GET /metrics` needs `Authorization: Bearer <metrics_token>` (the metrics name
    /// tenants and plugins). Empty: `/metrics` is open, for a listener only scrapers reach.
    pub metrics_token: Secret,
    /// The key sites' manage tokens are derived with (at least 32 characters). Empty: berth
    /// makes one and keeps it in the database, so a copy of the database could forge manage
    /// tokens; set it in production, the same on every replica.
    pub manage_key: Secret,
    /// How long a client may take to send a request body, in seconds; then `408`.
    pub body_timeout_secs: u64,
    /// Open connections one client IP may hold on the API listener; more are closed at once.
    /// Peers in `trusted_proxies` are not bound.
    pub max_connections_per_ip: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid default"),
            sites_listen: "127.0.0.1:8081".parse().expect("valid default"),
            trusted_proxies: Vec::new(),
            admin_token: Secret::default(),
            public_url: String::new(),
            metrics_token: Secret::default(),
            manage_key: Secret::default(),
            body_timeout_secs: 30,
            max_connections_per_ip: 64,
        }
    }
}

impl ServerSettings {
    /// `public_url` is empty or an http(s) URL.
    pub(super) fn validate_public_url(&self) -> Result<(), ConfigError> {
        let public_url = &self.public_url;
        let is_http = public_url.starts_with("http://") || public_url.starts_with("https://");
        if !public_url.is_empty() && !is_http {
            return Err(invalid(
                "server.public_url",
                "must start with http:// or https://",
            ));
        }
        Ok(())
    }

    /// The metrics token, the body timeout and the connections per IP (checked after the
    /// tenants' admin tokens, see [`super::Settings::validate`]).
    pub(super) fn validate_requests(&self) -> Result<(), ConfigError> {
        let metrics_token = &self.metrics_token;
        if !metrics_token.is_empty()
            && metrics_token.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            return Err(invalid(
                "server.metrics_token",
                format!("must be at least {MIN_ADMIN_TOKEN_CHARS} characters"),
            ));
        }
        if !self.manage_key.is_empty() && self.manage_key.expose().chars().count() < 32 {
            return Err(invalid(
                "server.manage_key",
                "must be at least 32 characters (make one with `openssl rand -hex 32`)",
            ));
        }
        if self.body_timeout_secs == 0 {
            return Err(invalid("server.body_timeout_secs", "must be at least 1"));
        }
        if self.max_connections_per_ip == 0 {
            return Err(invalid(
                "server.max_connections_per_ip",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
