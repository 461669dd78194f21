//! Reading a plugin's output JSON strictly: anything that does not match ABI v1 is `bad_output`.

use serde::{Deserialize, Serialize};

use super::PluginError;

/// A plugin's answer, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PluginOutput {
    /// `allow` or `deny`.
    pub verdict: String,
    pub reasons: Vec<PluginReason>,
    pub rewrite: Option<String>,
}

impl PluginOutput {
    pub fn denies(&self) -> bool {
        self.verdict == "deny"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginReason {
    pub code: String,
    pub message: String,
}

#[derive(Deserialize)]
struct RawOutput {
    verdict: String,
    #[serde(default)]
    reasons: Vec<PluginReason>,
    #[serde(default)]
    rewrite: Option<String>,
}

/// Longest reason message kept; longer ones are cut (on a character boundary).
const MAX_MESSAGE: usize = 1000;
/// Reasons kept from one plugin.
const MAX_REASONS: usize = 50;

fn bad(message: impl Into<String>) -> PluginError {
    PluginError::BadOutput(message.into())
}

/// Reads a plugin's output text as ABI v1: a checked [`PluginOutput`] (verdict `allow` or
/// `deny`, at most 50 reasons with codes matching `[a-z0-9_]{1,32}` and messages of at most 1000
/// bytes, a `deny` always with a reason), or `bad_output`. Never panics, whatever the text.
pub fn parse_output(text: &str) -> Result<PluginOutput, PluginError> {
    let raw: RawOutput =
        serde_json::from_str(text).map_err(|e| bad(format!("not the ABI's output JSON: {e}")))?;
    if raw.verdict != "allow" && raw.verdict != "deny" {
        return Err(bad(format!(
            "verdict must be \"allow\" or \"deny\", not {:?}",
            raw.verdict
        )));
    }
    if raw.reasons.len() > MAX_REASONS {
        return Err(bad(format!(
            "{} reasons; at most {MAX_REASONS}",
            raw.reasons.len()
        )));
    }
    let mut reasons = Vec::with_capacity(raw.reasons.len());
    for mut reason in raw.reasons {
        let code_ok = (1..=32).contains(&reason.code.len())
            && reason
                .code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !code_ok {
            return Err(bad(format!(
                "reason code {:?} does not match [a-z0-9_]{{1,32}}",
                reason.code
            )));
        }
        if reason.message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !reason.message.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.message.truncate(cut);
        }
        reasons.push(reason);
    }
    if raw.verdict == "deny" && reasons.is_empty() {
        reasons.push(PluginReason {
            code: "denied".into(),
            message: "the policy denied this submission".into(),
        });
    }
    Ok(PluginOutput {
        verdict: raw.verdict,
        reasons,
        rewrite: raw.rewrite,
    })
}

#[derive(Deserialize)]
struct RawSettingsOutput {
    valid: bool,
    #[serde(default)]
    message: Option<String>,
}

/// Reads a plugin's answer to `validate_settings`: whether the settings are valid, and why not.
pub fn parse_settings_output(text: &str) -> Result<(bool, Option<String>), PluginError> {
    let raw: RawSettingsOutput = serde_json::from_str(text)
        .map_err(|e| bad(format!("not the ABI's settings output JSON: {e}")))?;
    Ok((raw.valid, raw.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_abi_shape() {
        let out = parse_output(
            r#"{"verdict":"deny","reasons":[{"code":"no_script","message":"x"}],"rewrite":null}"#,
        )
        .unwrap();
        assert!(out.denies());
        assert_eq!(out.reasons[0].code, "no_script");
        let out = parse_output(r#"{"verdict":"allow"}"#).unwrap();
        assert!(!out.denies() && out.reasons.is_empty() && out.rewrite.is_none());
    }

    #[test]
    fn refuses_what_is_not_the_abi() {
        for bad in [
            "",
            "[]",
            r#"{"verdict":"maybe"}"#,
            r#"{"verdict":"deny","reasons":[{"code":"Bad Code","message":"x"}]}"#,
            r#"{"verdict":"deny","reasons":[{"code":"","message":"x"}]}"#,
            r#"{"verdict":"allow","rewrite":5}"#,
        ] {
            assert!(
                matches!(parse_output(bad), Err(PluginError::BadOutput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_bare_deny_gets_a_reason_and_long_messages_are_cut() {
        assert_eq!(
            parse_output(r#"{"verdict":"deny"}"#).unwrap().reasons.len(),
            1
        );
        let long = format!(
            r#"{{"verdict":"deny","reasons":[{{"code":"x","message":"{}"}}]}}"#,
            "é".repeat(800)
        );
        assert!(parse_output(&long).unwrap().reasons[0].message.len() <= 1000);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_text_is_a_valid_output_or_bad_output(text in ".{0,300}") {
                match parse_output(&text) {
                    Ok(out) => prop_assert!(out.verdict == "allow" || out.verdict == "deny"),
                    Err(error) => prop_assert!(matches!(error, PluginError::BadOutput(_))),
                }
            }

            #[test]
            fn json_shaped_text_is_a_valid_output_or_bad_output(
                verdict in prop::sample::select(vec!["allow", "deny", "Allow", "", "maybe"]),
                codes in prop::collection::vec("[a-zA-Z0-9_ -]{0,40}", 0..60),
                message in ".{0,1200}",
                rewrite in prop::option::of(".{0,40}"),
                twice in any::<bool>(),
            ) {
                let reasons: Vec<_> = codes
                    .iter()
                    .map(|c| serde_json::json!({"code": c, "message": message}))
                    .collect();
                let mut text = serde_json::json!({"verdict": verdict, "reasons": reasons, "rewrite": rewrite}).to_string();
                if twice {
                    // A second verdict: a parser keeping the last would let a plugin say both.
                    text = text.replacen('{', "{\"verdict\":\"allow\",", 1);
                }
                match parse_output(&text) {
                    Ok(out) => {
                        prop_assert!(!twice);
                        prop_assert_eq!(out.verdict.as_str(), verdict);
                        prop_assert!(out.reasons.len() <= MAX_REASONS);
                        prop_assert!(!out.denies() || !out.reasons.is_empty());
                        for reason in &out.reasons {
                            prop_assert!(reason.message.len() <= MAX_MESSAGE);
                            prop_assert!((1..=32).contains(&reason.code.len()));
                        }
                        prop_assert_eq!(out.rewrite, rewrite);
                    }
                    Err(error) => prop_assert!(matches!(error, PluginError::BadOutput(_))),
                }
            }
        }
    }
}
