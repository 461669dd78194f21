use std::fmt;

use rand::RngCore;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// `value` as 26 Crockford base32 characters (the top two of its 130 bits are zero).
fn encode(prefix: &str, mut value: u128) -> String {
    let mut chars = [0u8; 26];
    for c in chars.iter_mut().rev() {
        *c = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    let mut out = String::with_capacity(prefix.len() + 26);
    out.push_str(prefix);
    out.push_str(std::str::from_utf8(&chars).expect("ASCII"));
    out
}

/// 128 random bits after `prefix`: nobody can guess one.
fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    encode(prefix, u128::from_be_bytes(bytes))
}

/// The milliseconds since the Unix epoch (48 bits) and then 80 random bits after `prefix`, so
/// that ids made later sort later (the layout of a ULID). A new row's id then lands at the end
/// of its primary-key index, on the page the previous one dirtied, rather than on a random page
/// of its own in every commit. For ids only operators see, which need be unique, not secret.
fn sortable_id(prefix: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        & ((1 << 48) - 1);
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes[6..]);
    encode(prefix, (millis << 80) | u128::from_be_bytes(bytes))
}

fn is_id(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| ALPHABET.contains(&b)))
}

macro_rules! id_type {
    ($name:ident, $prefix:literal, $make:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self($make($prefix))
            }

            pub fn parse(value: &str) -> Result<Self, String> {
                if is_id(value, $prefix) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(format!("not a {} id", $prefix.trim_end_matches('_')))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    SiteId,
    "site_",
    random_id,
    "An unguessable site id: `site_` and 128 random bits."
);
id_type!(
    JobId,
    "job_",
    sortable_id,
    "A job id: `job_`, the time it was made and 80 random bits."
);
id_type!(
    EventId,
    "event_",
    sortable_id,
    "berth's id of a stored Stripe event: `event_`, the time it arrived and 80 random bits \
     (Stripe's own `evt_…` id is unique only per Stripe account, and two tenants may share one)."
);
id_type!(
    RolloutId,
    "rollout_",
    sortable_id,
    "A fleet rollout's id: `rollout_`, the time it started and 80 random bits."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = SiteId::generate();
        let b = SiteId::generate();
        assert_ne!(a, b);
        assert_eq!(SiteId::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.as_str().len(), 5 + 26);
    }

    #[test]
    fn job_and_event_ids_sort_by_creation_and_still_differ() {
        let first = JobId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later: Vec<JobId> = (0..100).map(|_| JobId::generate()).collect();
        assert!(later.iter().all(|id| id.as_str() > first.as_str()));
        let distinct: std::collections::HashSet<_> = later.iter().collect();
        assert_eq!(distinct.len(), later.len());
        let event = EventId::generate();
        assert_eq!(EventId::parse(event.as_str()).unwrap(), event);
        assert_eq!(event.as_str().len(), "event_".len() + 26);
    }

    #[test]
    fn ids_of_other_kinds_or_shapes_are_refused() {
        let job = JobId::generate();
        assert!(SiteId::parse(job.as_str()).is_err());
        assert!(SiteId::parse("site_").is_err());
        assert!(SiteId::parse("site_../../etc/passwd").is_err());
        assert!(SiteId::parse(&format!("{}u", SiteId::generate())).is_err());
    }
}
