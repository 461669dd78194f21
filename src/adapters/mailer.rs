//! Email: one message per site and notice, with a deterministic Message-ID, sent through
//! `smtp` (lettre), written as `.eml` files (`file`, the default) or logged (`log`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::adapters::db::sites::SiteRow;
use crate::configuration::{EmailSettings, EmailTemplate, EmailTransport};
use crate::domain::notice::{MANAGE_LINK, NAME_NEEDED, SITE_READY};

/// Where a notice points its reader: the live site, its status page and its manage page (with
/// the manage token in the fragment: the email is the one place berth hands it out again).
pub struct NoticeLinks {
    pub site_url: String,
    pub status_url: String,
    pub manage_url: String,
    /// The manage token alone, for a tenant whose templates link a manage page it hosts itself.
    pub manage_token: String,
}

pub struct Email {
    pub message: Message,
    pub message_id: String,
    pub subject: String,
}

enum Transport {
    File(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Log,
}

pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl Mailer {
    pub fn new(settings: &EmailSettings) -> anyhow::Result<Self> {
        let from: Mailbox = settings
            .from
            .parse()
            .context("email.from is not a valid mailbox")?;
        let transport = match settings.transport {
            EmailTransport::File => Transport::File(settings.dir.clone()),
            EmailTransport::Log => Transport::Log,
            EmailTransport::Smtp => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.smtp_url.expose())
                    // Not the parser's message: it may quote the URL, credentials and all.
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "email.smtp_url is not a valid SMTP URL (smtps://user:pass@host:465, \
                             smtp://host:587?tls=required, or smtp://127.0.0.1:25 for a local relay)"
                        )
                    })?
                    .timeout(Some(Duration::from_secs(settings.timeout_secs)))
                    .build(),
            ),
        };
        Ok(Self { transport, from })
    }

    /// `<notice.site-id@sender-domain>`: the same for every attempt at the same notice.
    pub fn message_id(&self, notice: &str, site_id: &str) -> String {
        format!("<{notice}.{site_id}@{}>", self.from.email.domain())
    }

    /// Builds the notice's message from the tenant's templates (or the built-in ones).
    pub fn render(
        &self,
        notice: &str,
        links: &NoticeLinks,
        templates: &BTreeMap<String, EmailTemplate>,
        site: &SiteRow,
        message_id: &str,
    ) -> anyhow::Result<Email> {
        let vars = [
            ("name", site.name.clone()),
            ("hostname", site.hostname.clone()),
            ("site_url", links.site_url.clone()),
            ("status_url", links.status_url.clone()),
            ("manage_url", links.manage_url.clone()),
            ("manage_token", links.manage_token.clone()),
            ("site_id", site.id.clone()),
            ("reason", site.last_error.clone().unwrap_or_default()),
            ("tenant", site.tenant.clone()),
        ];
        let custom = templates.get(notice);
        let (subject, text, html) = builtin(notice)?;
        let pick = |chosen: Option<&String>, fallback: &str| {
            chosen.cloned().unwrap_or_else(|| fallback.to_owned())
        };
        let subject = fill(
            &pick(custom.and_then(|t| t.subject.as_ref()), subject),
            &vars,
            false,
        );
        let text = fill(
            &pick(custom.and_then(|t| t.text.as_ref()), text),
            &vars,
            false,
        );
        let html = fill(
            &pick(custom.and_then(|t| t.html.as_ref()), html),
            &vars,
            true,
        );
        let to: Mailbox = site
            .email
            .parse()
            .context("stored customer address does not parse")?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject.clone())
            .message_id(Some(message_id.to_owned()))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html),
                    ),
            )
            .context("failed to build the email")?;
        Ok(Email {
            message,
            message_id: message_id.to_owned(),
            subject,
        })
    }

    pub async fn send(&self, email: &Email) -> anyhow::Result<()> {
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(email.message.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("SMTP delivery failed: {e}"))?;
            }
            Transport::File(dir) => write_eml(dir, email).await?,
            Transport::Log => tracing::info!(
                message_id = %email.message_id,
                subject = %email.subject,
                "email (log transport, not delivered)"
            ),
        }
        Ok(())
    }
}

/// Writes `<message-id>.eml` atomically (temporary file, fsync, rename), so a retry rewrites the
/// same file instead of adding a second message.
async fn write_eml(dir: &std::path::Path, email: &Email) -> anyhow::Result<()> {
    let stem: String = email
        .message_id
        .trim_matches(|c| c == '<' || c == '>')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{stem}.eml"));
    let tmp = dir.join(format!(".{stem}.eml.tmp"));
    let bytes = email.message.formatted();
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(())
    })
    .await
    .context("email writer panicked")?
}

fn builtin(notice: &str) -> anyhow::Result<(&'static str, &'static str, &'static str)> {
    match notice {
        SITE_READY => Ok((
            "Your site {{name}} is live",
            "Good news: your site is live at {{site_url}}\n\n\
             You can check its status at any time: {{status_url}}\n\n\
             To change its content or go back to an earlier version, use this link (keep it to \
             yourself: it lets whoever has it change your site): {{manage_url}}\n",
            "<!doctype html><html><body>\
             <p>Good news: your site is live at <a href=\"{{site_url}}\">{{site_url}}</a></p>\
             <p>You can check its status at any time: <a href=\"{{status_url}}\">{{status_url}}</a></p>\
             <p>To change its content or go back to an earlier version, <a href=\"{{manage_url}}\">manage your site</a>. \
             Keep this link to yourself: it lets whoever has it change your site.</p>\
             </body></html>",
        )),
        NAME_NEEDED => Ok((
            "Choose another name for your site",
            "Thank you for your order. We could not create your site under the name you chose \
             ({{reason}}).\n\n\
             Choose another name here, and your site is set up with your payment: {{manage_url}}\n\n\
             Keep this link to yourself: it lets whoever has it manage your site.\n",
            "<!doctype html><html><body>\
             <p>Thank you for your order. We could not create your site under the name you chose \
             ({{reason}}).</p>\
             <p><a href=\"{{manage_url}}\">Choose another name</a>, and your site is set up with your payment.</p>\
             <p>Keep this link to yourself: it lets whoever has it manage your site.</p>\
             </body></html>",
        )),
        MANAGE_LINK => Ok((
            "A new link to manage your site {{name}}",
            "Here is a new link to change your site's content or go back to an earlier version: \
             {{manage_url}}\n\n\
             Earlier links no longer work. Keep this one to yourself: it lets whoever has it \
             change your site.\n",
            "<!doctype html><html><body>\
             <p>Here is a new link to <a href=\"{{manage_url}}\">manage your site</a>: change its \
             content or go back to an earlier version.</p>\
             <p>Earlier links no longer work. Keep this one to yourself: it lets whoever has it \
             change your site.</p>\
             </body></html>",
        )),
        other => anyhow::bail!("unknown notice {other:?}"),
    }
}

/// Replaces `{{key}}` placeholders; values are HTML-escaped in HTML templates.
fn fill(template: &str, vars: &[(&str, String)], html: bool) -> String {
    let mut out = template.to_owned();
    for (key, value) in vars {
        let value = if html {
            escape_html(value)
        } else {
            value.clone()
        };
        out = out.replace(&format!("{{{{{key}}}}}"), &value);
    }
    out
}

fn escape_html(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_escaped_in_html() {
        let vars = [("name", "<b>".to_owned())];
        assert_eq!(fill("hi {{name}}", &vars, false), "hi <b>");
        assert_eq!(fill("hi {{name}}", &vars, true), "hi &lt;b&gt;");
    }

    #[test]
    fn message_ids_are_deterministic() {
        let mailer = Mailer::new(&EmailSettings::default()).unwrap();
        assert_eq!(
            mailer.message_id(SITE_READY, "site_x"),
            "<site_ready.site_x@localhost>"
        );
        assert_eq!(
            mailer.message_id(SITE_READY, "site_x"),
            mailer.message_id(SITE_READY, "site_x")
        );
    }
}
