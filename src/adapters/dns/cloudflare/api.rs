//! Cloudflare API v4 on the wire: the response envelope, DNS records, and the errors a call can
//! end in.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::RecordType;

/// Every API v4 response: `{success, errors, messages, result, result_info}`. Some answers
/// leave fields out (a successful delete is documented as `{"result": {"id": …}}` alone), so
/// every field is optional.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<T> {
    pub success: Option<bool>,
    #[serde(default)]
    pub errors: Vec<ApiMessage>,
    pub result: Option<T>,
    pub result_info: Option<ResultInfo>,
}

/// One entry of `errors` (or `messages`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiMessage {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

impl<T> Envelope<T> {
    /// A 2xx answer succeeded unless it says `success: false`.
    pub fn succeeded(&self) -> bool {
        self.success != Some(false)
    }
}

impl std::fmt::Display for ApiMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

/// Paging of a list (pages are 1-based).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ResultInfo {
    pub per_page: Option<u32>,
    pub count: Option<u32>,
    pub total_count: Option<u64>,
    pub total_pages: Option<u32>,
}

impl ResultInfo {
    /// Whether a page after `page` exists. Uses `total_pages` when given, else `total_count`,
    /// else whether this page came back full.
    pub fn has_more(&self, page: u32, per_page: u32, returned: usize) -> bool {
        let per_page = self.per_page.unwrap_or(per_page).max(1);
        if let Some(total_pages) = self.total_pages {
            return page < total_pages;
        }
        if let Some(total) = self.total_count {
            return u64::from(page) * u64::from(per_page) < total;
        }
        returned >= per_page as usize && self.count.unwrap_or(returned as u32) > 0
    }
}

/// A DNS record as Cloudflare returns it (only the fields berth reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub proxied: bool,
    #[serde(default)]
    pub ttl: u32,
    #[serde(default)]
    pub comment: Option<String>,
}

impl Record {
    /// `A 203.0.113.7 (id 372e…, comment "managed by hand")`, for messages to operators.
    pub fn describe(&self) -> String {
        let comment = match self.comment.as_deref() {
            Some(c) if !c.is_empty() => format!("comment {c:?}"),
            _ => "no comment".to_owned(),
        };
        format!(
            "{} {} -> {} (id {}, {comment})",
            self.kind, self.name, self.content, self.id
        )
    }
}

/// The body of a create (`POST`) or update (`PATCH`): every field berth manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordBody {
    #[serde(rename = "type")]
    pub kind: RecordType,
    pub name: String,
    pub content: String,
    pub proxied: bool,
    pub ttl: u32,
    pub comment: String,
}

impl RecordBody {
    /// True when `existing` already says everything this body would write.
    pub fn matches(&self, existing: &Record) -> bool {
        existing.kind.eq_ignore_ascii_case(self.kind.as_str())
            && same_content(self.kind, &existing.content, &self.content)
            && existing.proxied == self.proxied
            && existing.ttl == self.ttl
            && existing.comment.as_deref() == Some(self.comment.as_str())
    }
}

/// Compares contents the way DNS does: addresses by value (`2001:db8::1` = `2001:DB8:0::1`),
/// names without case or a trailing dot.
fn same_content(kind: RecordType, a: &str, b: &str) -> bool {
    match kind {
        RecordType::A | RecordType::Aaaa => {
            match (a.parse::<std::net::IpAddr>(), b.parse::<std::net::IpAddr>()) {
                (Ok(a), Ok(b)) => a == b,
                _ => a == b,
            }
        }
        RecordType::Cname => a
            .trim_end_matches('.')
            .eq_ignore_ascii_case(b.trim_end_matches('.')),
    }
}

/// Error codes Cloudflare uses for a record that clashes with one already at the name:
/// 81053 an A, AAAA or CNAME record with that host already exists, 81054 a CNAME with that host
/// already exists, 81057 the record already exists, 81058 an identical record already exists.
const CONFLICT_CODES: [i64; 4] = [81053, 81054, 81057, 81058];

/// Error codes of refused credentials: 9106/9107 missing auth headers, 9109 invalid access
/// token, 10000 authentication error, 10001 unknown authentication, 6003/6111 malformed
/// authorization headers, 9103 unknown API key.
const AUTH_CODES: [i64; 8] = [9103, 9106, 9107, 9109, 10000, 10001, 6003, 6111];

/// 81044: record does not exist.
const NOT_FOUND_CODES: [i64; 1] = [81044];

/// How one API call ended when it did not succeed. Messages never hold the token: it only ever
/// travels in a sensitive header.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Cloudflare answered, and said no.
    #[error("Cloudflare refused to {op}: HTTP {status}{}", codes(errors))]
    Refused {
        op: &'static str,
        status: u16,
        errors: Vec<ApiMessage>,
    },
    /// Cloudflare kept failing (5xx) or could not be reached, through every retry.
    #[error("Cloudflare could not {op} after {tries} tries: {last}")]
    Unavailable {
        op: &'static str,
        tries: u32,
        last: String,
    },
    /// Cloudflare's rate limit (429) or berth's own budget asks for a longer wait than one call
    /// may take; a later attempt of the job will go ahead.
    #[error("Cloudflare rate limit: cannot {op} for another {} s ({why})", wait.as_secs().max(1))]
    RateLimited {
        op: &'static str,
        wait: Duration,
        why: &'static str,
    },
    /// A 2xx answer berth cannot read.
    #[error("Cloudflare answered {op} with something berth cannot read: {detail}")]
    Malformed { op: &'static str, detail: String },
}

/// ` (Cloudflare error 81053 …; 9109 …)`, or nothing when there are no errors.
pub(crate) fn codes(errors: &[ApiMessage]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!(" (Cloudflare error {})", list.join("; "))
}

impl ApiError {
    fn has_code(&self, wanted: &[i64]) -> bool {
        matches!(self, ApiError::Refused { errors, .. } if errors.iter().any(|e| wanted.contains(&e.code)))
    }

    /// The token was refused or lacks permission: no retry can fix that.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            ApiError::Refused {
                status: 401 | 403,
                ..
            }
        ) || self.has_code(&AUTH_CODES)
    }

    /// Another record at the name stands in the way.
    pub fn is_conflict(&self) -> bool {
        self.has_code(&CONFLICT_CODES)
    }

    /// The record (or the route to it) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Refused { status: 404, .. }) || self.has_code(&NOT_FOUND_CODES)
    }

    /// A request Cloudflare rejected as such (4xx other than timeouts, conflicts and rate
    /// limits): sending it again would get the same answer.
    pub fn is_rejected_request(&self) -> bool {
        matches!(self, ApiError::Refused { status, .. }
            if (400..500).contains(status) && ![408, 409, 429].contains(status))
    }
}

#[cfg(test)]
mod tests {
    use serde::de::IgnoredAny;

    use super::*;

    fn record(content: &str, proxied: bool, ttl: u32, comment: Option<&str>) -> Record {
        Record {
            id: "r1".into(),
            name: "shop.example.com".into(),
            kind: "AAAA".into(),
            content: content.into(),
            proxied,
            ttl,
            comment: comment.map(str::to_owned),
        }
    }

    #[test]
    fn a_body_matches_only_a_record_that_says_the_same() {
        let body = RecordBody {
            kind: RecordType::Aaaa,
            name: "shop.example.com".into(),
            content: "2001:db8::1".into(),
            proxied: true,
            ttl: 1,
            comment: "berth:a/site_x".into(),
        };
        let same = record("2001:DB8:0::1", true, 1, Some("berth:a/site_x"));
        assert!(body.matches(&same), "addresses compare by value");
        let cases = [
            (
                record("2001:db8::2", true, 1, Some("berth:a/site_x")),
                "content",
            ),
            (
                record("2001:db8::1", false, 1, Some("berth:a/site_x")),
                "proxied",
            ),
            (
                record("2001:db8::1", true, 300, Some("berth:a/site_x")),
                "ttl",
            ),
            (record("2001:db8::1", true, 1, None), "comment"),
        ];
        for (existing, what) in cases {
            assert!(!body.matches(&existing), "{what} differs");
        }
    }

    #[test]
    fn cname_contents_compare_without_case_or_trailing_dot() {
        assert!(same_content(
            RecordType::Cname,
            "LB.example.net.",
            "lb.example.net"
        ));
        assert!(!same_content(
            RecordType::Cname,
            "lb.example.net",
            "lb.example.org"
        ));
    }

    #[test]
    fn paging_uses_what_the_answer_tells() {
        let info = |total_pages, total_count| ResultInfo {
            total_pages,
            total_count,
            ..Default::default()
        };
        assert!(info(Some(2), None).has_more(1, 100, 100));
        assert!(!info(Some(2), None).has_more(2, 100, 3));
        assert!(info(None, Some(101)).has_more(1, 100, 100));
        assert!(!info(None, Some(100)).has_more(1, 100, 100));
        assert!(info(None, None).has_more(1, 100, 100), "a full page");
        assert!(
            !info(None, None).has_more(1, 100, 7),
            "a short page is the last"
        );
    }

    #[test]
    fn an_answer_succeeds_unless_it_says_otherwise() {
        let read = |body: &str| serde_json::from_str::<Envelope<IgnoredAny>>(body).unwrap();
        assert!(
            read(r#"{"result": {"id": "023e"}}"#).succeeded(),
            "a documented delete"
        );
        assert!(
            read(r#"{"success": true, "errors": [], "messages": [], "result": null}"#).succeeded()
        );
        let refused = read(
            r#"{"success": false, "errors": [{"code": 81044, "message": "Record does not exist."}], "messages": [], "result": null}"#,
        );
        assert!(!refused.succeeded());
        assert_eq!(refused.errors[0].code, 81044);
    }

    #[test]
    fn errors_are_classified_by_status_and_code() {
        let refused = |status, code| ApiError::Refused {
            op: "list records",
            status,
            errors: vec![ApiMessage {
                code,
                message: "x".into(),
            }],
        };
        assert!(refused(403, 10000).is_auth());
        assert!(refused(400, 9109).is_auth());
        assert!(refused(400, 81053).is_conflict());
        assert!(refused(400, 81057).is_conflict());
        assert!(refused(404, 81044).is_not_found());
        assert!(refused(400, 9005).is_rejected_request());
        assert!(!refused(409, 1).is_rejected_request());
        let message = refused(400, 81053).to_string();
        assert_eq!(
            message,
            "Cloudflare refused to list records: HTTP 400 (Cloudflare error 81053 x)"
        );
    }
}
