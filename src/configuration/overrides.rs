//! `BERTH_<SECTION>__<KEY>` environment overrides, applied to the TOML tree before it is read.

use super::error::{invalid, ConfigError};
use super::{Settings, TenantSettings};

pub(super) const ENV_PREFIX: &str = "BERTH_";

/// Applies `SECTION__KEY[__SUB…]=value` to the TOML tree. Values keep the type of the default at
/// that key when it is a string (so tokens made of digits stay strings); otherwise they are read
/// as TOML (`true`, `12`, `["a"]`, `{ per_minute = 5, burst = 2 }`) and fall back to a string.
pub(super) fn apply_override(
    tree: &mut toml::Table,
    key: &str,
    raw: String,
) -> Result<(), ConfigError> {
    let parts: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
    let dotted = format!("{ENV_PREFIX}{key}");
    if parts.iter().any(String::is_empty) {
        return Err(invalid(dotted, "empty key segment in environment variable"));
    }
    let defaults = toml::Value::try_from(Settings::default()).expect("defaults serialize");
    let tenant_defaults =
        toml::Value::try_from(TenantSettings::default()).expect("defaults serialize");
    let (table, path, default_tree) = if parts[0] == "tenants" {
        if parts.len() < 3 {
            return Err(invalid(dotted, "use BERTH_TENANTS__<TENANT>__<KEY>"));
        }
        let wanted = parts[1].replace('_', "-");
        let tenants = tree
            .entry("tenants")
            .or_insert_with(|| toml::Value::Array(vec![]))
            .as_array_mut()
            .ok_or_else(|| invalid("tenants", "must be an array of tables"))?;
        if tenants.is_empty() && wanted == "default" {
            let mut t = toml::Table::new();
            t.insert("name".into(), "default".into());
            tenants.push(toml::Value::Table(t));
        }
        let tenant = tenants
            .iter_mut()
            .filter_map(toml::Value::as_table_mut)
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(wanted.as_str()))
            .ok_or_else(|| invalid(dotted.clone(), format!("no tenant named {wanted}")))?;
        (tenant, &parts[2..], tenant_defaults)
    } else {
        (tree, &parts[..], defaults)
    };
    let mut current = table;
    let mut default_at = Some(&default_tree);
    for segment in &path[..path.len() - 1] {
        default_at = default_at.and_then(|d| d.get(segment));
        current = current
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| invalid(dotted.clone(), format!("{segment} is not a table")))?;
    }
    let last = &path[path.len() - 1];
    let default_value = default_at.and_then(|d| d.get(last));
    let value = match default_value {
        Some(toml::Value::String(_)) => toml::Value::String(raw),
        _ => format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw)),
    };
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::configuration::{tests::load, Rate};

    #[test]
    fn environment_overrides_the_file() {
        let settings = load(
            "[server]\nadmin_token = \"from-file\"\n",
            &[
                ("BERTH_SERVER__ADMIN_TOKEN", "1234567890123456"),
                (
                    "BERTH_RATE_LIMITS__SIGNUP_PER_IP",
                    "{ per_second = 3, burst = 4 }",
                ),
                ("BERTH_JOBS__CONCURRENCY", "2"),
                ("BERTH_CONFIG", "ignored: not a section key"),
            ],
        )
        .unwrap();
        assert_eq!(settings.server.admin_token.expose(), "1234567890123456");
        assert_eq!(settings.rate_limits.signup_per_ip, Rate::per_second(3, 4));
        assert_eq!(settings.jobs.concurrency, 2);
    }

    #[test]
    fn environment_addresses_tenants_by_name() {
        let settings = load(
            "[[tenants]]\nname = \"default\"\n[[tenants]]\nname = \"acme-shops\"\nbase_domain = \"shops.example\"\n",
            &[("BERTH_TENANTS__ACME_SHOPS__ADMIN_TOKEN", "t0k3n-of-acme-shops")],
        )
        .unwrap();
        assert_eq!(
            settings.tenants[1].admin_token.expose(),
            "t0k3n-of-acme-shops"
        );
        assert!(settings.tenants[0].admin_token.is_empty());

        let err = load("", &[("BERTH_TENANTS__NOPE__ADMIN_TOKEN", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no tenant named nope"), "{err}");
    }

    #[test]
    fn an_unknown_environment_key_is_reported_by_name() {
        let err = load("", &[("BERTH_SERVER__LISTN", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("server.listn: unknown key"), "{err}");
    }
}
