//! `berth plugin check` and `berth plugin run`: the plugin host without a server, for plugin
//! authors and operators vetting a module before uploading it.

use std::process::ExitCode;

use crate::cli::PluginCommand;
use crate::configuration::Settings;
use crate::plugin_host::{HostOptions, PluginHost};
use crate::policy::{context_json, Hook, Submission};

pub fn run(settings: &Settings, command: &PluginCommand) -> ExitCode {
    match execute(settings, command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn execute(settings: &Settings, command: &PluginCommand) -> Result<ExitCode, String> {
    let (file, fuel) = match command {
        PluginCommand::Check { file } => (file, false),
        PluginCommand::Run { file, .. } => (file, true),
    };
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let host = PluginHost::new(&settings.plugins, HostOptions { fuel })
        .map_err(|e| format!("cannot start the plugin host: {e:#}"))?;
    let plugin = host
        .load(&bytes)
        .map_err(|reason| format!("{} is refused: {reason}", file.display()))?;
    let info = &plugin.info;
    match command {
        PluginCommand::Check { .. } => {
            println!("{}: ok", file.display());
            println!("  abi version:        {}", info.abi_version);
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
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Run {
            hook,
            value,
            settings: plugin_settings,
            ..
        } => {
            let hook = Hook::parse(hook)?;
            let value = match value.strip_prefix('@') {
                Some(path) => {
                    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?
                }
                None => value.clone(),
            };
            let plugin_settings: serde_json::Value = serde_json::from_str(plugin_settings)
                .map_err(|e| format!("--settings is not JSON: {e}"))?;
            if !plugin_settings.is_object() {
                return Err("--settings must be a JSON object".into());
            }
            match host.validate_settings(&plugin, &plugin_settings.to_string()) {
                Ok(Some((false, message))) => {
                    return Err(format!(
                        "the plugin refuses these settings: {}",
                        message.unwrap_or_default()
                    ))
                }
                Err(error) => {
                    return Err(format!(
                        "berth_validate_settings failed ({}): {error}",
                        error.class()
                    ))
                }
                Ok(_) => {}
            }
            let name = if hook == Hook::Name {
                value.clone()
            } else {
                "example".to_owned()
            };
            let submission = Submission {
                name: &name,
                email: "customer@example.com",
                plan: None,
            };
            let context = context_json(hook, "default", "cli", &plugin_settings, &submission);
            let code = match host.validate(&plugin, &context, &value) {
                Ok(report) => {
                    println!("verdict: {}", report.result.verdict);
                    for reason in &report.result.reasons {
                        println!("  - {}: {}", reason.code, reason.message);
                    }
                    if let Some(rewrite) = &report.result.rewrite {
                        println!("rewrite: {} bytes", rewrite.len());
                    }
                    print_footer(report.duration, report.fuel, &report.logs);
                    if report.result.denies() {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err((error, report)) => {
                    println!("verdict: error ({})", error.class());
                    println!("  {error}");
                    print_footer(report.duration, report.fuel, &report.logs);
                    ExitCode::from(3)
                }
            };
            Ok(code)
        }
    }
}

fn print_footer(
    duration: std::time::Duration,
    fuel: Option<u64>,
    logs: &[crate::plugin_host::LogLine],
) {
    println!("time: {} µs", duration.as_micros());
    if let Some(fuel) = fuel {
        println!("fuel used: {fuel}");
    }
    for line in logs {
        println!("log {}: {}", line.level, line.message);
    }
}
