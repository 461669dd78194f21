use std::fmt;

/// Checks the DNS-1035 label rule: lowercase letters, digits and `-`, starting with a letter,
/// ending with a letter or digit, `min..=63` characters.
fn dns_label(value: &str, min: usize) -> Result<(), String> {
    let len = value.len();
    if len < min || len > 63 {
        return Err(format!("must be {min} to 63 characters long (got {len})"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
    {
        return Err(format!(
            "may only contain lowercase letters, digits and '-' (found {c:?})"
        ));
    }
    if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase letter".into());
    }
    if value.ends_with('-') {
        return Err("must end with a letter or digit".into());
    }
    Ok(())
}

/// A site's name: a DNS-1035 label of 3 to 63 characters. Reserved names are a tenant setting
/// and checked by the signup pipeline, not here.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SiteName(String);

impl SiteName {
    pub fn parse(value: &str) -> Result<Self, String> {
        dns_label(value, 3)?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SiteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant's name: a DNS-1035 label of 1 to 63 characters (it appears in paths, labels and
/// namespace names).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(value: &str) -> Result<Self, String> {
        dns_label(value, 1)?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A plugin's name within its tenant: lowercase letters, digits and `-`, 1 to 63 characters,
/// starting with a letter (it appears in URLs, logs and metrics labels).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PluginName(String);

impl PluginName {
    pub fn parse(value: &str) -> Result<Self, String> {
        dns_label(value, 1)?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a tenant's base domain: dot-separated lowercase labels, at most 253 characters
/// together with the longest site name.
pub fn validate_base_domain(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() + 64 > 253 {
        return Err("is too long to hold a 63-character site name".into());
    }
    for label in value.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("{label:?} is not a valid lowercase DNS label"));
        }
    }
    Ok(())
}

/// `<site name>.<base domain>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hostname(String);

impl Hostname {
    /// The base domain is checked once, when the configuration loads.
    pub fn new(name: &SiteName, base_domain: &str) -> Self {
        Self(format!("{}.{}", name.as_str(), base_domain))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_names_follow_dns_1035() {
        for good in ["abc", "my-shop", "a1b2c3", &"a".repeat(63)] {
            assert!(SiteName::parse(good).is_ok(), "{good} should be accepted");
        }
        let bad = [
            ("ab", "too short"),
            (&"a".repeat(64) as &str, "too long"),
            ("1abc", "starts with a digit"),
            ("-abc", "starts with a dash"),
            ("abc-", "ends with a dash"),
            ("ABC", "uppercase"),
            ("my_shop", "underscore"),
            ("my.shop", "dot"),
            ("café", "non-ASCII"),
            ("", "empty"),
        ];
        for (value, why) in bad {
            assert!(
                SiteName::parse(value).is_err(),
                "{value:?} must fail: {why}"
            );
        }
    }

    #[test]
    fn tenant_names_may_be_short() {
        assert!(TenantName::parse("a").is_ok());
        assert!(TenantName::parse("acme-shops").is_ok());
        assert!(TenantName::parse("Acme").is_err());
    }

    #[test]
    fn base_domains_are_checked() {
        assert!(validate_base_domain("localhost").is_ok());
        assert!(validate_base_domain("sites.example.com").is_ok());
        assert!(validate_base_domain("").is_err());
        assert!(validate_base_domain("a..b").is_err());
        assert!(validate_base_domain("Example.com").is_err());
    }

    #[test]
    fn a_hostname_joins_name_and_base_domain() {
        let name = SiteName::parse("shop").unwrap();
        assert_eq!(
            Hostname::new(&name, "example.com").as_str(),
            "shop.example.com"
        );
    }
}
