//! Black-box tests: HTTP against the real application on loopback.

mod helpers;

mod admin;
mod email;
mod health;
mod process;
mod provisioning;
mod rate_limits;
mod signup;
mod stripe;
