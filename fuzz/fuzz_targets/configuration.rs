//! The configuration loader: TOML text plus `BERTH_…` environment overrides, then validation.
//!
//! Input: the TOML text, then optionally a line `%%env` followed by `KEY=VALUE` lines. Asserts:
//! no panic; an error never shows a value of 8 or more characters taken from the file's strings
//! or the environment (any of them may be a secret in the wrong place); loaded settings render
//! their redacted TOML.
#![no_main]

use std::path::Path;

use berth::configuration::{ConfigError, Settings};
use libfuzzer_sys::fuzz_target;

fn strings(value: &toml::Value, into: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => into.push(s.clone()),
        toml::Value::Array(items) => items.iter().for_each(|v| strings(v, into)),
        toml::Value::Table(table) => table.values().for_each(|v| strings(v, into)),
        _ => {}
    }
}

fn split(input: &str) -> (&str, Vec<(String, String)>) {
    let (text, env) = input.split_once("\n%%env\n").unwrap_or((input, ""));
    let env = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (text, env)
}

fn message(error: &ConfigError) -> String {
    match error {
        ConfigError::Invalid { message, .. } | ConfigError::Syntax { message, .. } => {
            message.clone()
        }
        ConfigError::Read { .. } => unreachable!("nothing is read"),
    }
}

/// The message of the error `input` loads to (empty when it loads).
fn message_of(input: &str) -> String {
    let (text, env) = split(input);
    Settings::load_from_text(Path::new("berth.toml"), text, env)
        .err()
        .map(|e| message(&e))
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (text, env) = split(input);
    let mut values: Vec<String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("BERTH_") && k.contains("__"))
        .map(|(_, v)| v.clone())
        .collect();
    if let Ok(table) = text.parse::<toml::Table>() {
        strings(&toml::Value::Table(table), &mut values);
    }
    match Settings::load_from_text(Path::new("berth.toml"), text, env) {
        Ok(settings) => {
            let _ = settings.redacted_toml();
        }
        Err(error) => {
            let message = message(&error);
            for value in values
                .iter()
                .filter(|v| v.len() >= 8 && !v.contains(['[', ']']))
            {
                // The fuzzer also feeds berth's own words back as values ("line 2, column 14:
                // invalid basic string"): an error that still says them with the value
                // replaced everywhere is not showing the value.
                let shown = message.contains(value.as_str())
                    && !message_of(&input.replace(value.as_str(), &"Q".repeat(value.len())))
                        .contains(value.as_str());
                assert!(!shown, "the error shows the value {value:?}: {error}");
            }
        }
    }
});
