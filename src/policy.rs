//! The policy hook of the signup pipeline: every submission's name, then its HTML, goes through
//! the tenant's bound plugins in order. Plugins are bound per tenant; with none bound (as here,
//! before any module is uploaded) every value is allowed unchanged.

use crate::error::PolicyReason;
use crate::tenants::Tenant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Name,
    Html,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Name => "name",
            Hook::Html => "html",
        }
    }
}

/// What the plugins see of the submission besides the value under test.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub plan: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; `rewrite` replaces the value (html hook, mutating plugins).
    Allow {
        rewrite: Option<String>,
    },
    Deny(Vec<PolicyReason>),
}

/// Runs a tenant's policy bindings.
#[derive(Default)]
pub struct PolicyEngine;

impl PolicyEngine {
    pub async fn check(
        &self,
        tenant: &Tenant,
        hook: Hook,
        _value: &str,
        _submission: &Submission<'_>,
    ) -> Verdict {
        tracing::debug!(tenant = %tenant.name, hook = hook.as_str(), bindings = 0, "policy check");
        Verdict::Allow { rewrite: None }
    }
}
