use std::fmt;

use rand::RngCore;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// 128 random bits as 26 lowercase Crockford base32 characters after `prefix`.
fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let mut value = u128::from_be_bytes(bytes);
    let mut out = String::with_capacity(prefix.len() + 26);
    out.push_str(prefix);
    let mut chars = [0u8; 26];
    for c in chars.iter_mut().rev() {
        *c = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    out.push_str(std::str::from_utf8(&chars).expect("ASCII"));
    out
}

fn is_id(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| ALPHABET.contains(&b)))
}

macro_rules! id_type {
    ($name:ident, $prefix:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(random_id($prefix))
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
    "An unguessable site id: `site_` and 128 random bits."
);
id_type!(JobId, "job_", "A job id: `job_` and 128 random bits.");
id_type!(
    EventId,
    "event_",
    "berth's id of a stored Stripe event: `event_` and 128 random bits (Stripe's own `evt_…` id is \
     unique only per Stripe account, and two tenants may share one)."
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
    fn ids_of_other_kinds_or_shapes_are_refused() {
        let job = JobId::generate();
        assert!(SiteId::parse(job.as_str()).is_err());
        assert!(SiteId::parse("site_").is_err());
        assert!(SiteId::parse("site_../../etc/passwd").is_err());
        assert!(SiteId::parse(&format!("{}u", SiteId::generate())).is_err());
    }
}
