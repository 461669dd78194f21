//! The kinds of error every layer shares. None of them knows HTTP: routes turn them into the
//! public error shape (`routes::error::ApiError`), jobs into retries and outcomes.

use serde::Serialize;

/// One field that failed built-in validation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

/// One reason a policy plugin gave for a denial.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PolicyReason {
    pub plugin: String,
    pub code: String,
    pub message: String,
}

/// A job error that retrying cannot fix (refused credentials, a conflict an operator must
/// resolve): the job fails at once instead of using up its attempts. Wrap it in `anyhow`:
/// `Err(Permanent::new("…").into())`; context added on top keeps it permanent.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Permanent(String);

impl Permanent {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// True when `error` or any of its causes is [`Permanent`].
pub fn is_permanent(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<Permanent>())
}
