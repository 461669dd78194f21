//! Stripe webhooks (SPEC §2.2): a delivery is verified ([`signature`]), parsed ([`event`]),
//! stored durably with its processing job before it is acknowledged ([`ingest`], group commit),
//! and later applied to the tenant's sites by a job ([`process`]).

pub mod event;
pub mod ingest;
pub mod process;
pub mod signature;
