//! A tenant's `dns` table: the provider that publishes a record per site, and that record.

use serde::{Deserialize, Serialize};

use crate::domain::RecordType;
use crate::domain::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsProviderKind {
    None,
    Cloudflare,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsSettings {
    pub provider: DnsProviderKind,
    /// Cloudflare API token with DNS edit permission on the zone.
    pub api_token: Secret,
    pub zone_id: String,
    /// Cloudflare API v4 base URL, without a trailing slash.
    pub api_base: String,
    pub record_type: RecordType,
    /// The address or name records point at; empty = what the runtime reports.
    pub target: String,
    /// Proxy the site through Cloudflare; the TTL is then automatic whatever `ttl` says.
    pub proxied: bool,
    /// Seconds; 1 means automatic, else 30 to 86400.
    pub ttl: u32,
    /// Limit for one API request (connect, send, read the answer), in seconds.
    pub timeout_secs: u64,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            provider: DnsProviderKind::None,
            api_token: Secret::default(),
            zone_id: String::new(),
            api_base: "https://api.cloudflare.com/client/v4".into(),
            record_type: RecordType::Cname,
            target: String::new(),
            proxied: true,
            ttl: 1,
            timeout_secs: 10,
        }
    }
}

impl DnsSettings {
    /// Checks the keys the provider needs; the error names the key under `dns`.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.target.is_empty() {
            self.record_type
                .check_target(&self.target)
                .map_err(|m| ("dns.target", m))?;
        }
        if self.ttl != 1 && !(30..=86_400).contains(&self.ttl) {
            return Err(("dns.ttl", "must be 1 (automatic) or 30 to 86400".into()));
        }
        if self.provider != DnsProviderKind::Cloudflare {
            return Ok(());
        }
        if self.api_token.is_empty() {
            return Err(("dns.api_token", "is needed for cloudflare".into()));
        }
        let token_ok = self
            .api_token
            .expose()
            .bytes()
            .all(|b| b.is_ascii_graphic());
        if !token_ok {
            // Never echo the token: say what is wrong with it, not what it is.
            return Err((
                "dns.api_token",
                "may only hold printable ASCII without spaces".into(),
            ));
        }
        let zone_ok = self
            .zone_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if self.zone_id.is_empty() || !zone_ok {
            return Err((
                "dns.zone_id",
                "is needed for cloudflare: the zone's id (letters and digits)".into(),
            ));
        }
        if !(self.api_base.starts_with("https://") || self.api_base.starts_with("http://")) {
            return Err(("dns.api_base", "must start with https:// or http://".into()));
        }
        if self.timeout_secs == 0 {
            return Err(("dns.timeout_secs", "must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::tests::load;

    #[test]
    fn a_cloudflare_tenant_is_configured_with_its_keys() {
        let settings = load(
            "[[tenants]]\nname = \"default\"\ndns = { provider = \"cloudflare\", zone_id = \"023e105f4ecef8ad9ca31a8372d0c353\", record_type = \"AAAA\", target = \"2001:db8::7\", proxied = false, ttl = 300, timeout_secs = 5 }\n",
            &[("BERTH_TENANTS__DEFAULT__DNS__API_TOKEN", "cf-s3cret")],
        )
        .unwrap();
        let dns = &settings.tenants[0].dns;
        assert_eq!(dns.provider, DnsProviderKind::Cloudflare);
        assert_eq!(dns.record_type, RecordType::Aaaa);
        assert_eq!(dns.api_token.expose(), "cf-s3cret");
        assert_eq!(dns.api_base, "https://api.cloudflare.com/client/v4");
        assert_eq!((dns.ttl, dns.timeout_secs), (300, 5));
        assert!(!settings.redacted_toml().contains("cf-s3cret"));
    }

    #[test]
    fn bad_dns_settings_are_reported_by_key() {
        let cloudflare = "provider = \"cloudflare\", api_token = \"t\", zone_id = \"z1\"";
        let cases = [
            (
                "record_type = \"MX\"",
                "tenants[0].dns.record_type:",
                "only A, AAAA, CNAME",
            ),
            (
                "record_type = \"A\", target = \"lb.example.net\"",
                "tenants[0].dns.target:",
                "A needs an address",
            ),
            (
                "target = \"203.0.113.7\"",
                "tenants[0].dns.target:",
                "a CNAME needs a hostname",
            ),
            ("ttl = 5", "tenants[0].dns.ttl:", "too short"),
            (
                "provider = \"cloudflare\", zone_id = \"z1\"",
                "tenants[0].dns.api_token:",
                "no token",
            ),
            (
                "provider = \"cloudflare\", api_token = \"t\"",
                "tenants[0].dns.zone_id:",
                "no zone",
            ),
            (
                "provider = \"cloudflare\", api_token = \"t\", zone_id = \"../x\"",
                "tenants[0].dns.zone_id:",
                "not an id",
            ),
            (
                "provider = \"cloudflare\", api_token = \"a b\", zone_id = \"z1\"",
                "tenants[0].dns.api_token:",
                "not a header value",
            ),
        ];
        for (dns, key, why) in cases {
            let err = load(
                &format!("[[tenants]]\nname = \"default\"\ndns = {{ {dns} }}\n"),
                &[],
            )
            .unwrap_err()
            .to_string();
            assert!(err.starts_with(key), "{why}: {err}");
            assert!(!err.contains("a b"), "the token is never echoed: {err}");
        }
        let timeout = format!(
            "[[tenants]]\nname = \"default\"\ndns = {{ {cloudflare}, timeout_secs = 0 }}\n"
        );
        let err = load(&timeout, &[]).unwrap_err().to_string();
        assert!(err.starts_with("tenants[0].dns.timeout_secs:"), "{err}");
    }
}
