//! A small Cloudflare API v4 client for one zone's DNS records: list by exact name (and type),
//! create, update, delete.
//!
//! Every request first takes a slot from the token's [`Budget`]. Inside one call, `5xx` answers
//! and connection errors are retried with exponential backoff and `429` waits for `retry-after`,
//! both bounded by [`RetryPolicy`]; past those bounds the call fails with an ordinary error, and
//! the durable job that made it retries later. The token travels only in a header marked
//! sensitive, so it is never in a URL, a log line or an error message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use serde::de::{DeserializeOwned, IgnoredAny};

use super::api::{codes, ApiError, Envelope, Record, RecordBody};
use super::budget::Budget;
use crate::configuration::DnsSettings;
use crate::domain::RecordType;

/// Waits for a while: `tokio::time::sleep` in service, a recorder in tests (which must never
/// sleep for real `retry-after` seconds).
pub type Pause = Arc<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>;

pub fn real_pause() -> Pause {
    Arc::new(|wait| Box::pin(tokio::time::sleep(wait)))
}

/// How long one call keeps trying before it leaves the retry to the job.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Sends per call for `5xx` answers and connection errors (and the most `429`s per call).
    pub tries: u32,
    /// Backoff before the second send, doubled for each further one, with jitter.
    pub backoff: Duration,
    /// The longest wait one call accepts, for `retry-after` or the budget.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            tries: 3,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// Records per page of a list; a name rarely has more than a few.
const PER_PAGE: u32 = 100;
/// A bound on paging, should an answer keep claiming there is more.
const MAX_PAGES: u32 = 50;

/// The calls berth makes, for messages and metric labels.
#[derive(Debug, Clone, Copy)]
enum Op {
    List,
    Create,
    Update,
    Delete,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::List => "list",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Op::List => "list DNS records",
            Op::Create => "create a DNS record",
            Op::Update => "update a DNS record",
            Op::Delete => "delete a DNS record",
        }
    }
}

/// How one send ended.
enum Sent<T> {
    Done(Envelope<T>),
    Refused(ApiError),
    /// `429`, with `retry-after` when given.
    RateLimited(Option<Duration>),
    /// `5xx` or no answer: worth another try.
    Failed(String),
}

pub struct Client {
    http: reqwest::Client,
    /// `{api_base}/zones/{zone_id}/dns_records`
    records_url: String,
    budget: Arc<Budget>,
    retry: RetryPolicy,
    pause: Pause,
}

impl Client {
    pub fn new(
        settings: &DnsSettings,
        budget: Arc<Budget>,
        retry: RetryPolicy,
        pause: Pause,
    ) -> anyhow::Result<Self> {
        // The error never includes the value: it is the token.
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", settings.api_token.expose()))
            .map_err(|_| anyhow::anyhow!("dns.api_token cannot be sent in an HTTP header"))?;
        auth.set_sensitive(true);
        let timeout = Duration::from_secs(settings.timeout_secs);
        let http = reqwest::Client::builder()
            .default_headers(HeaderMap::from_iter([(AUTHORIZATION, auth)]))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the Cloudflare HTTP client: {e}"))?;
        Ok(Self {
            http,
            records_url: format!(
                "{}/zones/{}/dns_records",
                settings.api_base.trim_end_matches('/'),
                settings.zone_id
            ),
            budget,
            retry,
            pause,
        })
    }

    /// Every record named exactly `name` (of type `kind`, when given), over all pages.
    #[tracing::instrument(name = "cloudflare.list", skip(self), fields(dns.name = name, dns.type = kind.map(RecordType::as_str)))]
    pub async fn list(
        &self,
        name: &str,
        kind: Option<RecordType>,
    ) -> Result<Vec<Record>, ApiError> {
        let mut records = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut query = vec![("name", name.to_owned())];
            if let Some(kind) = kind {
                query.push(("type", kind.as_str().to_owned()));
            }
            query.push(("page", page.to_string()));
            query.push(("per_page", PER_PAGE.to_string()));
            let envelope: Envelope<Vec<Record>> = self
                .call(Op::List, || self.http.get(&self.records_url).query(&query))
                .await?;
            let found = envelope.result.unwrap_or_default();
            let more =
                envelope
                    .result_info
                    .unwrap_or_default()
                    .has_more(page, PER_PAGE, found.len());
            // The API filters already; checking again costs nothing and guards the ownership
            // decisions against a record that is not at this name at all.
            records.extend(found.into_iter().filter(|r| {
                r.name.trim_end_matches('.').eq_ignore_ascii_case(name)
                    && kind.is_none_or(|k| r.kind.eq_ignore_ascii_case(k.as_str()))
            }));
            if !more {
                return Ok(records);
            }
        }
        Err(ApiError::Malformed {
            op: Op::List.describe(),
            detail: format!("still more records after {MAX_PAGES} pages"),
        })
    }

    #[tracing::instrument(name = "cloudflare.create", skip_all, fields(dns.name = %body.name, dns.type = %body.kind))]
    pub async fn create(&self, body: &RecordBody) -> Result<Record, ApiError> {
        let envelope = self
            .call(Op::Create, || self.http.post(&self.records_url).json(body))
            .await?;
        result(Op::Create, envelope)
    }

    #[tracing::instrument(name = "cloudflare.update", skip(self, body), fields(dns.name = %body.name, dns.type = %body.kind))]
    pub async fn update(&self, dns_record_id: &str, body: &RecordBody) -> Result<Record, ApiError> {
        let url = self.record_url(Op::Update, dns_record_id)?;
        let envelope = self
            .call(Op::Update, || self.http.patch(&url).json(body))
            .await?;
        result(Op::Update, envelope)
    }

    #[tracing::instrument(name = "cloudflare.delete", skip(self))]
    pub async fn delete(&self, dns_record_id: &str) -> Result<(), ApiError> {
        let url = self.record_url(Op::Delete, dns_record_id)?;
        self.call::<IgnoredAny>(Op::Delete, || self.http.delete(&url))
            .await
            .map(drop)
    }

    /// A record's URL; the id comes from Cloudflare, so it is checked before it goes in a path.
    fn record_url(&self, op: Op, id: &str) -> Result<String, ApiError> {
        let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if id.is_empty() || !id.bytes().all(plain) {
            return Err(ApiError::Malformed {
                op: op.describe(),
                detail: format!("a record id {id:?} that cannot go in a URL"),
            });
        }
        Ok(format!("{}/{id}", self.records_url))
    }

    /// Sends the request made by `request` until it succeeds, is refused, or the retry policy
    /// says stop.
    async fn call<T: DeserializeOwned>(
        &self,
        op: Op,
        request: impl Fn() -> RequestBuilder,
    ) -> Result<Envelope<T>, ApiError> {
        let (mut failures, mut rate_limited) = (0u32, 0u32);
        loop {
            self.budget
                .acquire(self.retry.max_wait, &self.pause)
                .await
                .map_err(|wait| ApiError::RateLimited {
                    op: op.describe(),
                    wait,
                    why: "berth's own budget for this API token is spent, or Cloudflare asked to wait",
                })?;
            let started = Instant::now();
            let sent = send::<T>(op, request()).await;
            let elapsed = started.elapsed();
            metrics::histogram!("berth_cloudflare_request_duration_seconds", "op" => op.label())
                .record(elapsed.as_secs_f64());
            let outcome = match &sent {
                Sent::Done(_) => "ok",
                Sent::Refused(_) => "refused",
                Sent::RateLimited(_) => "rate_limited",
                Sent::Failed(_) => "failed",
            };
            metrics::counter!("berth_cloudflare_requests_total", "op" => op.label(), "outcome" => outcome)
                .increment(1);
            tracing::debug!(
                dns.op = op.label(),
                outcome,
                duration_ms = elapsed.as_millis() as u64,
                "Cloudflare API call"
            );
            match sent {
                Sent::Done(envelope) => return Ok(envelope),
                Sent::Refused(error) => return Err(error),
                Sent::RateLimited(retry_after) => {
                    rate_limited += 1;
                    let wait = retry_after.unwrap_or_else(|| self.backoff(rate_limited));
                    // Every job using this token waits too: Cloudflare blocks the token, not
                    // this one request.
                    self.budget.pause_until(Instant::now() + wait);
                    tracing::warn!(
                        dns.op = op.label(),
                        retry_after_ms = wait.as_millis() as u64,
                        "Cloudflare rate limit (429); pausing this API token"
                    );
                    if rate_limited >= self.retry.tries || wait > self.retry.max_wait {
                        return Err(ApiError::RateLimited {
                            op: op.describe(),
                            wait,
                            why: "Cloudflare answered 429 Too Many Requests",
                        });
                    }
                }
                Sent::Failed(last) => {
                    failures += 1;
                    if failures >= self.retry.tries {
                        return Err(ApiError::Unavailable {
                            op: op.describe(),
                            tries: failures,
                            last,
                        });
                    }
                    let delay = self.backoff(failures);
                    tracing::warn!(
                        dns.op = op.label(),
                        error = %last,
                        retry_in_ms = delay.as_millis() as u64,
                        "Cloudflare API call failed; retrying"
                    );
                    (self.pause)(delay).await;
                }
            }
        }
    }

    /// `backoff * 2^(n-1)` with equal jitter.
    fn backoff(&self, n: u32) -> Duration {
        let full = self.retry.backoff * 2u32.saturating_pow(n.saturating_sub(1).min(10));
        let half = full / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// One send: the answer classified, its body read as the API v4 envelope.
async fn send<T: DeserializeOwned>(op: Op, request: RequestBuilder) -> Sent<T> {
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return Sent::Failed(describe_transport(&error)),
    };
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Sent::RateLimited(retry_after(response.headers()));
    }
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => return Sent::Failed(describe_transport(&error)),
    };
    decode(op, status, &body)
}

/// An answer other than `429`, its body read as the API v4 envelope.
fn decode<T: DeserializeOwned>(op: Op, status: StatusCode, body: &[u8]) -> Sent<T> {
    // An empty 2xx body says no more than an empty envelope.
    let body: &[u8] = if body.trim_ascii().is_empty() {
        b"{}"
    } else {
        body
    };
    let envelope = serde_json::from_slice::<Envelope<T>>(body);
    if status.is_server_error() {
        let errors = serde_json::from_slice::<Envelope<IgnoredAny>>(body)
            .map(|e| e.errors)
            .unwrap_or_default();
        return Sent::Failed(format!("HTTP {}{}", status.as_u16(), codes(&errors)));
    }
    match envelope {
        Ok(envelope) if status.is_success() && envelope.succeeded() => Sent::Done(envelope),
        Ok(envelope) => Sent::Refused(ApiError::Refused {
            op: op.describe(),
            status: status.as_u16(),
            errors: envelope.errors,
        }),
        Err(error) if status.is_success() => Sent::Refused(ApiError::Malformed {
            op: op.describe(),
            detail: format!("not an API v4 envelope ({error})"),
        }),
        // Not JSON, e.g. an HTML page from a proxy on the way: the status says enough.
        Err(_) => Sent::Refused(ApiError::Refused {
            op: op.describe(),
            status: status.as_u16(),
            errors: Vec::new(),
        }),
    }
}

/// One answer (`status` and `body`) to a call that lists records or returns one, read without the
/// network exactly as a call reads it, as the call would end after that single try: a list
/// answer gives its records and whether a page after `page` follows, a record answer (`list` is
/// false: a create or update) its record. Any status and body give a result or an [`ApiError`],
/// never a panic; the fuzz target `cloudflare_answer` checks that.
pub fn read_answer(
    status: u16,
    body: &[u8],
    list: bool,
    page: u32,
) -> Result<(Vec<Record>, bool), ApiError> {
    let op = if list { Op::List } else { Op::Create };
    let status = StatusCode::from_u16(status).map_err(|_| ApiError::Malformed {
        op: op.describe(),
        detail: format!("HTTP status {status} does not exist"),
    })?;
    fn once<T: DeserializeOwned>(
        op: Op,
        status: StatusCode,
        body: &[u8],
    ) -> Result<Envelope<T>, ApiError> {
        let sent = if status == StatusCode::TOO_MANY_REQUESTS {
            Sent::RateLimited(None)
        } else {
            decode(op, status, body)
        };
        match sent {
            Sent::Done(envelope) => Ok(envelope),
            Sent::Refused(error) => Err(error),
            Sent::RateLimited(wait) => Err(ApiError::RateLimited {
                op: op.describe(),
                wait: wait.unwrap_or_default(),
                why: "Cloudflare answered 429 Too Many Requests",
            }),
            Sent::Failed(last) => Err(ApiError::Unavailable {
                op: op.describe(),
                tries: 1,
                last,
            }),
        }
    }
    if list {
        let envelope: Envelope<Vec<Record>> = once(op, status, body)?;
        let found = envelope.result.unwrap_or_default();
        let more = envelope
            .result_info
            .unwrap_or_default()
            .has_more(page, PER_PAGE, found.len());
        Ok((found, more))
    } else {
        let envelope: Envelope<Record> = once(op, status, body)?;
        Ok((vec![result(op, envelope)?], false))
    }
}

fn result(op: Op, envelope: Envelope<Record>) -> Result<Record, ApiError> {
    envelope.result.ok_or_else(|| ApiError::Malformed {
        op: op.describe(),
        detail: "no result in a successful answer".into(),
    })
}

/// `retry-after` in seconds (Cloudflare sends whole seconds); an HTTP date is not expected.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs = value.parse::<f64>().ok().filter(|s| s.is_finite())?;
    Some(Duration::from_secs_f64(secs.clamp(0.0, 3600.0)))
}

/// A transport error and its causes on one line ("timed out", "connection refused").
fn describe_transport(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut out = what.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
