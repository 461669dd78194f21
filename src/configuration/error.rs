//! Configuration errors: each names the key it is about and shows no value from the file or the
//! environment (any of them may be a secret in the wrong place).

use std::path::PathBuf;

/// A configuration problem, always naming the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    /// The same error with no value in it: serde's "invalid type: string \"…\"" keeps only
    /// the kind of value, "unknown variant `…`" drops the variant, and any given value of 8 or
    /// more characters left in a message becomes `[redacted]`.
    pub(super) fn without_values(self, values: &[String]) -> Self {
        match self {
            Self::Invalid { key, message } => {
                let mut message = without_serde_values(&message);
                let mut values: Vec<&String> = values.iter().filter(|v| v.len() >= 8).collect();
                values.sort_by_key(|v| std::cmp::Reverse(v.len()));
                for value in values {
                    message = message.replace(value.as_str(), "[redacted]");
                }
                Self::Invalid { key, message }
            }
            other => other,
        }
    }
}

/// serde's messages without the value they quote: `invalid type: string "…", expected X` →
/// `invalid type: string, expected X`; `unknown variant `…`, expected …` → `unknown variant,
/// expected …`.
fn without_serde_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.split_once(", expected ") {
                let kind = found.split(['`', '"']).next().unwrap_or_default().trim();
                return format!("{prefix}{kind}, expected {expected}");
            }
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        if let Some((_, expected)) = rest.split_once("`, ") {
            return format!("unknown variant, {expected}");
        }
    }
    message.to_owned()
}

/// A TOML syntax error by line and column, without the line itself (it may hold a secret).
pub(super) fn syntax_message(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', "; ");
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// Every string in a TOML tree.
pub(super) fn collect_strings(value: &toml::Value, into: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => into.push(s.clone()),
        toml::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, into)),
        toml::Value::Table(table) => table.values().for_each(|v| collect_strings(v, into)),
        _ => {}
    }
}

pub(super) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use crate::configuration::tests::load;

    #[test]
    fn no_configuration_error_shows_a_secret() {
        let secret = "whsec_9f8e7d6c5b4a39281706";
        let token = "tok_3b9d1f7a5c2e8046";
        /// What went wrong, the file, the environment.
        type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case> = vec![
            (
                "a secret as a string where a list belongs",
                String::new(),
                vec![("BERTH_TENANTS__DEFAULT__STRIPE__WEBHOOK_SECRETS", secret)],
            ),
            (
                "a secret in a number's place",
                String::new(),
                vec![("BERTH_TENANTS__DEFAULT__STRIPE__TOLERANCE_SECS", secret)],
            ),
            (
                "a malformed admin_token line",
                format!("[server]\nadmin_token = {token}\n"),
                vec![],
            ),
            (
                "an unterminated admin_token string",
                format!("[server]\nadmin_token = \"{token}\n"),
                vec![],
            ),
            (
                "a secret as an enum value",
                format!("[email]\ntransport = \"{token}\"\n"),
                vec![],
            ),
            (
                "a secret as a tenant name",
                format!("[[tenants]]\nname = \"{token}_X\"\n"),
                vec![],
            ),
            (
                "a secret as a list where a string belongs",
                format!("[server]\nadmin_token = [\"{token}\"]\n"),
                vec![],
            ),
            (
                "a secret in an origin",
                format!("[[tenants]]\nname = \"default\"\nallowed_origins = [\"{token}\"]\n"),
                vec![],
            ),
        ];
        for (what, file, env) in cases {
            let err = load(&file, &env).unwrap_err().to_string();
            assert!(
                !err.contains(secret) && !err.contains(token),
                "{what}: {err}"
            );
            assert!(
                err.contains(':'),
                "{what}: the error still says where: {err}"
            );
        }
        let err = load(
            "",
            &[("BERTH_TENANTS__DEFAULT__STRIPE__WEBHOOK_SECRETS", secret)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("tenants[0].stripe.webhook_secrets")
                && err.contains("invalid type: string, expected a sequence"),
            "{err}"
        );
        let err = load("[server]\nadmin_token = oops-no-quotes\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2, column"), "{err}");
    }
}
