//! The signup pipeline that every new site goes through, whether a customer posted the signup
//! form or paid first through Stripe Checkout: built-in validation, then the tenant's policy
//! plugins, then the row that stores the site. The HTTP parts (body formats, rate limits,
//! honeypot, CORS, the response) stay in `routes::signup`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::adapters::db::now_ms;
use crate::adapters::db::sites::NewSite;
use crate::adapters::plugin_host::{CompiledPlugin, PluginHost};
use crate::domain::manage_token::Issued;
use crate::domain::{Author, EmailAddress, Hook, Hostname, SiteId, SiteName, SiteState};
use crate::error::{FieldError, PolicyReason};
use crate::services::policy::{
    context_json, settings_verdict, test_result, PolicyEngine, Submission, TestResult, Verdict,
};
use crate::services::tenants::Tenant;

/// Why the signup pipeline did not take a submission: a refusal (the customer can fix it) or a
/// failure (retrying can). Routes answer it as HTTP; the payment flow records a refusal on the
/// event and retries a failure.
#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    /// The submission is malformed as a whole (a required field missing, a field given twice);
    /// `code` names the problem.
    #[error("{message}")]
    Malformed { code: &'static str, message: String },
    /// Built-in validation refused these fields.
    #[error("some fields are invalid")]
    InvalidFields(Vec<FieldError>),
    /// The tenant's policy plugins refused the submission (or could not check it and fail
    /// closed, with reason code [`crate::services::policy::POLICY_ERROR`]).
    #[error("a policy rejected the submission")]
    PolicyRejected(Vec<PolicyReason>),
    /// Something failed that is not the submission's fault (the database, the plugin engine).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl SignupError {
    fn malformed(code: &'static str, message: String) -> Self {
        Self::Malformed { code, message }
    }

    /// The refusal in one line, for a log or an operator, where no HTTP response can carry it
    /// (a signup that arrived as a payment).
    pub fn describe(&self) -> String {
        match self {
            Self::InvalidFields(fields) => fields
                .iter()
                .map(|f| format!("{} ({}): {}", f.field, f.code, f.message))
                .collect::<Vec<_>>()
                .join("; "),
            Self::PolicyRejected(reasons) => reasons
                .iter()
                .map(|r| format!("policy {} ({}): {}", r.plugin, r.code, r.message))
                .collect::<Vec<_>>()
                .join("; "),
            Self::Malformed { message, .. } => message.clone(),
            Self::Failed(cause) => format!("{cause:#}"),
        }
    }
}

/// The submitted fields by name. Values are raw bytes: UTF-8 is checked per field later, so a
/// bad byte in `html` is reported against `html`.
#[derive(Debug, Default)]
pub struct RawForm {
    fields: HashMap<String, Vec<u8>>,
}

impl RawForm {
    pub fn insert(&mut self, name: String, value: Vec<u8>) -> Result<(), SignupError> {
        if self.fields.contains_key(&name) {
            return Err(Self::duplicate(&name));
        }
        self.fields.insert(name, value);
        Ok(())
    }

    /// The refusal of a field given more than once, in whatever body format.
    pub fn duplicate(name: &str) -> SignupError {
        SignupError::malformed(
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

/// The `html` field of a content update, required and UTF-8, refused as a signup's would be.
pub fn html_field(form: &RawForm) -> Result<String, SignupError> {
    if form.get("html").is_none() {
        return Err(SignupError::malformed(
            "missing_field",
            "missing required field: html".into(),
        ));
    }
    let mut errors = Vec::new();
    match text_field(form, "html", &mut errors) {
        Some(html) => Ok(html.to_owned()),
        None => Err(SignupError::InvalidFields(errors)),
    }
}

/// Built-in validation: every problem at once, each against its field.
pub fn validate(tenant: &Tenant, form: &RawForm) -> Result<Signup, SignupError> {
    let html_needed = tenant.settings.workload.kind == crate::configuration::WorkloadKind::Static;
    let mut missing: Vec<&str> = ["name", "email"]
        .into_iter()
        .filter(|f| form.get(f).is_none())
        .collect();
    if html_needed && form.get("html").is_none() {
        missing.push("html");
    }
    if !missing.is_empty() {
        return Err(SignupError::malformed(
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
        .and_then(|name| check_name(tenant, name).map_err(|e| errors.push(e)).ok());
    let email = text_field(form, "email", &mut errors)
        .and_then(|email| check_email(email).map_err(|e| errors.push(e)).ok());
    let html = text_field(form, "html", &mut errors).map(str::to_owned);
    if let Some(html) = &html {
        check_html(tenant, html, html_needed, &mut errors);
    }
    let plan = match text_field(form, "plan", &mut errors)
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(wanted) => check_plan(tenant, wanted).map_err(|e| errors.push(e)).ok(),
    };
    match (name, email) {
        (Some(name), Some(email)) if errors.is_empty() => Ok(Signup {
            name,
            email,
            html,
            plan,
        }),
        _ => Err(SignupError::InvalidFields(errors)),
    }
}

/// The built-in rules for a site name (trimmed): a DNS label of 3 to 63 characters, lowercase,
/// not one of the tenant's reserved names.
pub fn check_name(tenant: &Tenant, name: &str) -> Result<SiteName, FieldError> {
    let name = name.trim();
    let error = |code, message: String| FieldError {
        field: "name",
        code,
        message,
    };
    if name.is_empty() {
        return Err(error("required", "name is required".into()));
    }
    match SiteName::parse(name) {
        Ok(_) if tenant.is_reserved(name) => Err(error(
            "reserved",
            format!("{name:?} is reserved; choose another name"),
        )),
        Ok(parsed) => Ok(parsed),
        Err(why) => Err(error("invalid", format!("name {why}"))),
    }
}

/// The plan's key in the tenant's `plans`, found by its name or key.
pub fn check_plan(tenant: &Tenant, wanted: &str) -> Result<String, FieldError> {
    if let Some((key, _)) = tenant.plan(wanted) {
        return Ok(key.clone());
    }
    let known: Vec<&str> = tenant
        .settings
        .plans
        .values()
        .map(|p| p.name.as_str())
        .collect();
    Err(FieldError {
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
    })
}

/// The built-in rules for an email address (trimmed).
pub fn check_email(email: &str) -> Result<EmailAddress, FieldError> {
    let email = email.trim();
    let error = |code, message: String| FieldError {
        field: "email",
        code,
        message,
    };
    if email.is_empty() {
        return Err(error("required", "email is required".into()));
    }
    EmailAddress::parse(email).map_err(|why| error("invalid", format!("email {why}")))
}

/// The HTML rules that hold for every value, including one a plugin rewrote.
pub fn check_html(tenant: &Tenant, html: &str, needed: bool, errors: &mut Vec<FieldError>) {
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
) -> Result<(), SignupError> {
    let submission = Submission {
        name: &signup.name,
        email: &signup.email,
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
        return Err(SignupError::PolicyRejected(reasons));
    }
    if let Some(html) = signup.html.take() {
        signup.html = Some(html_policies(policies, tenant, &submission, &budget, html).await?);
    }
    Ok(())
}

/// The tenant's html-hook policies on `html`: the HTML to store (a plugin's rewrite, checked by
/// the built-in rules again), or the refusal.
async fn html_policies(
    policies: &PolicyEngine,
    tenant: &Tenant,
    submission: &Submission<'_>,
    budget: &crate::services::policy::Budget,
    html: String,
) -> Result<String, SignupError> {
    match policies
        .check(tenant, Hook::Html, &html, submission, budget)
        .await?
    {
        Verdict::Deny(reasons) => Err(SignupError::PolicyRejected(reasons)),
        Verdict::Allow {
            rewrite: Some(rewritten),
        } => {
            let mut errors = Vec::new();
            check_html(tenant, &rewritten, true, &mut errors);
            if !errors.is_empty() {
                return Err(SignupError::InvalidFields(errors));
            }
            Ok(rewritten)
        }
        Verdict::Allow { rewrite: None } => Ok(html),
    }
}

/// Another name for a paid site whose name was refused (SPEC §7): the whole signup pipeline
/// again, with the site's own email, plan and HTML, so the site is accepted exactly when a
/// signup under the new name would be. Returns the checked name and the HTML to keep (a
/// mutating plugin's rewrite, or the stored HTML).
pub async fn check_rename(
    policies: &PolicyEngine,
    tenant: &Tenant,
    site: &crate::adapters::db::sites::SiteRow,
    html: Option<String>,
    name: &str,
) -> Result<(SiteName, Option<String>), SignupError> {
    let name = check_name(tenant, name).map_err(|e| SignupError::InvalidFields(vec![e]))?;
    let email = EmailAddress::parse(&site.email)
        .map_err(|why| anyhow::anyhow!("stored email of site {} {why}", site.id))?;
    let mut signup = Signup {
        name,
        email,
        html,
        plan: site.plan.clone(),
    };
    run_policies(policies, tenant, &mut signup).await?;
    Ok((signup.name, signup.html))
}

/// New content for an existing site (SPEC §7): the same built-in HTML rules and html policies
/// as at signup, with the site's own name, email and plan in the plugins' context, so an update
/// is refused exactly when a signup with this HTML would be.
pub async fn check_update(
    policies: &PolicyEngine,
    tenant: &Tenant,
    site: &crate::adapters::db::sites::SiteRow,
    html: String,
) -> Result<String, SignupError> {
    let mut errors = Vec::new();
    check_html(tenant, &html, true, &mut errors);
    if !errors.is_empty() {
        return Err(SignupError::InvalidFields(errors));
    }
    let name = SiteName::parse(&site.name)
        .map_err(|why| anyhow::anyhow!("stored site name {:?} {why}", site.name))?;
    let email = EmailAddress::parse(&site.email)
        .map_err(|why| anyhow::anyhow!("stored email of site {} {why}", site.id))?;
    let submission = Submission {
        name: &name,
        email: &email,
        plan: site.plan.as_deref(),
    };
    html_policies(policies, tenant, &submission, &policies.budget(), html).await
}

/// One plugin tried on one submission, with given settings: what the admin test endpoint and
/// `berth plugin run` do. It goes through the same steps as a binding and a signup: the plugin's
/// `berth_validate_settings` (a binding with settings it refuses never exists), then berth's
/// built-in checks of the submission, then one call under the same limits.
#[derive(Debug, Clone)]
pub struct Trial {
    pub hook: Hook,
    /// The value under test: the name (name hook) or the HTML (html hook).
    pub value: String,
    /// The binding's settings; the caller has checked that they are a JSON object.
    pub settings: serde_json::Value,
    /// The submission's name, for the html hook (the name hook tests `value`).
    pub name: String,
    pub email: String,
    pub plan: Option<String>,
}

/// Why a trial did not reach `berth_validate`.
#[derive(Debug, Clone)]
pub enum TrialRefusal {
    /// berth's built-in checks refuse the submission, as a signup would (`422 invalid_fields`).
    Fields(Vec<FieldError>),
    /// The plugin refuses its settings or cannot check them, as a binding would be refused
    /// (`422 invalid_settings`).
    Settings(String),
}

/// The admin test endpoint's call: [`trial`] of `tenant`'s stored plugin `plugin_name`, on the
/// host that counts fuel. `None` when there is no such plugin.
pub async fn test_stored(
    policies: &PolicyEngine,
    tenant: Arc<Tenant>,
    plugin_name: &str,
    case: Trial,
) -> anyhow::Result<Option<Result<TestResult, TrialRefusal>>> {
    let (name, tenant_name) = (plugin_name.to_owned(), tenant.name.as_str().to_owned());
    policies
        .with_authoring_host(&tenant_name, plugin_name, move |host, plugin| {
            trial(host, &tenant, &name, plugin, &case)
        })
        .await
}

/// Runs `trial` against `plugin` (named `plugin_name` in the context) for `tenant`. Blocking:
/// call it off the async executor, in an instance slot.
pub fn trial(
    host: &PluginHost,
    tenant: &Tenant,
    plugin_name: &str,
    plugin: &CompiledPlugin,
    trial: &Trial,
) -> Result<TestResult, TrialRefusal> {
    let mut settings_logs = Vec::new();
    if plugin.info.validates_settings {
        let answer = host.validate_settings(plugin, &trial.settings.to_string());
        let (verdict, logs) = settings_verdict(answer);
        verdict.map_err(TrialRefusal::Settings)?;
        settings_logs = logs;
    }
    let mut errors = Vec::new();
    let name = match trial.hook {
        Hook::Name => &trial.value,
        Hook::Html => &trial.name,
    };
    let name = check_name(tenant, name).map_err(|e| errors.push(e)).ok();
    let email = check_email(&trial.email).map_err(|e| errors.push(e)).ok();
    let plan = match trial
        .plan
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(wanted) => check_plan(tenant, wanted).map_err(|e| errors.push(e)).ok(),
        None => None,
    };
    if trial.hook == Hook::Html {
        let needed = tenant.settings.workload.kind == crate::configuration::WorkloadKind::Static;
        check_html(tenant, &trial.value, needed, &mut errors);
    }
    let (Some(name), Some(email)) = (name, email) else {
        return Err(TrialRefusal::Fields(errors));
    };
    if !errors.is_empty() {
        return Err(TrialRefusal::Fields(errors));
    }
    let submission = Submission {
        name: &name,
        email: &email,
        plan: plan.as_deref(),
    };
    let value = match trial.hook {
        Hook::Name => name.as_str(),
        Hook::Html => &trial.value,
    };
    let context = context_json(
        trial.hook,
        tenant.name.as_str(),
        plugin_name,
        &trial.settings,
        &submission,
    );
    let mut result = test_result(host.validate(plugin, &context, value));
    result.settings_logs = settings_logs;
    Ok(result)
}

impl Signup {
    /// The row that stores this signup as site `id` of `tenant`, in `state`, its HTML (if any)
    /// as version 1 made `by` the customer or the payment flow, with the hash of its manage
    /// token.
    pub fn into_new_site(
        self,
        tenant: &Tenant,
        id: &SiteId,
        state: SiteState,
        by: Author,
        token: &Issued,
    ) -> NewSite {
        let hostname = Hostname::new(&self.name, &tenant.settings.base_domain);
        let now = now_ms();
        NewSite {
            id: id.to_string(),
            tenant: tenant.name.to_string(),
            name: self.name.to_string(),
            hostname: hostname.to_string(),
            email: self.email.as_str().to_owned(),
            target_version: self.html.is_some().then_some(1),
            html: self.html.map(|html| (html, by)),
            manage_token_hash: Some(token.hash.clone()),
            manage_token_nonce: Some(token.nonce.clone()),
            paid_at: None,
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
