//! Admin tokens, the global `server.admin_token` and each tenant's: long enough, and each its own.

use super::error::{invalid, ConfigError};
use super::Settings;
use crate::domain::Secret;

/// Admin tokens are at least this long, so that guessing one is hopeless.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

impl Settings {
    /// Every admin token set is long enough, and no two are the same (a tenant token equal to
    /// the global one, or another tenant's, would give one caller two scopes).
    pub(super) fn validate_admin_tokens(&self) -> Result<(), ConfigError> {
        let tokens = std::iter::once(("server.admin_token".to_owned(), &self.server.admin_token))
            .chain(
                self.tenants
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (format!("tenants[{i}].admin_token"), &t.admin_token)),
            )
            .filter(|(_, token)| !token.is_empty());
        let mut seen: Vec<(String, &Secret)> = Vec::new();
        for (key, token) in tokens {
            if token.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS {
                return Err(invalid(
                    key,
                    format!(
                        "must be at least {MIN_ADMIN_TOKEN_CHARS} characters (generate one with: openssl rand -hex 32)"
                    ),
                ));
            }
            if let Some((other, _)) = seen.iter().find(|(_, t)| t.expose() == token.expose()) {
                return Err(invalid(
                    key,
                    format!("must differ from {other}; every admin token gets its own value"),
                ));
            }
            seen.push((key, token));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::configuration::tests::load;

    #[test]
    fn short_or_shared_admin_tokens_are_refused_at_start() {
        let global = "g-0123456789abcdef";
        let cases = [
            (
                "[server]\nadmin_token = \"short\"\n".to_owned(),
                "server.admin_token: must be at least 16 characters",
            ),
            (
                "[[tenants]]\nname = \"default\"\nadmin_token = \"fifteen-chars-x\"\n".to_owned(),
                "tenants[0].admin_token: must be at least 16 characters",
            ),
            (
                format!("[server]\nadmin_token = \"{global}\"\n[[tenants]]\nname = \"default\"\nadmin_token = \"{global}\"\n"),
                "tenants[0].admin_token: must differ from server.admin_token",
            ),
            (
                format!("[[tenants]]\nname = \"default\"\nadmin_token = \"{global}\"\n[[tenants]]\nname = \"acme\"\nbase_domain = \"acme.test\"\nadmin_token = \"{global}\"\n"),
                "tenants[1].admin_token: must differ from tenants[0].admin_token",
            ),
        ];
        for (file, expected) in cases {
            let err = load(&file, &[]).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{file}: {err}");
            assert!(!err.contains(global), "{err}");
        }
        let fine = format!("[server]\nadmin_token = \"{global}\"\n");
        assert!(load(&fine, &[]).is_ok());
    }
}
