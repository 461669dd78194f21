//! Layer 2, the services: the flows berth exists for, written against the adapters. A service
//! decides; it never speaks HTTP and never runs in the background itself: routes call it, and
//! what must happen later it writes down as a job ([`crate::domain::job`]) for [`crate::jobs`].

pub mod policy;
pub mod rollouts;
pub mod signup;
pub mod stripe;
pub mod tenants;
