//! Deterministic names and labels of a site's Kubernetes objects.
//!
//! Every site gets its own namespace, so the objects inside it have fixed names; only the
//! namespace name depends on the site. It is a pure function of tenant and site name, so
//! `berth render` and the runtime agree without a database, and it always fits the 63-character
//! limit of a DNS-1123 label.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// The server-side apply field manager of every object berth writes.
pub const FIELD_MANAGER: &str = "berth";
/// The field manager of the values of a stack's generated secrets (a merge patch).
pub const SECRETS_FIELD_MANAGER: &str = "berth-secrets";

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "berth";
pub const TENANT_LABEL: &str = "berth.dev/tenant";
pub const SITE_LABEL: &str = "berth.dev/site";
/// The pod-selector label (with [`SITE_LABEL`]); never changes, because a Deployment's selector
/// is immutable.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const NAME: &str = "berth-site";

/// Deployment, Service, Ingress, ServiceAccount, ResourceQuota and LimitRange of a site.
pub const SITE: &str = "site";
/// What the ConfigMaps with a static site's HTML and nginx configuration are named after:
/// `site-content-<hash>` (see [`content`]).
pub const CONTENT: &str = "site-content";
/// The label of a content ConfigMap: the hash its name ends in, so that the ones a switch left
/// behind are found (and deleted) by label, never by reading them back.
pub const CONTENT_LABEL: &str = "berth.dev/content";
/// The Secret with a container workload's environment.
pub const ENV: &str = "site-env";
/// A container workload's PersistentVolumeClaim.
pub const DATA: &str = "site-data";
/// The Secret with a stack's generated secrets.
pub const SECRETS: &str = "site-secrets";
/// The label that tells a stack's components apart (with the site's selector).
pub const COMPONENT_LABEL: &str = "berth.dev/component";
/// The label cert-manager gives its ACME HTTP-01 solver pods.
pub const ACME_SOLVER_LABEL: &str = "acme.cert-manager.io/http01-solver";
pub const ALLOW_ACME_SOLVER: &str = "allow-acme-solver";
/// The Secret cert-manager writes the site's certificate into.
pub const TLS: &str = "site-tls";
pub const DEFAULT_DENY: &str = "default-deny";
pub const ALLOW_DNS: &str = "allow-dns-egress";
pub const ALLOW_INGRESS: &str = "allow-from-ingress-controller";

/// The ConfigMap of one version of a static site's content: `site-content-` and the first 20
/// hex characters of `hash` (the digest of its data). A new version is a new, immutable
/// ConfigMap, and the Deployment's rollout moves the pods from one to the next.
pub fn content(hash: &str) -> String {
    format!("{CONTENT}-{}", content_label(hash))
}

/// The value of [`CONTENT_LABEL`] for content whose digest is `hash`.
pub fn content_label(hash: &str) -> &str {
    &hash[..HASH_CHARS.min(hash.len())]
}

const PREFIX: &str = "berth-";
const MAX_LABEL: usize = 63;
const TENANT_CHARS: usize = 16;
/// 80 bits of SHA-256: finding two sites that share a namespace takes about 2^40 tries, and
/// finding a name that shares a given site's namespace about 2^80.
const HASH_CHARS: usize = 20;

/// The namespace of a site: `berth-<tenant>-<site>-<hash>`, where tenant and site are
/// truncated so the whole is at most 63 characters, and the hash (20 hex characters of SHA-256
/// over `tenant/site`) keeps names distinct when truncation (or a `-` in a name) would make
/// two sites look alike. Inputs are DNS labels (tenant and site names are parsed as such), so
/// the result is a valid namespace name. The hash makes a collision infeasible, not impossible:
/// the runtime also refuses to touch a namespace whose labels name another site (see
/// `apply::check_owner`).
pub fn namespace(tenant: &str, site: &str) -> String {
    let digest = Sha256::digest(format!("{tenant}/{site}").as_bytes());
    let hash: String = digest
        .iter()
        .take(HASH_CHARS / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    let tenant = truncate(tenant, TENANT_CHARS);
    let room = MAX_LABEL - PREFIX.len() - tenant.len() - HASH_CHARS - 2;
    let site = truncate(site, room);
    format!("{PREFIX}{tenant}-{site}-{hash}")
}

/// At most `max` characters, without a trailing `-` (names are ASCII).
fn truncate(value: &str, max: usize) -> &str {
    value[..value.len().min(max)].trim_end_matches('-')
}

/// The labels on every object of a site.
pub fn labels(tenant: &str, site: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        (TENANT_LABEL.to_owned(), tenant.to_owned()),
        (SITE_LABEL.to_owned(), site.to_owned()),
    ])
}

/// The labels that select a site's pods.
pub fn selector(site: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_owned(), NAME.to_owned()),
        (SITE_LABEL.to_owned(), site.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SiteName, TenantName};

    fn is_dns1123_label(value: &str) -> bool {
        !value.is_empty()
            && value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !value.starts_with('-')
            && !value.ends_with('-')
    }

    #[test]
    fn short_names_stay_readable() {
        let ns = namespace("default", "my-shop");
        assert!(ns.starts_with("berth-default-my-shop-"), "{ns}");
        assert_eq!(ns.len(), "berth-default-my-shop-".len() + HASH_CHARS);
        assert!(is_dns1123_label(&ns));
    }

    #[test]
    fn the_longest_tenant_and_site_names_still_fit_in_63_characters() {
        let tenant = TenantName::parse(&format!("t{}", "x".repeat(62))).unwrap();
        let site = SiteName::parse(&format!("s{}", "y".repeat(62))).unwrap();
        let ns = namespace(tenant.as_str(), site.as_str());
        assert_eq!(ns.len(), 63, "{ns}");
        assert!(is_dns1123_label(&ns), "{ns}");
    }

    #[test]
    fn names_are_deterministic_and_distinct() {
        assert_eq!(namespace("acme", "shop"), namespace("acme", "shop"));
        // Same readable part, different sites: the hash tells them apart.
        assert_ne!(namespace("a-b", "cde"), namespace("a", "b-cde"));
        let long = "x".repeat(40);
        assert_ne!(
            namespace("acme", &format!("{long}-one")),
            namespace("acme", &format!("{long}-two"))
        );
        assert_ne!(namespace("acme", "shop"), namespace("other", "shop"));
    }

    #[test]
    fn long_names_that_differ_only_past_the_cut_never_share_a_namespace() {
        // With 32 bits of hash, a few hundred thousand such names held a collision; with 80
        // bits, none is expected before about a trillion.
        let tenant = "default";
        let prefix = format!("s{}", "x".repeat(40));
        let mut seen = std::collections::HashSet::new();
        for i in 0..300_000u32 {
            let ns = namespace(tenant, &format!("{prefix}{i}"));
            assert!(seen.insert(ns.clone()), "{ns} is shared");
        }
    }

    #[test]
    fn the_hash_carries_at_least_64_bits() {
        let ns = namespace("t", &format!("s{}", "y".repeat(62)));
        let hash = ns.rsplit('-').next().unwrap();
        assert!(hash.len() * 4 >= 64, "{ns}");
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{ns}");
    }

    #[test]
    fn truncation_never_leaves_a_double_dash() {
        // The tenant cut falls right after a '-'.
        let ns = namespace("abcdefghijklmno-pqrs", "shop");
        assert!(ns.starts_with("berth-abcdefghijklmno-shop-"), "{ns}");
        assert!(is_dns1123_label(&ns));
    }
}
