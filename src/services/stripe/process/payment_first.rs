//! `checkout.session.*` for a site that does not exist yet: a payment-first checkout (it names no
//! site, only `metadata.site_name`) goes through the signup pipeline and creates its site.

use super::shared::{
    named_site, Outcome, Processor, CHECKOUT_ASYNC_FAILED, CHECKOUT_ASYNC_SUCCEEDED,
    CHECKOUT_COMPLETED,
};
use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::outbox;
use crate::adapters::db::sites;
use crate::adapters::db::stripe_events;
use crate::adapters::db::{jobs, DbConnection};
use crate::domain::job::{Provision, SendEmail};
use crate::domain::notice::NAME_NEEDED;
use crate::domain::{Author, SiteId, SiteName, SiteState};
use crate::faults::Faults;
use crate::services::policy::{PolicyEngine, POLICY_ERROR};
use crate::services::signup::{self, RawForm, Signup, SignupError};
use crate::services::stripe::event::{CheckoutSession, Event};
use crate::services::tenants::Tenant;

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

impl Processor<'_> {
    /// The payment-first flow: a checkout that names no site creates it, through the signup
    /// pipeline's verdict. A taken name or a policy's denial stores a `rejected` site (it holds
    /// no name), so that operators see who paid for what.
    pub(super) fn create_paid_site(
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
        // No response carries this token: the readiness email derives it again for its link.
        let token = self.manage_key.issue(id.as_str());
        let mut site = signup.into_new_site(
            self.tenant,
            &id,
            SiteState::Provisioning,
            Author::Payment,
            &token,
        );
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
        site.paid_at = paid.then(|| event.created_at_ms());
        if let Some(why) = refusal {
            site.state = SiteState::Rejected.as_str().to_owned();
            site.last_error = Some(format!("payment-first signup refused: {why}"));
            sites::insert(conn, &site)?;
            // The customer paid (or is paying) for a site they do not have yet: tell them, with
            // the manage link where they choose another name.
            let message_id = self.mailer.message_id(NAME_NEEDED, id.as_str());
            if outbox::add(conn, id.as_str(), NAME_NEEDED, &message_id)? {
                let email = SendEmail {
                    site_id: id.to_string(),
                    notice: NAME_NEEDED.to_owned(),
                    outbox: None,
                };
                jobs::insert(conn, &email.to_new_job(self.jobs))?;
            }
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
