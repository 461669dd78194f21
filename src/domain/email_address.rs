use std::fmt;

/// A customer's email address: `local@domain` as lettre parses it, at most 254 characters, with a
/// dotted domain name (no bare hosts, no address literals).
#[derive(Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        if value.len() > 254 {
            return Err("must be at most 254 characters".into());
        }
        let address: lettre::Address = value
            .parse()
            .map_err(|_| "is not a valid email address".to_string())?;
        let domain = address.domain();
        if domain.starts_with('[') || !domain.contains('.') || domain.ends_with('.') {
            return Err("must have a domain name like example.com".into());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
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

    #[test]
    fn accepts_ordinary_addresses() {
        for good in ["ann@example.com", "a.b+tag@mail.example.co.uk"] {
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
        ];
        for (value, why) in bad {
            assert!(
                EmailAddress::parse(value).is_err(),
                "{value:?} must fail: {why}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(EmailAddress::parse(&long).is_err());
    }

    #[test]
    fn debug_hides_the_local_part() {
        let email = EmailAddress::parse("ann@example.com").unwrap();
        assert_eq!(format!("{email:?}"), "***@example.com");
    }
}
