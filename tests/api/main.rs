//! Black-box tests: HTTP against the real application on loopback.

mod cloudflare_fake;
mod helpers;

mod admin;
mod dns;
mod email;
mod health;
pub mod plugins;
mod process;
mod provisioning;
mod rate_limits;
mod signup;
