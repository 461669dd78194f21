//! Sends one notice for one site, once: the outbox row says whether it went out, and the
//! Message-ID is derived from the site and notice, so a resend after a crash is recognisable.

use super::{BackgroundJob, JobContext};
use crate::adapters::db::sites::SiteRow;
use crate::adapters::db::{outbox, sites};
use crate::adapters::mailer::NoticeLinks;
use crate::domain::job::SendEmail;
use crate::domain::{manage_token, Secret};

impl BackgroundJob for SendEmail {
    async fn run(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let (id, notice) = (self.site_id.clone(), self.outbox_key().to_owned());
        let (row, site) = ctx
            .db
            .run(move |c| Ok((outbox::get(c, &id, &notice)?, sites::get(c, &id)?)))
            .await?;
        let (Some(row), Some(site)) = (row, site) else {
            tracing::warn!(site.id = %self.site_id, notice = %self.notice, "no outbox row; nothing to send");
            return Ok(());
        };
        if row.sent_at.is_some() {
            return Ok(());
        }
        let tenant = ctx.tenants.get().get(&site.tenant)?;
        let token = self.manage_token(ctx, &site).await?;
        let links = NoticeLinks {
            site_url: tenant.site_url(&site.hostname),
            status_url: tenant.status_url(&site.id),
            manage_url: tenant.manage_url(&site.id, token.expose()),
            manage_token: token.expose().to_owned(),
        };
        let templates = &tenant.settings.email_templates;
        let mailer = ctx.mailer.get();
        let email = mailer.render(&self.notice, &links, templates, &site, &row.message_id)?;
        mailer.send(&email).await?;
        ctx.faults.hit("send_email.after_send").await?;
        let (id, notice) = (self.site_id.clone(), self.outbox_key().to_owned());
        ctx.db
            .write(move |c| outbox::mark_sent(c, &id, &notice))
            .await?;
        metrics::counter!("berth_emails_sent_total", "notice" => self.notice.clone()).increment(1);
        tracing::info!(site.id = %site.id, notice = %self.notice, message_id = %row.message_id, "email sent");
        Ok(())
    }
}

impl SendEmail {
    /// The site's manage token, derived again from its nonce. A site without one (made before
    /// manage tokens) or whose token no longer derives (`server.manage_key` changed since) gets
    /// a new one, stored before the email goes out, so a retry sends the same.
    async fn manage_token(&self, ctx: &JobContext, site: &SiteRow) -> anyhow::Result<Secret> {
        if let (Some(nonce), Some(hash)) = (&site.manage_token_nonce, &site.manage_token_hash) {
            let token = ctx.manage_key.token(&site.id, nonce);
            if manage_token::matches(hash, token.expose()) {
                return Ok(token);
            }
        }
        let issued = ctx.manage_key.issue(&site.id);
        let (id, nonce, hash) = (site.id.clone(), issued.nonce.clone(), issued.hash.clone());
        ctx.db
            .write(move |c| sites::set_manage_token(c, &id, &nonce, &hash))
            .await?;
        tracing::info!(site.id = %site.id, "issued the site a new manage token for its email");
        Ok(issued.token)
    }
}
