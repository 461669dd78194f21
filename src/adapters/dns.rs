//! DNS: point each site's hostname at its workload. Provider `none` (the default) only logs;
//! `cloudflare` manages records it marks as its own and never touches any other.

pub mod cloudflare;

use async_trait::async_trait;

pub use crate::domain::RecordType;

/// A record berth wants to exist (or to remove) for one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    pub hostname: String,
    /// An IP address (A/AAAA) or a hostname (CNAME).
    pub target: String,
    pub tenant: String,
    pub site_id: String,
}

/// What the ownership marker starts with; anything else is not berth's.
const MARKER_PREFIX: &str = "berth:";

/// The longest comment Cloudflare accepts on a free zone (paid zones allow 500).
pub const MARKER_MAX_CHARS: usize = 100;

const SITE_ID_PREFIX: &str = "site_";

impl DnsRecord {
    /// The ownership marker stored on records berth creates: `berth:<tenant>/<site-id>`.
    ///
    /// It always fits in [`MARKER_MAX_CHARS`]: tenant names are DNS labels (at most 63
    /// characters, no `/`) and site ids are `site_` plus 26 characters, so only a tenant name of
    /// 63 characters makes the marker too long; then the constant `site_` prefix is left out
    /// (`berth:<tenant>/<26 characters>`, 96 characters). Both forms name the same site, and
    /// [`DnsRecord::is_marked_by_me`] accepts either, so the marker stays unambiguous.
    pub fn owner_tag(&self) -> String {
        let full = format!("{MARKER_PREFIX}{}/{}", self.tenant, self.site_id);
        if full.len() <= MARKER_MAX_CHARS {
            return full;
        }
        let short_id = self
            .site_id
            .strip_prefix(SITE_ID_PREFIX)
            .unwrap_or(&self.site_id);
        format!("{MARKER_PREFIX}{}/{short_id}", self.tenant)
    }

    /// True when `comment` is the marker of this very site (in either form).
    pub fn is_marked_by_me(&self, comment: Option<&str>) -> bool {
        comment
            .and_then(Owner::parse)
            .is_some_and(|owner| owner.tenant == self.tenant && owner.site_id == self.site_id)
    }
}

/// The tenant and site named by an ownership marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub tenant: String,
    /// Always with its `site_` prefix, whichever form the marker had.
    pub site_id: String,
}

impl Owner {
    /// Reads a marker written by [`DnsRecord::owner_tag`]; `None` for any other comment.
    pub fn parse(comment: &str) -> Option<Self> {
        let rest = comment.trim().strip_prefix(MARKER_PREFIX)?;
        let (tenant, id) = rest.split_once('/')?;
        if tenant.is_empty() || id.is_empty() || id.contains('/') {
            return None;
        }
        let site_id = if id.starts_with(SITE_ID_PREFIX) {
            id.to_owned()
        } else {
            format!("{SITE_ID_PREFIX}{id}")
        };
        Some(Self {
            tenant: tenant.to_owned(),
            site_id,
        })
    }
}

#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// Creates the record, or corrects one berth owns; never touches a record berth does not own.
    async fn upsert(&self, record: &DnsRecord) -> anyhow::Result<()>;

    /// Deletes the record if berth owns it; succeeds when it is already gone.
    async fn delete(&self, record: &DnsRecord) -> anyhow::Result<()>;
}

/// Provider `none`: says what it would do.
pub struct NoDns;

#[async_trait]
impl DnsProvider for NoDns {
    async fn upsert(&self, record: &DnsRecord) -> anyhow::Result<()> {
        tracing::info!(
            dns.name = %record.hostname,
            dns.target = %record.target,
            dns.owner = %record.owner_tag(),
            "DNS provider is none: would upsert this record"
        );
        Ok(())
    }

    async fn delete(&self, record: &DnsRecord) -> anyhow::Result<()> {
        tracing::info!(dns.name = %record.hostname, "DNS provider is none: would delete this record");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tenant: &str) -> DnsRecord {
        DnsRecord {
            hostname: "shop.example.com".into(),
            target: "203.0.113.7".into(),
            tenant: tenant.into(),
            site_id: "site_0123456789abcdefghjkmnpqrs".into(),
        }
    }

    #[test]
    fn the_marker_names_tenant_and_site() {
        let r = record("acme");
        assert_eq!(r.owner_tag(), "berth:acme/site_0123456789abcdefghjkmnpqrs");
        assert!(r.is_marked_by_me(Some(&r.owner_tag())));
    }

    #[test]
    fn the_marker_fits_a_free_zone_comment_for_the_longest_tenant_name() {
        for len in [1, 62, 63] {
            let r = record(&"t".repeat(len));
            let tag = r.owner_tag();
            assert!(tag.len() <= MARKER_MAX_CHARS, "{len}: {tag}");
            assert!(r.is_marked_by_me(Some(&tag)), "{tag}");
            assert_eq!(
                Owner::parse(&tag).unwrap().site_id,
                r.site_id,
                "both forms name the same site"
            );
        }
        assert!(!record(&"t".repeat(63)).owner_tag().contains("site_"));
    }

    #[test]
    fn other_comments_are_not_this_sites_marker() {
        let r = record("acme");
        let cases: &[(Option<&str>, &str)] = &[
            (None, "no comment at all"),
            (Some(""), "an empty comment"),
            (Some("managed by hand"), "a human's note"),
            (
                Some("berth:acme/site_zzzzzzzzzzzzzzzzzzzzzzzzzz"),
                "another site of the tenant",
            ),
            (
                Some("berth:acme2/site_0123456789abcdefghjkmnpqrs"),
                "another tenant",
            ),
            (
                Some("berth:ac/me/site_0123456789abcdefghjkmnpqrs"),
                "a slash cannot be in a tenant name",
            ),
            (
                Some("xberth:acme/site_0123456789abcdefghjkmnpqrs"),
                "the prefix must start the comment",
            ),
        ];
        for (comment, why) in cases {
            assert!(!r.is_marked_by_me(*comment), "{why}: {comment:?}");
        }
    }
}
