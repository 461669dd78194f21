use std::fmt;

/// A customer's email address that berth's mailer can deliver to: `local@domain` in plain
/// ASCII, where the local part is an RFC 5322 dot-atom (letters, digits and
/// ``!#$%&'*+/=?^_`{|}~-``, dots between them) of at most 64 characters and the domain is a
/// dotted host name (letter-digit-hyphen labels, no bare hosts, no address literals), at most
/// 254 characters in all. Quoted local parts, comments and non-ASCII addresses are refused:
/// the readiness email could not be sent to them. Every accepted value also parses as a
/// `lettre` mailbox, which a property test keeps in step.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

/// RFC 5322 `atext`, besides ASCII letters and digits.
const ATEXT_SYMBOLS: &str = "!#$%&'*+/=?^_`{|}~-";

impl EmailAddress {
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        if value.len() > 254 {
            return Err("must be at most 254 characters".into());
        }
        if !value.is_ascii() {
            return Err("must be plain ASCII (no accented or other non-ASCII letters)".into());
        }
        let Some((local, domain)) = value.rsplit_once('@') else {
            return Err("is not a valid email address (no @)".into());
        };
        check_local(local)?;
        check_domain(domain)?;
        value
            .parse::<lettre::message::Mailbox>()
            .map_err(|_| "is not a valid email address".to_string())?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key the per-email rate limit counts under: lowercased, without a `+tag`, so that
    /// `Ann+1@Example.com` and `ann@example.com` share one budget.
    pub fn rate_limit_key(&self) -> String {
        let (local, domain) = self.0.rsplit_once('@').expect("parsed addresses have an @");
        let local = local.split_once('+').map_or(local, |(base, _)| base);
        format!("{local}@{domain}").to_ascii_lowercase()
    }
}

fn check_local(local: &str) -> Result<(), String> {
    if local.is_empty() {
        return Err("has nothing before the @".into());
    }
    if local.len() > 64 {
        return Err("must have at most 64 characters before the @".into());
    }
    let atext = |c: char| c.is_ascii_alphanumeric() || ATEXT_SYMBOLS.contains(c);
    if local
        .split('.')
        .any(|atom| atom.is_empty() || !atom.chars().all(atext))
    {
        return Err(
            "has characters or dots before the @ that mail servers refuse (quotes, spaces, \
             a leading, trailing or double dot)"
                .into(),
        );
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), String> {
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let top_level_ok = labels
        .last()
        .is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()));
    if labels.len() < 2 || !labels.iter().all(label_ok) || !top_level_ok {
        return Err("must have a domain name like example.com".into());
    }
    Ok(())
}

/// Customers' addresses are personal data: logs show only the domain.
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = self.0.rsplit_once('@').map_or("", |(_, d)| d);
        write!(f, "***@{domain}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for good in [
            "ann@example.com",
            "a.b+tag@mail.example.co.uk",
            "o'brien@example.ie",
            "x_y-z@sub-domain.example",
        ] {
            assert!(EmailAddress::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn rejects_what_cannot_receive_mail() {
        let bad = [
            ("", "empty"),
            ("ann", "no @"),
            ("ann@", "no domain"),
            ("@example.com", "no local part"),
            ("ann@localhost", "bare host"),
            ("ann@[127.0.0.1]", "address literal"),
            ("ann @example.com", "space"),
            ("ann@example.com\r\nBcc: x@y.z", "header injection"),
            (
                "\"a\\\"b\"@example.com",
                "quoted local part: the mailer cannot send to it",
            ),
            ("\"ann\"@example.com", "quoted local part"),
            ("a..b@example.com", "double dot"),
            (".ann@example.com", "leading dot"),
            ("ann.@example.com", "trailing dot"),
            ("ann(comment)@example.com", "comment"),
            ("jörg@example.com", "non-ASCII local part"),
            ("ann@exämple.com", "non-ASCII domain"),
            ("ann@-example.com", "label starts with a hyphen"),
            ("ann@example..com", "empty label"),
            ("ann@example.123", "numeric top-level domain"),
            ("ann@ex_ample.com", "underscore in the domain"),
        ];
        for (value, why) in bad {
            assert!(
                EmailAddress::parse(value).is_err(),
                "{value:?} must fail: {why}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(EmailAddress::parse(&long).is_err());
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(EmailAddress::parse(&long_local).is_err());
    }

    #[test]
    fn debug_hides_the_local_part() {
        let email = EmailAddress::parse("ann@example.com").unwrap();
        assert_eq!(format!("{email:?}"), "***@example.com");
    }

    #[test]
    fn the_rate_limit_key_ignores_case_and_tags() {
        let key = |v: &str| EmailAddress::parse(v).unwrap().rate_limit_key();
        assert_eq!(key("Ann+shop1@Example.COM"), "ann@example.com");
        assert_eq!(key("ann@example.com"), "ann@example.com");
        assert_ne!(key("ann@example.com"), key("bob@example.com"));
    }

    /// An address as a customer might type it: dot-atoms of `atext` and a dotted domain,
    /// with now and then a character the grammar does not allow.
    fn address() -> impl Strategy<Value = String> {
        let atom = "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,12}";
        let local = prop::collection::vec(atom, 1..4).prop_map(|atoms| atoms.join("."));
        let label = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?";
        let domain = (prop::collection::vec(label, 1..4), "[a-z]{2,6}")
            .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")));
        let noise = prop::sample::select(vec![
            "", "\"", " ", "..", "(", ")", ",", ";", ":", "<", ">", "[", "]", "\\", "é", "@",
        ]);
        (local, noise, domain).prop_map(|(local, noise, domain)| format!("{local}{noise}@{domain}"))
    }

    proptest! {
        /// Whatever signup accepts, the mailer can address: the readiness email never fails
        /// because of the address.
        #[test]
        fn every_accepted_address_can_be_mailed(value in address()) {
            if let Ok(email) = EmailAddress::parse(&value) {
                let to: lettre::message::Mailbox = email.as_str().parse().unwrap();
                let message = lettre::Message::builder()
                    .from("berth <noreply@example.com>".parse().unwrap())
                    .to(to)
                    .subject("Your site is ready")
                    .body(String::from("hello"));
                prop_assert!(message.is_ok(), "{value:?}: {message:?}");
            }
        }

        /// Every well-formed dot-atom address is accepted (the grammar is not stricter than
        /// it says).
        #[test]
        fn every_dot_atom_address_is_accepted(
            local in prop::collection::vec("[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,12}", 1..4),
            labels in prop::collection::vec("[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", 1..4),
            tld in "[a-z]{2,6}",
        ) {
            let value = format!("{}@{}.{tld}", local.join("."), labels.join("."));
            prop_assume!(value.len() <= 254 && local.join(".").len() <= 64);
            prop_assert!(EmailAddress::parse(&value).is_ok(), "{value:?}");
        }
    }
}
