//! Secrets kept out of what berth prints: the effective configuration with `[redacted]` in their
//! place, and any message scrubbed of them.

use super::Settings;
use crate::domain::Secret;

impl Settings {
    /// The effective configuration as TOML, with secrets shown as `[redacted]`.
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }

    /// `text` (an error to print, say) with every secret's value, and the password inside a
    /// database or SMTP URL, replaced by `[redacted]`: a last guard for messages that other
    /// libraries wrote.
    pub fn redact(&self, text: &str) -> String {
        let mut secrets: Vec<&str> = vec![
            self.server.admin_token.expose(),
            self.server.metrics_token.expose(),
            self.database.url.expose(),
            self.email.smtp_url.expose(),
        ];
        secrets.extend(url_password(self.database.url.expose()));
        secrets.extend(url_password(self.email.smtp_url.expose()));
        for tenant in &self.tenants {
            secrets.push(tenant.admin_token.expose());
            secrets.push(tenant.dns.api_token.expose());
            secrets.extend(tenant.stripe.webhook_secrets.iter().map(Secret::expose));
        }
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut text = text.to_owned();
        for secret in secrets {
            text = text.replace(secret, "[redacted]");
        }
        text
    }
}

/// The password of `scheme://user:password@host…`, if there is one.
fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let (userinfo, _) = rest.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

#[cfg(test)]
mod tests {
    use crate::configuration::tests::load;

    #[test]
    fn redact_hides_secrets_and_url_passwords_in_any_message() {
        let settings = load(
            "[server]\nadmin_token = \"s3cret-admin-0123456\"\n[database]\nurl = \"postgres://berth:pw-7f3a9c@db.internal/berth\"\n[email]\nsmtp_url = \"smtps://mailer:smtp-9d2e@mail.example:465\"\n",
            &[],
        )
        .unwrap();
        let message = "connection to server at \"db.internal\" failed for postgres://berth:pw-7f3a9c@db.internal/berth; \
                       password pw-7f3a9c; smtp smtp-9d2e; token s3cret-admin-0123456";
        let redacted = settings.redact(message);
        for secret in ["pw-7f3a9c", "smtp-9d2e", "s3cret-admin-0123456"] {
            assert!(!redacted.contains(secret), "{redacted}");
        }
        assert!(redacted.contains("db.internal"), "{redacted}");
    }

    #[test]
    fn redacted_output_hides_every_secret() {
        let settings = load(
            "[server]\nadmin_token = \"s3cret-admin-0123456\"\n[database]\nurl = \"postgres://u:pw@h/db\"\n[[tenants]]\nname = \"default\"\nadmin_token = \"s3cret-tenant-012345\"\nstripe = { webhook_secrets = [\"whsec_s3cret\"] }\n",
            &[],
        )
        .unwrap();
        let out = settings.redacted_toml();
        for secret in [
            "s3cret-admin-0123456",
            "pw@h",
            "s3cret-tenant-012345",
            "whsec_s3cret",
        ] {
            assert!(!out.contains(secret), "{secret} leaked into:\n{out}");
        }
        assert!(out.contains("[redacted]"));
    }
}
