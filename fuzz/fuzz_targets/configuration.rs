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

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (text, env) = input.split_once("\n%%env\n").unwrap_or((input, ""));
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
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
            let message = match &error {
                ConfigError::Invalid { message, .. } => message.clone(),
                ConfigError::Syntax { message, .. } => message.clone(),
                ConfigError::Read { .. } => unreachable!("nothing is read"),
            };
            for value in values
                .iter()
                .filter(|v| v.len() >= 8 && !v.contains(['[', ']']))
            {
                assert!(
                    !message.contains(value.as_str()),
                    "the error shows the value {value:?}: {error}"
                );
            }
        }
    }
});
