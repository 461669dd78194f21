//! Black-box tests: HTTP against the real application on loopback.

mod cloudflare_fake;
mod helpers;
mod smtp_server;

mod admin;
mod content;
mod dns;
mod email;
mod health;
mod hostile;
mod kube_mock;
mod kubernetes;
mod kubernetes_cluster;
mod layers;
mod pages;
pub mod plugins;
mod process;
mod provisioning;
mod queue;
mod rate_limits;
mod reload;
mod retention;
mod signup;
mod stripe;
