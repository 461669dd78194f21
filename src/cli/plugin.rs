//! `berth plugin check` and `berth plugin run`: the plugin host without a server, for plugin
//! authors and operators vetting a module before uploading it. `run` goes through the same
//! steps as the admin test endpoint and a real signup ([`crate::services::signup::trial`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::adapters::plugin_host::{LogLine, Metering, PluginHost};
use crate::configuration::Settings;
use crate::domain::Hook;
use crate::services::signup::{Trial, TrialRefusal};
use crate::services::tenants::Tenants;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Check a module against ABI v1 and the configured limits.
    Check {
        /// The module (.wasm).
        file: PathBuf,
    },
    /// Run a module once on a value, as a signup would (built-in checks, settings validation,
    /// one call under the configured limits), and print verdict, reasons, time, fuel and logs.
    /// Exit status: 0 allowed, 1 denied (by the plugin or by berth's built-in checks), 2 the
    /// command could not run (bad arguments, unreadable file, module refused), 3 the call
    /// failed (timeout, oom, crash, abi_error, bad_output), 4 the plugin refused the settings.
    Run {
        file: PathBuf,
        /// `name` or `html`.
        #[arg(long)]
        hook: String,
        /// The value under test, or `@FILE` to read it from a file.
        #[arg(long)]
        value: String,
        /// The binding's settings as a JSON object (default `{}`).
        #[arg(long, default_value = "{}")]
        settings: String,
        /// The tenant whose built-in rules (reserved names, HTML limit) apply.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The plugin's name in the context (default: the file name without `.wasm`).
        #[arg(long)]
        plugin: Option<String>,
        /// The submission's name, for the html hook (the name hook tests the value).
        #[arg(long, default_value = "example")]
        name: String,
        /// The submission's email.
        #[arg(long, default_value = "customer@example.com")]
        email: String,
        /// The submission's plan.
        #[arg(long)]
        plan: Option<String>,
    },
}

/// `plugin run`: the plugin allowed the value.
const ALLOWED: u8 = 0;
/// `plugin run`: the plugin, or berth's built-in checks, denied it; `plugin check`: the module
/// does not conform.
const DENIED: u8 = 1;
/// The command could not run: bad arguments, an unreadable file, a refused module (`run`).
const CANNOT_RUN: u8 = 2;
/// `plugin run`: the call failed (timeout, oom, crash, abi_error, bad_output).
const CALL_FAILED: u8 = 3;
/// `plugin run`: the plugin refused the settings, or could not check them.
const SETTINGS_REFUSED: u8 = 4;

pub fn run(settings: &Settings, command: &PluginCommand) -> ExitCode {
    match execute(settings, command) {
        Ok(code) => ExitCode::from(code),
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

fn cannot_run(message: String) -> (u8, String) {
    (CANNOT_RUN, message)
}

fn execute(settings: &Settings, command: &PluginCommand) -> Result<u8, (u8, String)> {
    let file = match command {
        PluginCommand::Check { file } | PluginCommand::Run { file, .. } => file,
    };
    let bytes = std::fs::read(file)
        .map_err(|e| cannot_run(format!("cannot read {}: {e}", file.display())))?;
    let host = PluginHost::new(&settings.plugins, Metering::Fuel)
        .map_err(|e| cannot_run(format!("cannot start the plugin host: {e:#}")))?;
    match command {
        PluginCommand::Check { .. } => Ok(check(&host, settings, file, &bytes)),
        PluginCommand::Run {
            hook,
            value,
            settings: plugin_settings,
            tenant,
            plugin: plugin_name,
            name,
            email,
            plan,
            ..
        } => {
            let hook = Hook::parse(hook).map_err(cannot_run)?;
            let value = match value.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| cannot_run(format!("cannot read {path}: {e}")))?,
                None => value.clone(),
            };
            let plugin_settings: serde_json::Value = serde_json::from_str(plugin_settings)
                .map_err(|e| cannot_run(format!("--settings is not JSON: {e}")))?;
            if !plugin_settings.is_object() {
                return Err(cannot_run("--settings must be a JSON object".into()));
            }
            let tenants = Tenants::build(settings)
                .map_err(|e| cannot_run(format!("cannot set up the tenants: {e:#}")))?;
            let tenant = tenants.find(tenant).ok_or_else(|| {
                let known: Vec<&str> = tenants.names().collect();
                cannot_run(format!(
                    "no tenant named {tenant:?} in the configuration (tenants: {})",
                    known.join(", ")
                ))
            })?;
            let plugin = host
                .load(&bytes)
                .map_err(|reason| cannot_run(format!("{} is refused: {reason}", file.display())))?;
            let plugin_name = plugin_name.clone().unwrap_or_else(|| {
                file.file_stem()
                    .map(|stem| stem.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "plugin".into())
            });
            let trial = Trial {
                hook,
                value,
                settings: plugin_settings,
                name: name.clone(),
                email: email.clone(),
                plan: plan.clone(),
            };
            let result =
                match crate::services::signup::trial(&host, &tenant, &plugin_name, &plugin, &trial)
                {
                    Ok(result) => result,
                    Err(TrialRefusal::Fields(fields)) => {
                        println!(
                            "verdict: deny (berth's built-in checks; the plugin was not called)"
                        );
                        for field in fields {
                            println!("  - {} ({}): {}", field.field, field.code, field.message);
                        }
                        return Ok(DENIED);
                    }
                    Err(TrialRefusal::Settings(reason)) => {
                        return Err((
                            SETTINGS_REFUSED,
                            format!("the plugin refuses these settings: {reason}"),
                        ))
                    }
                };
            match &result.error_class {
                None => println!("verdict: {}", result.verdict),
                Some(class) => println!("verdict: error ({class})"),
            }
            for reason in &result.reasons {
                println!("  - {}: {}", reason.code, reason.message);
            }
            if let Some(error) = &result.error {
                println!("  {error}");
            }
            if let Some(rewrite) = &result.rewrite {
                println!("rewrite: {} bytes", rewrite.len());
            }
            println!("time: {} µs", result.duration_us);
            match result.fuel {
                Some(fuel) => println!("fuel used: {fuel}"),
                None => println!("fuel used: unknown (the call trapped)"),
            }
            print_logs("log", &result.logs);
            print_logs("settings log", &result.settings_logs);
            Ok(
                match (result.error_class.is_some(), result.verdict.as_str()) {
                    (true, _) => CALL_FAILED,
                    (false, "deny") => DENIED,
                    _ => ALLOWED,
                },
            )
        }
    }
}

fn print_logs(what: &str, logs: &[LogLine]) {
    for line in logs {
        println!("{what} {}: {}", line.level, line.message);
    }
}

/// `plugin check`: every item of the conformance list, each with its outcome.
fn check(host: &PluginHost, settings: &Settings, file: &std::path::Path, bytes: &[u8]) -> u8 {
    let report = host.conformance(bytes);
    println!("{}:", file.display());
    for item in &report.items {
        let mark = match &item.outcome {
            Ok(_) => "ok  ",
            Err(crate::adapters::plugin_host::Failed::Skipped) => "skip",
            Err(_) => "FAIL",
        };
        let detail = match &item.outcome {
            Ok(detail) => detail.clone(),
            Err(crate::adapters::plugin_host::Failed::Skipped) => {
                "not checked: an earlier item failed".into()
            }
            Err(crate::adapters::plugin_host::Failed::Reason(reason)) => reason.clone(),
        };
        println!("  {mark} {:<2} {:<28} {detail}", item.number, item.title);
    }
    match report.plugin {
        Some(plugin) => {
            let info = &plugin.info;
            println!("conforms to ABI v1");
            println!("  hash:               {}", info.hash);
            println!(
                "  size:               {} bytes (limit {})",
                info.size, settings.plugins.max_module_bytes
            );
            println!(
                "  initial memory:     {} bytes (limit {})",
                info.memory_bytes, settings.plugins.memory_limit_bytes
            );
            println!(
                "  imports:            {}",
                if info.imports.is_empty() {
                    "none".to_owned()
                } else {
                    info.imports.join(", ")
                }
            );
            println!(
                "  validates settings: {}",
                if info.validates_settings { "yes" } else { "no" }
            );
            ALLOWED
        }
        None => {
            println!("does not conform to ABI v1: an upload would be refused (400 module_refused)");
            DENIED
        }
    }
}
