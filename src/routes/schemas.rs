//! The bodies the API reads and writes that are not a handler's own type: the error shape, the
//! signup bodies per content type, a Stripe event, the admin lists.

use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

use crate::routes::error::{FieldError, PolicyReason};

/// Every error: `{"error": {"code", "message", …}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
struct ErrorDetail {
    /// Stable machine-readable code, e.g. `name_taken`.
    code: String,
    /// What went wrong, for people.
    message: String,
    /// With `invalid_fields`: each field that failed built-in validation.
    fields: Option<Vec<FieldError>>,
    /// With `policy_rejected`: each plugin's reason.
    reasons: Option<Vec<PolicyReason>>,
}

/// What any admin request can get besides its own answers.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum AdminErrors {
    #[response(
        status = 401,
        description = "No token, or a wrong one (`unauthorized`)",
        headers(("WWW-Authenticate" = String, description = "`Bearer`"))
    )]
    Unauthorized(ErrorBody),
    #[response(
        status = 403,
        description = "A tenant's token, for another tenant's resource or for one that needs the global token (`forbidden`)"
    )]
    Forbidden(ErrorBody),
    #[response(
        status = 429,
        description = "Too many requests with this token, or too many wrong tokens from this address (`rate_limited`)",
        headers(("Retry-After" = u64, description = "Seconds until a request can succeed"))
    )]
    RateLimited(ErrorBody),
    #[response(
        status = 500,
        description = "berth failed on its side (`internal_error`); the cause is logged, not shown"
    )]
    Internal(ErrorBody),
}

/// The signup fields, as one schema per body type: the same fields in each, but a client
/// generated from the document needs a type per content type to choose the encoding.
macro_rules! signup_body {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Serialize, ToSchema)]
        #[schema(example = json!({"name": "my-shop", "email": "ann@example.com", "html": "<h1>Hi</h1>"}))]
        pub struct $name {
            /// A DNS-1035 label of 3 to 63 characters (spaces around it are trimmed), not
            /// reserved by the tenant.
            #[schema(pattern = r"^\s*[a-z][-a-z0-9]{1,61}[a-z0-9]\s*$")]
            name: String,
            /// Where the readiness email goes; never shown on the status page.
            #[schema(format = Email, max_length = 254)]
            email: String,
            /// The page, UTF-8, at most the tenant's `html_max_bytes` (100 KiB by default), not
            /// blank. Required for static sites (the default workload).
            #[schema(min_length = 1, max_length = 102400)]
            html: String,
            /// A plan name (or its price id) from the tenant's `plans`.
            plan: Option<String>,
        }
    };
}

signup_body!(
    SignupJson,
    "A signup as a JSON object (values are strings, or `null` for absent)."
);
signup_body!(SignupForm, "A signup as URL-encoded form fields.");
signup_body!(
    SignupMultipart,
    "A signup as a multipart form; `html` may be sent as a file."
);

/// New content for a site, as one schema per body type (as for signup).
macro_rules! content_body {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Serialize, ToSchema)]
        #[schema(example = json!({"html": "<h1>Hi again</h1>"}))]
        pub struct $name {
            /// The page, UTF-8, at most the tenant's `html_max_bytes` (100 KiB by default), not
            /// blank.
            #[schema(min_length = 1, max_length = 102400)]
            html: String,
        }
    };
}

content_body!(ContentJson, "New content as a JSON object.");
content_body!(ContentForm, "New content as a URL-encoded form field.");
content_body!(
    ContentMultipart,
    "New content as a multipart form; `html` may be sent as a file."
);

/// A Stripe event as Stripe signs and sends it. berth reads the envelope below; other members
/// are kept as they are.
#[derive(serde::Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "evt_1QeXampleCheckout",
    "object": "event",
    "type": "checkout.session.completed",
    "created": 1764547200,
    "livemode": false,
    "api_version": "2025-03-31.basil",
    "data": {"object": {"object": "checkout.session", "client_reference_id": "site_01jd8x3v5c6b7n8m9k0a1s2d3f"}}
}))]
#[allow(dead_code)]
pub struct StripeEventIn {
    /// Stripe's event id.
    #[schema(pattern = r"^evt_[A-Za-z0-9_]{1,255}$")]
    id: String,
    /// The event type, e.g. `checkout.session.completed`.
    #[schema(rename = "type", pattern = r"^[A-Za-z0-9._]{1,128}$")]
    kind: String,
    /// Always `event`.
    object: Option<String>,
    /// When Stripe created it, in Unix seconds.
    #[schema(minimum = 1)]
    created: i64,
    #[serde(default)]
    livemode: bool,
    api_version: Option<String>,
    data: Option<StripeEventData>,
}

#[derive(serde::Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct StripeEventData {
    /// The object the event is about (a checkout session, an invoice, a subscription…).
    #[schema(value_type = Object)]
    object: serde_json::Value,
}
