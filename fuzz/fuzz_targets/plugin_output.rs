//! The plugin output parser (ABI v1) and the settings-check answer.
//!
//! Asserts: no panic; a parsed output keeps the ABI's limits (verdict `allow`/`deny`, at most 50
//! reasons, codes `[a-z0-9_]{1,32}`, messages of at most 1000 bytes, a `deny` with a reason);
//! and it round-trips: serialised to JSON and parsed again it is the same output.
#![no_main]

use berth::adapters::plugin_host::{parse_output, parse_settings_output};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_settings_output(text);
    let Ok(output) = parse_output(text) else {
        return;
    };
    assert!(output.verdict == "allow" || output.verdict == "deny");
    assert!(output.reasons.len() <= 50);
    assert!(!output.denies() || !output.reasons.is_empty());
    for reason in &output.reasons {
        assert!((1..=32).contains(&reason.code.len()));
        assert!(reason
            .code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        assert!(reason.message.len() <= 1000);
    }
    let again = serde_json::to_string(&output).expect("an output serialises");
    assert_eq!(parse_output(&again).expect("its own JSON parses"), output);
});
