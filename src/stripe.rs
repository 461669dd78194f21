//! Stripe webhooks (SPEC §2.2): a delivery is verified ([`signature`]) and parsed ([`event`]).

pub mod event;
pub mod signature;
