//! The signup pipeline that every new site goes through, whether a customer posted the signup
//! form or paid first through Stripe Checkout: built-in validation, then the tenant's policy
//! plugins, then the row that stores the site. The HTTP parts (body formats, rate limits,
//! honeypot, CORS, the response) stay in `routes::signup`.

use std::collections::HashMap;

use crate::db::now_ms;
use crate::db::sites::NewSite;
use crate::domain::{EmailAddress, Hostname, SiteId, SiteName, SiteState};
use crate::error::{ApiError, FieldError};
use crate::policy::{Hook, PolicyEngine, Submission, Verdict};
use crate::tenants::Tenant;

/// The submitted fields by name. Values are raw bytes: UTF-8 is checked per field later, so a
/// bad byte in `html` is reported against `html`.
#[derive(Debug, Default)]
pub struct RawForm {
    fields: HashMap<String, Vec<u8>>,
}

impl RawForm {
    pub fn insert(&mut self, name: String, value: Vec<u8>) -> Result<(), ApiError> {
        if self.fields.contains_key(&name) {
            return Err(Self::duplicate(&name));
        }
        self.fields.insert(name, value);
        Ok(())
    }

    /// The `400` for a field given more than once, in whatever body format.
    pub fn duplicate(name: &str) -> ApiError {
        ApiError::bad_request(
            "duplicate_field",
            format!("field {name:?} is given more than once"),
        )
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields.get(name).map(Vec::as_slice)
    }
}

/// A signup that passed built-in validation.
pub struct Signup {
    pub name: SiteName,
    pub email: EmailAddress,
    pub html: Option<String>,
    /// The plan's key in the tenant's `plans`.
    pub plan: Option<String>,
}

fn text_field<'a>(
    form: &'a RawForm,
    field: &'static str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    let raw = form.get(field)?;
    match std::str::from_utf8(raw) {
        Ok(text) => Some(text),
        Err(_) => {
            errors.push(FieldError {
                field,
                code: "not_utf8",
                message: format!("{field} is not valid UTF-8"),
            });
            None
        }
    }
}

/// Built-in validation: every problem at once, each against its field.
pub fn validate(tenant: &Tenant, form: &RawForm) -> Result<Signup, ApiError> {
    let html_needed = tenant.settings.workload.kind == crate::configuration::WorkloadKind::Static;
    let mut missing: Vec<&str> = ["name", "email"]
        .into_iter()
        .filter(|f| form.get(f).is_none())
        .collect();
    if html_needed && form.get("html").is_none() {
        missing.push("html");
    }
    if !missing.is_empty() {
        return Err(ApiError::bad_request(
            "missing_field",
            format!(
                "missing required field{}: {}",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", ")
            ),
        ));
    }

    let mut errors = Vec::new();
    let name = text_field(form, "name", &mut errors)
        .map(str::trim)
        .and_then(|name| {
            let error = |code, message: String| FieldError {
                field: "name",
                code,
                message,
            };
            if name.is_empty() {
                errors.push(error("required", "name is required".into()));
                return None;
            }
            match SiteName::parse(name) {
                Ok(_) if tenant.is_reserved(name) => {
                    errors.push(error(
                        "reserved",
                        format!("{name:?} is reserved; choose another name"),
                    ));
                    None
                }
                Ok(parsed) => Some(parsed),
                Err(why) => {
                    errors.push(error("invalid", format!("name {why}")));
                    None
                }
            }
        });
    let email = text_field(form, "email", &mut errors)
        .map(str::trim)
        .and_then(|email| {
            let error = |code, message: String| FieldError {
                field: "email",
                code,
                message,
            };
            if email.is_empty() {
                errors.push(error("required", "email is required".into()));
                return None;
            }
            EmailAddress::parse(email)
                .map_err(|why| errors.push(error("invalid", format!("email {why}"))))
                .ok()
        });
    let html = text_field(form, "html", &mut errors).map(str::to_owned);
    if let Some(html) = &html {
        check_html(tenant, html, html_needed, &mut errors);
    }
    let plan = match text_field(form, "plan", &mut errors)
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(wanted) => match tenant.plan(wanted) {
            Some((key, _)) => Some(key.clone()),
            None => {
                let known: Vec<&str> = tenant
                    .settings
                    .plans
                    .values()
                    .map(|p| p.name.as_str())
                    .collect();
                errors.push(FieldError {
                    field: "plan",
                    code: "unknown_plan",
                    message: if known.is_empty() {
                        format!("unknown plan {wanted:?}; this site builder has no plans")
                    } else {
                        format!(
                            "unknown plan {wanted:?}; choose one of: {}",
                            known.join(", ")
                        )
                    },
                });
                None
            }
        },
    };
    match (name, email) {
        (Some(name), Some(email)) if errors.is_empty() => Ok(Signup {
            name,
            email,
            html,
            plan,
        }),
        _ => Err(ApiError::InvalidFields(errors)),
    }
}

/// The HTML rules that hold for every value, including one a plugin rewrote.
fn check_html(tenant: &Tenant, html: &str, needed: bool, errors: &mut Vec<FieldError>) {
    let max = tenant.settings.html_max_bytes;
    if html.len() > max {
        errors.push(FieldError {
            field: "html",
            code: "too_large",
            message: format!("html is {} bytes; the limit is {max} bytes", html.len()),
        });
    } else if needed && html.trim().is_empty() {
        errors.push(FieldError {
            field: "html",
            code: "required",
            message: "html is required".into(),
        });
    } else if html.contains('\0') {
        errors.push(FieldError {
            field: "html",
            code: "invalid",
            message: "html must not contain NUL bytes".into(),
        });
    }
}

/// The tenant's policy plugins: the name hook, then the html hook, sharing one time budget. A
/// rewrite replaces the HTML and the built-in checks run again on it.
pub async fn run_policies(
    policies: &PolicyEngine,
    tenant: &Tenant,
    signup: &mut Signup,
) -> Result<(), ApiError> {
    let submission = Submission {
        name: signup.name.as_str(),
        email: signup.email.as_str(),
        plan: signup.plan.as_deref(),
    };
    let budget = policies.budget();
    if let Verdict::Deny(reasons) = policies
        .check(
            tenant,
            Hook::Name,
            signup.name.as_str(),
            &submission,
            &budget,
        )
        .await?
    {
        return Err(ApiError::PolicyRejected(reasons));
    }
    if let Some(html) = &signup.html {
        match policies
            .check(tenant, Hook::Html, html, &submission, &budget)
            .await?
        {
            Verdict::Deny(reasons) => return Err(ApiError::PolicyRejected(reasons)),
            Verdict::Allow {
                rewrite: Some(rewritten),
            } => {
                let mut errors = Vec::new();
                check_html(tenant, &rewritten, true, &mut errors);
                if !errors.is_empty() {
                    return Err(ApiError::InvalidFields(errors));
                }
                signup.html = Some(rewritten);
            }
            Verdict::Allow { rewrite: None } => {}
        }
    }
    Ok(())
}

impl Signup {
    /// The row that stores this signup as site `id` of `tenant`, in `state`.
    pub fn into_new_site(self, tenant: &Tenant, id: &SiteId, state: SiteState) -> NewSite {
        let hostname = Hostname::new(&self.name, &tenant.settings.base_domain);
        let now = now_ms();
        NewSite {
            id: id.to_string(),
            tenant: tenant.name.to_string(),
            name: self.name.to_string(),
            hostname: hostname.to_string(),
            email: self.email.as_str().to_owned(),
            html: self.html,
            plan: self.plan,
            state: state.as_str().to_owned(),
            version: 1,
            stripe_customer_id: None,
            stripe_subscription_id: None,
            stripe_event_at: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A refusal from [`validate`] or [`run_policies`] in one line, for a log or an operator, where
/// no HTTP response can carry it (a signup that arrived as a payment).
pub fn describe_refusal(error: &ApiError) -> String {
    match error {
        ApiError::InvalidFields(fields) => fields
            .iter()
            .map(|f| format!("{} ({}): {}", f.field, f.code, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        ApiError::PolicyRejected(reasons) => reasons
            .iter()
            .map(|r| format!("policy {} ({}): {}", r.plugin, r.code, r.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
