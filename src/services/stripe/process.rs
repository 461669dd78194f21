//! What a Stripe event does to a site (SPEC §2.2).
//!
//! Invariants:
//! - Everything an event does happens in one write transaction together with the record of its
//!   outcome, and an event is only looked at while its outcome is `received` or `deferred`: it
//!   takes effect once, whatever crashes or retries.
//! - Per tenant, event transactions are serialised (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a
//!   transaction-scoped advisory lock per tenant), so events of one site never interleave.
//! - A site remembers Stripe's `created` of the newest event applied to it. An older event is
//!   `stale` and changes nothing, so a stale or out-of-order event never moves a site backwards.
//!   `customer.subscription.deleted` is final and applies whatever its age; a failed invoice only
//!   records the failure, so it never hides the newer subscription status that follows it.
//! - An event whose site is not known yet (its checkout has not arrived, or the customer is
//!   unknown) is kept as `deferred`. The checkout that links its subscription to a site applies
//!   the deferred events, oldest first, in the same transaction; an operator can also replay one.
//! - Sites are found by `client_reference_id`, then `metadata.berth_site_id` (checkouts), then
//!   the subscription they were linked to. Only a checkout links a subscription to a site.

use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::sites::{
    self, PaymentChanges, SiteRow, Transition, SUSPENDED_FOR_PAYMENT,
};
use crate::adapters::db::stripe_events;
use crate::adapters::db::{jobs, DbConnection};
use crate::configuration::JobSettings;
use crate::domain::job::{Deprovision, Provision, SuspendOverdue};
use crate::domain::{SiteId, SiteName, SiteState};
use crate::faults::Faults;
use crate::services::policy::{PolicyEngine, POLICY_ERROR};
use crate::services::signup::{self, RawForm, Signup, SignupError};
use crate::services::stripe::event::{CheckoutSession, Event, Invoice, Subscription};
use crate::services::tenants::Tenant;

pub const CHECKOUT_COMPLETED: &str = "checkout.session.completed";
pub const CHECKOUT_ASYNC_SUCCEEDED: &str = "checkout.session.async_payment_succeeded";
pub const CHECKOUT_ASYNC_FAILED: &str = "checkout.session.async_payment_failed";
pub const SUBSCRIPTION_UPDATED: &str = "customer.subscription.updated";
pub const SUBSCRIPTION_DELETED: &str = "customer.subscription.deleted";
pub const INVOICE_PAID: &str = "invoice.paid";
pub const INVOICE_PAYMENT_FAILED: &str = "invoice.payment_failed";

/// The event types whose site is the one linked to their subscription.
const SUBSCRIPTION_EVENTS: [&str; 4] = [
    SUBSCRIPTION_UPDATED,
    SUBSCRIPTION_DELETED,
    INVOICE_PAID,
    INVOICE_PAYMENT_FAILED,
];

/// The event types berth acts on; every other type is stored, acknowledged and ignored.
pub const HANDLED: [&str; 7] = [
    CHECKOUT_COMPLETED,
    CHECKOUT_ASYNC_SUCCEEDED,
    CHECKOUT_ASYNC_FAILED,
    SUBSCRIPTION_UPDATED,
    SUBSCRIPTION_DELETED,
    INVOICE_PAID,
    INVOICE_PAYMENT_FAILED,
];

/// What processing did with an event: stored as its outcome, detail and site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// One of `stripe_events::{APPLIED, IGNORED, STALE, DEFERRED, REJECTED, INVALID}`.
    pub label: &'static str,
    pub detail: String,
    pub site_id: Option<String>,
}

impl Outcome {
    fn new(label: &'static str, detail: impl Into<String>, site: Option<&str>) -> Self {
        Self {
            label,
            detail: detail.into(),
            site_id: site.map(str::to_owned),
        }
    }
    fn applied(site: &str, detail: impl Into<String>) -> Self {
        Self::new(stripe_events::APPLIED, detail, Some(site))
    }
    fn ignored(detail: impl Into<String>) -> Self {
        Self::new(stripe_events::IGNORED, detail, None)
    }
    fn deferred(detail: impl Into<String>) -> Self {
        Self::new(stripe_events::DEFERRED, detail, None)
    }
    fn invalid(detail: impl Into<String>) -> Self {
        Self::new(stripe_events::INVALID, detail, None)
    }
}

/// A payment-first signup (a checkout that names no site, only `metadata.site_name`), checked
/// by the signup pipeline before the transaction, because policy plugins run asynchronously.
pub enum PaymentFirst {
    /// Valid and allowed by every policy.
    Accepted(Signup),
    /// Valid, but a policy said no: stored as a `rejected` site.
    Denied(Signup, String),
    /// Built-in validation failed: no site can be stored.
    Invalid(String),
}

/// Runs the signup pipeline on a payment-first checkout; `None` for any other event.
///
/// Only a real refusal refuses: built-in validation, or a policy that said no. Anything else —
/// the database or the plugin host failing, or a plugin that could not check the submission
/// (`policy_error`: timeout, crash, …) with no other plugin saying no — is an `Err`, and the
/// job retries: a paid customer's site is never stored as `rejected` for a passing error.
pub async fn prepare(
    event: &Event,
    tenant: &Tenant,
    policies: &PolicyEngine,
    faults: &Faults,
) -> anyhow::Result<Option<PaymentFirst>> {
    if !event.kind.starts_with("checkout.session.") {
        return Ok(None);
    }
    let Ok(session) = event.object::<CheckoutSession>() else {
        return Ok(None);
    };
    if named_site(&session).is_some() {
        return Ok(None);
    }
    let Some(name) = session.metadata.get("site_name").map(|n| n.trim()) else {
        return Ok(None);
    };
    let mut form = RawForm::default();
    let mut put = |field: &str, value: &str| {
        let _ = form.insert(field.to_owned(), value.as_bytes().to_vec());
    };
    put("name", name);
    if let Some(email) = session.email() {
        put("email", email);
    }
    match session.metadata.get("html") {
        Some(html) => put("html", html),
        None => put("html", &placeholder_page(name)),
    }
    let plan = session
        .metadata
        .get("plan")
        .map(String::as_str)
        .or_else(|| {
            session
                .price_id()
                .filter(|p| tenant.settings.plans.contains_key(*p))
        });
    if let Some(plan) = plan {
        put("plan", plan);
    }
    let mut checked = match signup::validate(tenant, &form) {
        Ok(checked) => checked,
        Err(error) => {
            let refusal = refusal(error)?;
            return Ok(Some(PaymentFirst::Invalid(refusal)));
        }
    };
    let verdict = match faults.hit("payment_first.policies").await {
        Err(injected) => Err(SignupError::Failed(injected)),
        Ok(()) => signup::run_policies(policies, tenant, &mut checked).await,
    };
    Ok(Some(match verdict {
        Ok(()) => PaymentFirst::Accepted(checked),
        Err(error) => {
            let refusal = refusal(error)?;
            PaymentFirst::Denied(checked, refusal)
        }
    }))
}

/// A refusal of the signup pipeline in one line; `Err` when `error` is no refusal at all but
/// something retrying can fix: a failure, or plugins that could not check the submission.
fn refusal(error: SignupError) -> anyhow::Result<String> {
    match error {
        SignupError::Failed(cause) => {
            Err(cause.context("the signup pipeline failed on a payment-first checkout"))
        }
        SignupError::PolicyRejected(reasons) if reasons.iter().all(|r| r.code == POLICY_ERROR) => {
            Err(anyhow::anyhow!(
                "the signup pipeline could not decide on a payment-first checkout: {}",
                SignupError::PolicyRejected(reasons).describe()
            ))
        }
        refused => Ok(refused.describe()),
    }
}

/// The page a payment-first site starts with when the checkout carried no `metadata.html`.
fn placeholder_page(name: &str) -> String {
    let title = SiteName::parse(name).map_or_else(|_| "New site".to_owned(), |n| n.to_string());
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>This site is live. Its content is on the way.</p></body></html>\n"
    )
}

/// The site a checkout names: `client_reference_id`, else `metadata.berth_site_id` (values that
/// are not site ids are not berth's and are passed over).
fn named_site(session: &CheckoutSession) -> Option<SiteId> {
    session
        .client_reference_id
        .as_deref()
        .and_then(|id| SiteId::parse(id).ok())
        .or_else(|| {
            session
                .metadata
                .get("berth_site_id")
                .and_then(|id| SiteId::parse(id).ok())
        })
}

/// Applies events of one tenant.
pub struct Processor<'a> {
    pub tenant: &'a Tenant,
    pub jobs: &'a JobSettings,
}

impl Processor<'_> {
    /// Applies `event` (stored as `row_id`) inside the caller's write transaction and records
    /// its outcome. `None` when the event was no longer pending (processed meanwhile).
    pub fn apply(
        &self,
        conn: &mut DbConnection,
        row_id: &str,
        event: &Event,
        payment_first: Option<PaymentFirst>,
    ) -> anyhow::Result<Option<Outcome>> {
        lock_tenant(conn, self.tenant.name.as_str())?;
        if stripe_events::is_pending(conn, row_id)? != Some(true) {
            return Ok(None);
        }
        let outcome = match event.kind.as_str() {
            CHECKOUT_COMPLETED | CHECKOUT_ASYNC_SUCCEEDED | CHECKOUT_ASYNC_FAILED => {
                self.checkout(conn, event, payment_first)?
            }
            kind if SUBSCRIPTION_EVENTS.contains(&kind) => self.subscription_event(conn, event)?,
            other => Outcome::ignored(format!("berth does not act on {other} events")),
        };
        record(conn, row_id, &outcome)?;
        Ok(Some(outcome))
    }

    /// `checkout.session.*`: find (or, paying first, create) the site, link the customer and
    /// subscription, and start provisioning once paid.
    fn checkout(
        &self,
        conn: &mut DbConnection,
        event: &Event,
        payment_first: Option<PaymentFirst>,
    ) -> anyhow::Result<Outcome> {
        let session: CheckoutSession = match event.object() {
            Ok(session) => session,
            Err(why) => return Ok(Outcome::invalid(why)),
        };
        let tenant = self.tenant.name.as_str();
        let site_id = match named_site(&session) {
            Some(id) => Some(id.to_string()),
            None => stripe_events::site_of_object(conn, tenant, &session.id)?,
        };
        let Some(site_id) = site_id else {
            return match payment_first {
                Some(signup) => self.create_paid_site(conn, event, &session, signup),
                None => Ok(Outcome::ignored(
                    "not a berth checkout: no client_reference_id, metadata.berth_site_id or metadata.site_name",
                )),
            };
        };
        sites::lock(conn, &site_id)?;
        let Some(site) = sites::get(conn, &site_id)?.filter(|s| s.tenant == tenant) else {
            return Ok(Outcome::deferred(format!(
                "tenant {tenant} has no site {site_id}; replay the event once it exists"
            )));
        };
        if let Some(stale) = stale(&site, event) {
            return Ok(stale);
        }
        if matches!(site.state, SiteState::Deprovisioning | SiteState::Deleted) {
            return Ok(Outcome::new(
                stripe_events::IGNORED,
                format!(
                    "a checkout for a site that is {}: nothing changed (refund it?)",
                    site.state
                ),
                Some(&site.id),
            ));
        }

        let mut notes = Vec::new();
        let mut changes = PaymentChanges {
            stripe_event_at: Some(event.created_at_ms()),
            ..Default::default()
        };
        changes.stripe_customer_id = session.customer.as_ref().map(|c| c.id().to_owned());
        if let Some(subscription) = &session.subscription {
            let subscription = subscription.id();
            if let Some(old) = site
                .stripe_subscription_id
                .as_deref()
                .filter(|old| *old != subscription)
            {
                notes.push(format!("replaces subscription {old}"));
            }
            changes.stripe_subscription_id = Some(subscription.to_owned());
        }
        if let Some((key, name)) = self.checkout_plan(&session) {
            if site.plan.as_deref() != Some(key.as_str()) {
                notes.push(format!("plan {name}"));
                changes.plan = Some(key);
            }
        }
        let paid = event.kind == CHECKOUT_ASYNC_SUCCEEDED
            || (event.kind == CHECKOUT_COMPLETED && session.is_paid());
        let waiting = site.state == SiteState::PendingPayment;
        let failed = event.kind == CHECKOUT_ASYNC_FAILED;
        if failed && waiting {
            changes.last_error = Some(Some("the payment did not go through".into()));
        }
        if paid && waiting {
            changes.last_error = Some(None);
        }
        sites::record_payment(conn, &site.id, changes)?;

        let state = site.state;
        notes.insert(
            0,
            match (paid, failed) {
                (true, _) if waiting => {
                    self.provision(conn, &site.id, &[SiteState::PendingPayment])?;
                    "paid: provisioning".to_owned()
                }
                (true, _) => format!("payment recorded; the site is already {state}"),
                (_, true) if waiting => {
                    "the payment did not go through; the site keeps waiting for payment".to_owned()
                }
                (_, true) => format!(
                    "the payment did not go through; the site is {state}, so nothing changes"
                ),
                _ => format!(
                    "checkout complete, payment {}: waiting for it to clear",
                    session.payment_status
                ),
            },
        );
        if let Some(subscription) = &session.subscription {
            notes.extend(self.apply_deferred(conn, subscription.id())?);
        }
        Ok(Outcome::applied(&site.id, notes.join("; ")))
    }

    /// The plan a checkout asks for: `metadata.plan` (a plan name or key), else the expanded line
    /// item's price. Returns the plan's key and name.
    fn checkout_plan(&self, session: &CheckoutSession) -> Option<(String, String)> {
        let wanted = session
            .metadata
            .get("plan")
            .map(String::as_str)
            .or_else(|| session.price_id())?;
        self.tenant
            .plan(wanted)
            .map(|(key, plan)| (key.clone(), plan.name.clone()))
    }

    /// The payment-first flow: a checkout that names no site creates it, through the signup
    /// pipeline's verdict. A taken name or a policy's denial stores a `rejected` site (it holds
    /// no name), so that operators see who paid for what.
    fn create_paid_site(
        &self,
        conn: &mut DbConnection,
        event: &Event,
        session: &CheckoutSession,
        signup: PaymentFirst,
    ) -> anyhow::Result<Outcome> {
        let (signup, refusal) = match signup {
            PaymentFirst::Invalid(why) => {
                return Ok(Outcome::new(
                    stripe_events::REJECTED,
                    format!("payment-first signup refused, no site stored: {why}"),
                    None,
                ))
            }
            PaymentFirst::Denied(signup, why) => (signup, Some(why)),
            PaymentFirst::Accepted(signup) => (signup, None),
        };
        let id = SiteId::generate();
        let paid = event.kind == CHECKOUT_ASYNC_SUCCEEDED
            || (event.kind == CHECKOUT_COMPLETED && session.is_paid());
        let mut site = signup.into_new_site(self.tenant, &id, SiteState::Provisioning);
        let refusal = match refusal {
            Some(why) => Some(why),
            None if sites::hostname_taken(conn, &site.hostname)? => {
                Some(format!("{} is already taken", site.hostname))
            }
            None => None,
        };
        site.stripe_customer_id = session.customer.as_ref().map(|c| c.id().to_owned());
        site.stripe_subscription_id = session.subscription.as_ref().map(|s| s.id().to_owned());
        site.stripe_event_at = Some(event.created_at_ms());
        if let Some(why) = refusal {
            site.state = SiteState::Rejected.as_str().to_owned();
            site.last_error = Some(format!("payment-first signup refused: {why}"));
            sites::insert(conn, &site)?;
            return Ok(Outcome::new(
                stripe_events::REJECTED,
                format!("payment-first signup refused, stored as a rejected site: {why}"),
                Some(id.as_str()),
            ));
        }
        let mut detail = if paid {
            sites::insert(conn, &site)?;
            jobs::insert(
                conn,
                &Provision {
                    site_id: id.to_string(),
                    version: site.version,
                }
                .to_new_job(self.jobs),
            )?;
            format!(
                "created {} from a payment-first checkout: provisioning",
                site.hostname
            )
        } else {
            site.state = SiteState::PendingPayment.as_str().to_owned();
            if event.kind == CHECKOUT_ASYNC_FAILED {
                site.last_error = Some("the payment did not go through".into());
            }
            sites::insert(conn, &site)?;
            format!(
                "created {} from a payment-first checkout: waiting for the payment to clear",
                site.hostname
            )
        };
        if let Some(subscription) = &site.stripe_subscription_id {
            if let Some(note) = self.apply_deferred(conn, subscription)? {
                detail.push_str("; ");
                detail.push_str(&note);
            }
        }
        Ok(Outcome::applied(id.as_str(), detail))
    }

    /// Applies the subscription and invoice events of `subscription` that waited for its site,
    /// oldest first. (A deferred checkout waits for its own site, not for a subscription.)
    /// Returns a note for the checkout's own outcome.
    fn apply_deferred(
        &self,
        conn: &mut DbConnection,
        subscription: &str,
    ) -> anyhow::Result<Option<String>> {
        let mut waiting = stripe_events::deferred_for_subscription(
            conn,
            self.tenant.name.as_str(),
            subscription,
        )?;
        waiting.retain(|row| SUBSCRIPTION_EVENTS.contains(&row.event_type.as_str()));
        if waiting.is_empty() {
            return Ok(None);
        }
        for row in &waiting {
            let outcome = match Event::parse(row.payload.as_bytes()) {
                Ok(event) => self.subscription_event(conn, &event)?,
                Err(why) => Outcome::invalid(why),
            };
            record(conn, &row.id, &outcome)?;
        }
        Ok(Some(format!(
            "applied {} event(s) that had waited for this site",
            waiting.len()
        )))
    }

    /// `customer.subscription.*` and `invoice.*`: the site is the one linked to the
    /// subscription; until a checkout links it, the event is deferred.
    fn subscription_event(
        &self,
        conn: &mut DbConnection,
        event: &Event,
    ) -> anyhow::Result<Outcome> {
        let Some(subscription) = event.subscription_id() else {
            return Ok(Outcome::ignored(
                "not about a subscription (a one-off invoice?)",
            ));
        };
        let tenant = self.tenant.name.as_str();
        let Some(site) = sites::find_by_subscription(conn, tenant, subscription)? else {
            return Ok(Outcome::deferred(format!(
                "no site of tenant {tenant} has subscription {subscription} yet; applied when its checkout arrives"
            )));
        };
        sites::lock(conn, &site.id)?;
        let site = sites::get(conn, &site.id)?.unwrap_or(site);
        match event.kind.as_str() {
            SUBSCRIPTION_DELETED => self.subscription_deleted(conn, event, &site),
            _ if stale(&site, event).is_some() => Ok(stale(&site, event).expect("just checked")),
            SUBSCRIPTION_UPDATED => self.subscription_updated(conn, event, &site),
            INVOICE_PAID => self.invoice_paid(conn, event, &site),
            INVOICE_PAYMENT_FAILED => self.invoice_payment_failed(event, &site),
            other => Ok(Outcome::ignored(format!(
                "berth does not act on {other} events"
            ))),
        }
    }

    fn subscription_updated(
        &self,
        conn: &mut DbConnection,
        event: &Event,
        site: &SiteRow,
    ) -> anyhow::Result<Outcome> {
        let subscription: Subscription = match event.object() {
            Ok(s) => s,
            Err(why) => return Ok(Outcome::invalid(why)),
        };
        let mut notes = vec![format!("subscription {}", subscription.status)];
        let mut changes = PaymentChanges {
            stripe_event_at: Some(event.created_at_ms()),
            stripe_customer_id: Some(subscription.customer.id().to_owned()),
            ..Default::default()
        };
        let mut replan = false;
        if let Some(price) = subscription.price_id() {
            match self.tenant.settings.plans.get_key_value(price) {
                Some((key, plan)) if site.plan.as_deref() != Some(key.as_str()) => {
                    notes.push(format!("plan {}", plan.name));
                    changes.plan = Some(key.clone());
                    replan = true;
                }
                Some(_) => {}
                None => notes.push(format!(
                    "price {price} is not one of the tenant's plans; plan unchanged"
                )),
            }
        }
        let mut resume = false;
        match subscription.status.as_str() {
            "active" | "trialing" => {
                if site.payment_overdue_since.is_some() {
                    changes.payment_overdue_since = Some(None);
                    notes.push("no longer overdue".into());
                }
                resume = suspended_for_payment(site);
            }
            "past_due" | "unpaid" | "paused" => {
                let since = match site.payment_overdue_since {
                    Some(since) => since,
                    None => {
                        let since = event.created_at_ms();
                        changes.payment_overdue_since = Some(Some(since));
                        self.schedule_suspension(conn, &site.id, since)?;
                        since
                    }
                };
                if site.state != SiteState::Suspended {
                    notes.push(format!(
                        "suspended at {} unless paid by then",
                        http_date(since.saturating_add(self.grace_ms()))
                    ));
                }
            }
            _ => {}
        }
        sites::record_payment(conn, &site.id, changes)?;
        if resume {
            self.provision(conn, &site.id, &[SiteState::Suspended])?;
            notes.push("resumed".into());
        } else if replan && matches!(site.state, SiteState::Ready | SiteState::Provisioning) {
            self.provision(conn, &site.id, &[SiteState::Ready, SiteState::Provisioning])?;
            notes.push("re-applying the workload with the new plan".into());
        }
        Ok(Outcome::applied(&site.id, notes.join("; ")))
    }

    fn invoice_paid(
        &self,
        conn: &mut DbConnection,
        event: &Event,
        site: &SiteRow,
    ) -> anyhow::Result<Outcome> {
        let invoice: Invoice = match event.object() {
            Ok(i) => i,
            Err(why) => return Ok(Outcome::invalid(why)),
        };
        let mut changes = PaymentChanges {
            stripe_event_at: Some(event.created_at_ms()),
            ..Default::default()
        };
        if site.payment_overdue_since.is_some() {
            changes.payment_overdue_since = Some(None);
        }
        sites::record_payment(conn, &site.id, changes)?;
        let mut detail = format!("invoice {} paid", invoice.id);
        if suspended_for_payment(site) {
            self.provision(conn, &site.id, &[SiteState::Suspended])?;
            detail.push_str("; resumed");
        }
        Ok(Outcome::applied(&site.id, detail))
    }

    /// Records the failure only: whether the site is suspended follows the subscription's status
    /// (`past_due`, then the grace period). It does not advance the site's event time, so the
    /// status change that Stripe sends alongside is never taken for stale.
    fn invoice_payment_failed(&self, event: &Event, site: &SiteRow) -> anyhow::Result<Outcome> {
        let invoice: Invoice = match event.object() {
            Ok(i) => i,
            Err(why) => return Ok(Outcome::invalid(why)),
        };
        metrics::counter!("berth_stripe_payment_failures_total", "tenant" => self.tenant.name.to_string())
            .increment(1);
        tracing::warn!(site.id = %site.id, tenant = %site.tenant, stripe.invoice = %invoice.id, "a subscription payment failed");
        Ok(Outcome::applied(
            &site.id,
            format!(
                "invoice {} payment failed (attempt {}); the subscription's status decides suspension",
                invoice.id,
                invoice.attempt_count.unwrap_or(1)
            ),
        ))
    }

    /// Final: deprovisions the site whatever the event's age (a subscription never comes back).
    fn subscription_deleted(
        &self,
        conn: &mut DbConnection,
        event: &Event,
        site: &SiteRow,
    ) -> anyhow::Result<Outcome> {
        let at = event.created_at_ms().max(site.stripe_event_at.unwrap_or(0));
        sites::record_payment(
            conn,
            &site.id,
            PaymentChanges {
                stripe_event_at: Some(at),
                payment_overdue_since: Some(None),
                ..Default::default()
            },
        )?;
        let from: Vec<SiteState> = SiteState::DELETABLE
            .into_iter()
            .filter(|s| *s != SiteState::Deprovisioning)
            .collect();
        let transition = sites::act(conn, &site.id, &from, SiteState::Deprovisioning, |site| {
            Some(
                Deprovision {
                    site_id: site.id.clone(),
                    version: site.version,
                }
                .to_new_job(self.jobs),
            )
        })?;
        Ok(match transition {
            Transition::Done(_) => {
                Outcome::applied(&site.id, "subscription canceled: removing the site")
            }
            Transition::WrongState(state) => Outcome::new(
                stripe_events::IGNORED,
                format!("subscription canceled; the site is already {state}"),
                Some(&site.id),
            ),
            Transition::NotFound => Outcome::deferred("the site disappeared"),
        })
    }

    /// Moves the site from one of `from` to `provisioning` with a fresh provision job (a new
    /// version: an older job of the site stands down).
    fn provision(
        &self,
        conn: &mut DbConnection,
        id: &str,
        from: &[SiteState],
    ) -> anyhow::Result<()> {
        sites::act(conn, id, from, SiteState::Provisioning, |site| {
            Some(
                Provision {
                    site_id: site.id.clone(),
                    version: site.version,
                }
                .to_new_job(self.jobs),
            )
        })?;
        Ok(())
    }

    fn grace_ms(&self) -> i64 {
        i64::try_from(self.tenant.settings.grace_period_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX)
    }

    /// Enqueues the job that suspends the site when the grace period after `since` is over.
    fn schedule_suspension(
        &self,
        conn: &mut DbConnection,
        site_id: &str,
        since: i64,
    ) -> anyhow::Result<()> {
        let mut job = SuspendOverdue {
            site_id: site_id.to_owned(),
            overdue_since: since,
        }
        .to_new_job(self.jobs);
        job.run_at = since.saturating_add(self.grace_ms());
        jobs::insert(conn, &job)
    }
}

/// A Unix-milliseconds time for people: `Sat, 21 Nov 2026 15:00:00 GMT`.
fn http_date(ms: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    httpdate::fmt_http_date(at)
}

/// `Some(stale outcome)` when a newer event was applied to the site already.
fn stale(site: &SiteRow, event: &Event) -> Option<Outcome> {
    let newest = site.stripe_event_at?;
    (event.created_at_ms() < newest).then(|| {
        Outcome::new(
            stripe_events::STALE,
            format!(
                "older than an event already applied to the site (of {}); nothing changed",
                http_date(newest)
            ),
            Some(&site.id),
        )
    })
}

fn suspended_for_payment(site: &SiteRow) -> bool {
    site.state == SiteState::Suspended
        && site.suspended_for.as_deref() == Some(SUSPENDED_FOR_PAYMENT)
}

fn record(conn: &mut DbConnection, row_id: &str, outcome: &Outcome) -> anyhow::Result<()> {
    stripe_events::finish(
        conn,
        row_id,
        outcome.label,
        &outcome.detail,
        outcome.site_id.as_deref(),
    )
}

/// Serialises the event transactions of one tenant on PostgreSQL (SQLite's `BEGIN IMMEDIATE`
/// already serialises every write transaction). Released at commit or rollback.
fn lock_tenant(conn: &mut DbConnection, tenant: &str) -> anyhow::Result<()> {
    if let DbConnection::Postgresql(pg) = conn {
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind::<diesel::sql_types::Integer, _>(STRIPE_LOCK_SPACE)
            .bind::<diesel::sql_types::Integer, _>(fnv1a(tenant))
            .execute(pg)?;
    }
    Ok(())
}

/// The advisory-lock key space of Stripe event processing (the migration lock uses another).
const STRIPE_LOCK_SPACE: i32 = 0x5354_5250; // "STRP"

/// A stable 32-bit hash of a tenant name, the second half of its advisory-lock key.
fn fnv1a(value: &str) -> i32 {
    let hash = value.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    i32::from_ne_bytes(hash.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{FieldError, PolicyReason};

    fn reason(code: &str) -> PolicyReason {
        PolicyReason {
            plugin: "guard".into(),
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn only_a_real_refusal_refuses_a_payment_first_signup() {
        let invalid = SignupError::InvalidFields(vec![FieldError {
            field: "name",
            code: "invalid",
            message: "name is bad".into(),
        }]);
        assert!(refusal(invalid).unwrap().contains("name is bad"));
        let denied = SignupError::PolicyRejected(vec![reason("brand"), reason(POLICY_ERROR)]);
        assert!(refusal(denied).is_ok(), "a plugin said no");

        let retry = [
            (
                "a database hiccup",
                SignupError::Failed(anyhow::anyhow!("database is locked")),
            ),
            (
                "a plugin that could not check it",
                SignupError::PolicyRejected(vec![reason(POLICY_ERROR)]),
            ),
        ];
        for (why, error) in retry {
            assert!(refusal(error).is_err(), "{why} must retry, not refuse");
        }
    }
}
