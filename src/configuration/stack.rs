//! `workload = { kind = "stack", … }` (SPEC §8): a site made of several components, such as an
//! app and its database, and the placeholders their environment may use.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{VolumeSettings, WorkloadSettings};
use crate::domain::quantity::{Bytes, Cpu};

/// The longest component name: its StatefulSet's first volume claim, `data-<name>-0`, and its
/// pods' names must stay DNS labels.
pub const COMPONENT_NAME_MAX: usize = 40;

/// One component of a stack: a container behind a ClusterIP Service, a StatefulSet with a
/// volume claim when it has a `volume`, a Deployment otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ComponentSettings {
    /// A DNS label; the component's Service, workload and pods are named after it.
    pub name: String,
    pub image: String,
    /// The port it listens on, and its Service's port.
    pub port: u16,
    /// Its environment; values may hold placeholders (see [`Placeholder`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Components that must be ready before this one starts, and that it may reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// The non-root UID it runs as (default 10001).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// An HTTP path that answers 2xx when it is healthy; unset = TCP probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_path: Option<String>,
    /// Its CPU and memory, for each of its containers' requests and limits (default: the
    /// site's plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Its data, kept for the site's life: makes the component a StatefulSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeSettings>,
    /// Directories the image writes to besides `/tmp` and its volume (each an `emptyDir`; the
    /// root filesystem is read-only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writable: Vec<String>,
    /// In place of the image's entrypoint, and of its arguments (as Kubernetes' `command` and
    /// `args`); placeholders are not filled in here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Lets the component listen on a port below 1024 without root or capabilities (the
    /// namespaced sysctl `net.ipv4.ip_unprivileged_port_start=0`, which Pod Security
    /// `restricted` allows): for images such as WordPress's that listen on port 80.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bind_privileged_ports: bool,
}

impl ComponentSettings {
    /// A component with nothing but its name, image and port.
    pub fn new(name: &str, image: &str, port: u16) -> Self {
        Self {
            name: name.to_owned(),
            image: image.to_owned(),
            port,
            env: BTreeMap::new(),
            depends_on: Vec::new(),
            run_as_user: None,
            health_path: None,
            cpu: None,
            memory: None,
            volume: None,
            writable: Vec::new(),
            command: Vec::new(),
            args: Vec::new(),
            bind_privileged_ports: false,
        }
    }
}

/// A `${kind:argument}` in a component's environment value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `${secret:NAME}`: one of the stack's generated secrets, through a `secretKeyRef`.
    Secret(String),
    /// `${component:NAME}`: that component's address inside the site's namespace.
    Component(String),
    /// `${site:name}`.
    SiteName,
    /// `${site:hostname}`.
    SiteHostname,
}

/// A piece of an environment value: text as it is, or a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Placeholder(Placeholder),
}

/// Splits an environment value into text and placeholders. `$${` is a literal `${`.
pub fn parse_value(value: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        text.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(escaped) = after.strip_prefix("$${") {
            text.push_str("${");
            rest = escaped;
        } else if let Some(open) = after.strip_prefix("${") {
            let end = open
                .find('}')
                .ok_or_else(|| format!("{value:?}: a `${{` without its `}}`"))?;
            let placeholder = parse_placeholder(&open[..end])?;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Placeholder(placeholder));
            rest = &open[end + 1..];
        } else {
            text.push('$');
            rest = &after[1..];
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn parse_placeholder(inner: &str) -> Result<Placeholder, String> {
    match inner.split_once(':') {
        Some(("secret", name)) => Ok(Placeholder::Secret(name.to_owned())),
        Some(("component", name)) => Ok(Placeholder::Component(name.to_owned())),
        Some(("site", "name")) => Ok(Placeholder::SiteName),
        Some(("site", "hostname")) => Ok(Placeholder::SiteHostname),
        _ => Err(format!(
            "${{{inner}}} is not a placeholder berth knows: ${{secret:NAME}}, \
             ${{component:NAME}}, ${{site:name}} or ${{site:hostname}} (`$${{` for a literal `${{`)"
        )),
    }
}

/// The components in the order they start: each after everything it depends on, and otherwise
/// in the order the template lists them. Assumes a checked template (no unknown names, no
/// cycles).
pub fn start_order(components: &[ComponentSettings]) -> Vec<&ComponentSettings> {
    let mut started: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::with_capacity(components.len());
    while order.len() < components.len() {
        let before = order.len();
        for component in components {
            if !started.contains(component.name.as_str())
                && component
                    .depends_on
                    .iter()
                    .all(|d| started.contains(d.as_str()))
            {
                started.insert(&component.name);
                order.push(component);
            }
        }
        if order.len() == before {
            break; // a cycle: validation refuses these
        }
    }
    order
}

fn is_label(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Checks a stack template; errors are `(key under the tenant, message)`.
pub(super) fn validate_stack(workload: &WorkloadSettings) -> Result<(), (String, String)> {
    let fail = |key: String, message: String| Err((key, message));
    for (key, set) in [
        ("workload.image", !workload.image.is_empty()),
        ("workload.port", workload.port.is_some()),
        ("workload.env", !workload.env.is_empty()),
        ("workload.run_as_user", workload.run_as_user.is_some()),
        ("workload.health_path", workload.health_path.is_some()),
        ("workload.volume", workload.volume.is_some()),
    ] {
        if set {
            return fail(
                key.into(),
                "belongs to a component in a stack (workload.components)".into(),
            );
        }
    }
    let components = &workload.components;
    if components.is_empty() {
        return fail(
            "workload.components".into(),
            "a stack needs at least one component".into(),
        );
    }
    let mut secrets = BTreeSet::new();
    for name in &workload.secrets {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return fail(
                "workload.secrets".into(),
                format!("{name:?} must be 1 to 63 lowercase letters, digits and underscores"),
            );
        }
        if !secrets.insert(name.as_str()) {
            return fail(
                "workload.secrets".into(),
                format!("{name:?} is named twice"),
            );
        }
    }
    let mut names = BTreeSet::new();
    for (i, component) in components.iter().enumerate() {
        let key = |field: &str| format!("workload.components[{i}].{field}");
        if !is_label(&component.name, COMPONENT_NAME_MAX) {
            return fail(
                key("name"),
                format!(
                    "{:?} must be 1 to {COMPONENT_NAME_MAX} lowercase letters, digits and \
                     hyphens, starting with a letter",
                    component.name
                ),
            );
        }
        if !names.insert(component.name.as_str()) {
            return fail(
                key("name"),
                format!("{:?} is the name of two components", component.name),
            );
        }
    }
    for (i, component) in components.iter().enumerate() {
        let key = |field: &str| format!("workload.components[{i}].{field}");
        if component.image.trim().is_empty() {
            return fail(key("image"), "must not be empty".into());
        }
        if component.port == 0 {
            return fail(key("port"), "must be from 1 to 65535".into());
        }
        if component.run_as_user.is_some_and(|uid| uid < 1) {
            return fail(
                key("run_as_user"),
                "must be a non-root UID (1 or more)".into(),
            );
        }
        if component
            .health_path
            .as_deref()
            .is_some_and(|p| !p.starts_with('/'))
        {
            return fail(key("health_path"), "must start with /".into());
        }
        if let Some(cpu) = &component.cpu {
            Cpu::parse(cpu).map_err(|m| (key("cpu"), m))?;
        }
        if let Some(memory) = &component.memory {
            Bytes::parse(memory).map_err(|m| (key("memory"), m))?;
        }
        let mut paths = BTreeSet::from(["/tmp".to_owned()]);
        if let Some(volume) = &component.volume {
            Bytes::parse(&volume.size).map_err(|m| (key("volume.size"), m))?;
            check_path(&volume.mount_path, &mut paths).map_err(|m| (key("volume.mount"), m))?;
        }
        for path in &component.writable {
            check_path(path, &mut paths).map_err(|m| (key("writable"), m))?;
        }
        for dependency in &component.depends_on {
            if dependency == &component.name {
                return fail(
                    key("depends_on"),
                    "a component cannot depend on itself".into(),
                );
            }
            if !names.contains(dependency.as_str()) {
                return fail(
                    key("depends_on"),
                    format!("{dependency:?} is not a component of this stack"),
                );
            }
        }
        for (name, value) in &component.env {
            let env_key = key(&format!("env.{name}"));
            if !is_env_name(name) {
                return fail(
                    env_key,
                    "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)".into(),
                );
            }
            if name.starts_with("BERTH_") || name == "PORT" {
                return fail(env_key, "PORT and BERTH_* are set by berth".into());
            }
            for piece in parse_value(value).map_err(|m| (env_key.clone(), m))? {
                match piece {
                    Piece::Placeholder(Placeholder::Secret(secret))
                        if !secrets.contains(secret.as_str()) =>
                    {
                        return fail(
                            env_key,
                            format!("${{secret:{secret}}}: {secret:?} is not in workload.secrets"),
                        );
                    }
                    Piece::Placeholder(Placeholder::Component(other))
                        if !names.contains(other.as_str()) =>
                    {
                        return fail(
                            env_key,
                            format!("${{component:{other}}}: {other:?} is not a component of this stack"),
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    if start_order(components).len() < components.len() {
        return fail(
            "workload.components".into(),
            "their depends_on form a cycle: no component could start first".into(),
        );
    }
    if !names.contains(workload.expose.as_str()) {
        return fail(
            "workload.expose".into(),
            format!(
                "must name the component behind the Ingress (one of: {})",
                components
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    Ok(())
}

pub(super) fn is_env_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An absolute directory other than `/`, not already mounted.
fn check_path(path: &str, taken: &mut BTreeSet<String>) -> Result<(), String> {
    let trimmed = path.trim_end_matches('/');
    if !path.starts_with('/') || trimmed.is_empty() || path.contains("..") {
        return Err(format!("{path:?} must be an absolute path other than /"));
    }
    if !taken.insert(trimmed.to_owned()) {
        return Err(format!(
            "{path:?} is mounted twice (/tmp is always writable)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::tests::load;

    const STORE: &str = r#"
[[tenants]]
name = "shops"
runtime = "kubernetes"
[tenants.workload]
kind = "stack"
expose = "app"
secrets = ["db_password"]
[[tenants.workload.components]]
name = "app"
image = "shop:2"
port = 8080
depends_on = ["db"]
env = { DB_HOST = "${component:db}", DB_PASSWORD = "${secret:db_password}", SITE_URL = "https://${site:hostname}" }
[[tenants.workload.components]]
name = "db"
image = "mariadb:11"
port = 3306
volume = { size = "5Gi", mount = "/var/lib/mysql" }
env = { MARIADB_PASSWORD = "${secret:db_password}" }
"#;

    #[test]
    fn a_stack_template_loads_as_the_spec_writes_it() {
        let settings = load(STORE, &[]).unwrap();
        let workload = &settings.tenants[0].workload;
        assert_eq!(workload.components.len(), 2);
        let db = &workload.components[1];
        assert_eq!(db.volume.as_ref().unwrap().mount_path, "/var/lib/mysql");
        let order: Vec<&str> = start_order(&workload.components)
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(order, ["db", "app"]);
    }

    #[test]
    fn a_stack_template_that_cannot_run_is_refused_with_the_key_to_fix() {
        let key = "tenants[0].workload";
        for (from, to, at, why) in [
            (
                "expose = \"app\"",
                "expose = \"web\"",
                "expose",
                "no such component",
            ),
            (
                "depends_on = [\"db\"]",
                "depends_on = [\"cache\"]",
                "components[0].depends_on",
                "unknown dependency",
            ),
            (
                "depends_on = [\"db\"]",
                "depends_on = [\"app\"]",
                "components[0].depends_on",
                "itself",
            ),
            (
                "${secret:db_password}\", SITE",
                "${secret:api_key}\", SITE",
                "components[0].env.DB_PASSWORD",
                "a secret not declared",
            ),
            (
                "${component:db}",
                "${component:cache}",
                "components[0].env.DB_HOST",
                "an unknown component",
            ),
            (
                "${component:db}",
                "${db}",
                "components[0].env.DB_HOST",
                "not a placeholder",
            ),
            (
                "name = \"db\"",
                "name = \"app\"",
                "components[1].name",
                "two components named app",
            ),
            (
                "name = \"db\"",
                "name = \"DB\"",
                "components[1].name",
                "not a DNS label",
            ),
            ("port = 3306", "port = 0", "components[1].port", "port 0"),
            (
                "size = \"5Gi\"",
                "size = \"lots\"",
                "components[1].volume.size",
                "bad size",
            ),
            (
                "mount = \"/var/lib/mysql\"",
                "mount = \"/tmp\"",
                "components[1].volume.mount",
                "/tmp is scratch",
            ),
            (
                "image = \"mariadb:11\"",
                "image = \"\"",
                "components[1].image",
                "no image",
            ),
            (
                "secrets = [\"db_password\"]",
                "secrets = [\"db-password\"]",
                "secrets",
                "a key env names cannot hold",
            ),
            (
                "expose = \"app\"",
                "expose = \"app\"\nimage = \"x\"",
                "image",
                "an image outside a component",
            ),
        ] {
            assert!(STORE.contains(from), "{from}");
            let config = STORE.replacen(from, to, 1);
            let err = load(&config, &[]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{key}.{at}:")), "{why}: {err}");
        }
        let cycle = STORE.replacen(
            "volume = { size",
            "depends_on = [\"app\"]\nvolume = { size",
            1,
        );
        let err = load(&cycle, &[]).unwrap_err().to_string();
        assert!(err.contains("cycle"), "{err}");
        let local = STORE.replacen("runtime = \"kubernetes\"", "runtime = \"local\"", 1);
        let err = load(&local, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("tenants[0].workload.kind:") && err.contains("kubernetes"),
            "{err}"
        );
        let stray = STORE.replacen("kind = \"stack\"", "kind = \"container\"", 1);
        let err = load(&stray, &[]).unwrap_err().to_string();
        assert!(err.contains("workload"), "{err}");
    }

    #[test]
    fn values_split_into_text_and_placeholders() {
        use Placeholder::*;
        let text = |s: &str| Piece::Text(s.into());
        assert_eq!(
            parse_value("mysql://app:${secret:db_password}@${component:db}:3306/${site:name}")
                .unwrap(),
            vec![
                text("mysql://app:"),
                Piece::Placeholder(Secret("db_password".into())),
                text("@"),
                Piece::Placeholder(Component("db".into())),
                text(":3306/"),
                Piece::Placeholder(SiteName),
            ]
        );
        assert_eq!(
            parse_value("https://${site:hostname}").unwrap()[1],
            Piece::Placeholder(SiteHostname)
        );
        assert_eq!(
            parse_value("cost $5, $${x}").unwrap(),
            vec![text("cost $5, ${x}")]
        );
        assert_eq!(parse_value("").unwrap(), vec![]);
        assert!(parse_value("${secret:x").unwrap_err().contains("without"));
        assert!(parse_value("${env:HOME}")
            .unwrap_err()
            .contains("not a placeholder"));
        assert!(parse_value("${site:id}").is_err());
    }
}
