//! `[email]`: how notices are sent (files, SMTP or the log) and from whom, and the per-tenant
//! overrides of their text (`email_templates`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::{invalid, ConfigError};
use crate::domain::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTransport {
    File,
    Smtp,
    Log,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailSettings {
    pub transport: EmailTransport,
    pub dir: PathBuf,
    /// lettre URL form; may carry credentials, so it is a secret.
    pub smtp_url: Secret,
    pub from: String,
    /// SMTP command timeout, in seconds.
    pub timeout_secs: u64,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            transport: EmailTransport::File,
            dir: PathBuf::from("outbox"),
            smtp_url: Secret::new("smtp://127.0.0.1:2525"),
            from: "berth <noreply@localhost>".into(),
            timeout_secs: 30,
        }
    }
}

impl EmailSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| invalid("email.from", format!("not a valid mailbox: {e}")))?;
        if self.transport == EmailTransport::Smtp {
            let url = self.smtp_url.expose();
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(invalid(
                    "email.smtp_url",
                    "must start with smtp:// or smtps://",
                ));
            }
        }
        Ok(())
    }
}

/// Per-tenant override of one notice's email. Placeholders: `{{name}}`, `{{hostname}}`,
/// `{{site_url}}`, `{{status_url}}`, `{{tenant}}` (escaped in the HTML part).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EmailTemplate {
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// A tenant's `email_templates` only name known notices; `key` gives the key under the tenant.
pub(super) fn validate_templates(
    templates: &BTreeMap<String, EmailTemplate>,
    key: impl Fn(&str) -> String,
) -> Result<(), ConfigError> {
    for notice in templates.keys() {
        if !crate::domain::notice::NOTICES.contains(&notice.as_str()) {
            return Err(invalid(
                key(&format!("email_templates.{notice}")),
                format!(
                    "unknown notice; known: {}",
                    crate::domain::notice::NOTICES.join(", ")
                ),
            ));
        }
    }
    Ok(())
}
