//! `Stripe-Signature` verification.
//!
//! Stripe signs `"{t}.{raw body}"` with HMAC-SHA256 under the endpoint's secret (the whole
//! `whsec_…` string as key bytes) and sends `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, one `v1` per
//! active secret while a secret is being rolled. Test-mode events also carry a `v0` made with a
//! secret Stripe does not publish.
//!
//! The rules berth applies, stricter than Stripe's libraries where they are lax:
//! - the header parses strictly: `key=value` items separated by single commas, no empty items,
//!   no whitespace, exactly one `t` (decimal seconds), every `v1` exactly 64 lowercase hex digits;
//!   a header that breaks any of these is garbled and refused;
//! - only `v1` counts: `v0` and unknown schemes (`v2`, …) and unknown keys are ignored, so a
//!   downgrade to another scheme is impossible;
//! - every `v1` is compared with the expected MAC of every configured secret, in constant time
//!   and only at equal length;
//! - the timestamp must be within ±`tolerance` seconds of now, in both directions.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::Secret;

/// A longer header is refused before it is looked at.
pub const MAX_HEADER_LEN: usize = 4096;
/// More `v1` signatures than this is not a rotation but an attempt to make berth work.
const MAX_SIGNATURES: usize = 16;
const MAC_LEN: usize = 32;

/// Why a delivery's signature was refused. Every case is a `400`; `code` goes in the body and in
/// metrics. No variant carries a secret or an expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "the Stripe-Signature header has no v1 signature (v0 and other schemes are not accepted)"
    )]
    NoV1,
    #[error("no v1 signature matches this body for any of the tenant's webhook secrets")]
    Mismatch,
    #[error("the Stripe-Signature timestamp is more than {tolerance_secs} s away from this server's clock")]
    OutOfTolerance { tolerance_secs: u64 },
    #[error("this tenant has no Stripe webhook secret configured, so no delivery can be verified")]
    NoSecrets,
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_signature",
            Self::NoV1 => "no_v1_signature",
            Self::Mismatch => "invalid_signature",
            Self::OutOfTolerance { .. } => "timestamp_out_of_tolerance",
            Self::NoSecrets => "webhooks_not_configured",
        }
    }
}

/// A strictly parsed `Stripe-Signature` header: the timestamp and every `v1` signature (at
/// least one, at most 16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    timestamp: i64,
    v1: Vec<[u8; MAC_LEN]>,
}

impl SignatureHeader {
    pub fn parse(value: &str) -> Result<Self, SignatureError> {
        use SignatureError::Malformed;
        if value.is_empty() {
            return Err(Malformed("it is empty"));
        }
        if value.len() > MAX_HEADER_LEN {
            return Err(Malformed("it is too long"));
        }
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for item in value.split(',') {
            let (key, val) = item
                .split_once('=')
                .ok_or(Malformed("every item must be key=value"))?;
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(Malformed("a key is empty or not alphanumeric"));
            }
            if val.is_empty() || !val.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Malformed(
                    "a value is empty or has spaces or other characters",
                ));
            }
            match key {
                "t" => {
                    if timestamp.is_some() {
                        return Err(Malformed("t is given more than once"));
                    }
                    if val.len() > 12 || !val.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(Malformed("t must be Unix seconds"));
                    }
                    timestamp = Some(
                        val.parse::<i64>()
                            .map_err(|_| Malformed("t must be Unix seconds"))?,
                    );
                }
                "v1" => {
                    let hex_ok = val.len() == 2 * MAC_LEN
                        && val.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                    if !hex_ok {
                        return Err(Malformed(
                            "a v1 signature must be 64 lowercase hexadecimal digits",
                        ));
                    }
                    if v1.len() == MAX_SIGNATURES {
                        return Err(Malformed("it has too many v1 signatures"));
                    }
                    let mut mac = [0u8; MAC_LEN];
                    hex::decode_to_slice(val, &mut mac)
                        .map_err(|_| Malformed("a v1 signature is not hexadecimal"))?;
                    v1.push(mac);
                }
                // v0 (test mode), future schemes and keys berth does not know: never trusted.
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(Malformed("it has no timestamp t"))?;
        if v1.is_empty() {
            return Err(SignatureError::NoV1);
        }
        Ok(Self { timestamp, v1 })
    }

    /// The signing time, in Unix seconds.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// Checks that one of the `v1` signatures is the MAC of `body` under one of `secrets`
    /// (empty ones never match), then that the timestamp is within `tolerance_secs` of `now`
    /// (Unix seconds) either way.
    pub fn verify(
        &self,
        body: &[u8],
        secrets: &[Secret],
        tolerance_secs: u64,
        now: i64,
    ) -> Result<(), SignatureError> {
        let mut secrets = secrets.iter().filter(|s| !s.is_empty()).peekable();
        if secrets.peek().is_none() {
            return Err(SignatureError::NoSecrets);
        }
        let matched = secrets.any(|secret| {
            let expected = mac(secret.expose().as_bytes(), self.timestamp, body);
            self.v1.iter().any(|candidate| same(&expected, candidate))
        });
        if !matched {
            return Err(SignatureError::Mismatch);
        }
        if now.abs_diff(self.timestamp) > tolerance_secs {
            return Err(SignatureError::OutOfTolerance { tolerance_secs });
        }
        Ok(())
    }
}

/// Constant-time equality that first requires equal lengths.
fn same(expected: &[u8], candidate: &[u8]) -> bool {
    expected.len() == candidate.len() && bool::from(expected.ct_eq(candidate))
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> [u8; MAC_LEN] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The `Stripe-Signature` header Stripe would send for `body` signed with `secret` at
/// `timestamp`: for tests, the benchmark and local tooling.
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret.as_bytes(), timestamp, body))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vectors {
        vectors: Vec<Vector>,
    }

    /// One case made by stripe-python (tests/stripe-signatures/generate.py).
    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        secrets: Vec<String>,
        payload: String,
        header: String,
        now: i64,
        tolerance: u64,
        stripe_python: String,
        berth: String,
        why: Option<String>,
        signed_with: Option<String>,
        timestamp: Option<i64>,
    }

    fn v1_of(header: &str) -> &str {
        header.split_once("v1=").unwrap().1
    }

    fn vectors() -> Vec<Vector> {
        let raw = include_str!("../../../tests/stripe-signatures/vectors.json");
        serde_json::from_str::<Vectors>(raw).unwrap().vectors
    }

    fn check(v: &Vector) -> Result<(), SignatureError> {
        let secrets: Vec<Secret> = v.secrets.iter().map(Secret::new).collect();
        SignatureHeader::parse(&v.header)?.verify(
            v.payload.as_bytes(),
            &secrets,
            v.tolerance,
            v.now,
        )
    }

    #[test]
    fn berth_agrees_with_stripe_python_on_every_vector() {
        let vectors = vectors();
        assert!(vectors.len() > 30);
        for v in &vectors {
            let verdict = match check(v) {
                Ok(()) => "accept",
                Err(e) => e.code(),
            };
            assert_eq!(verdict, v.berth, "vector {:?}", v.name);
            let library_accepts = v.stripe_python == "accept";
            if library_accepts != (verdict == "accept") {
                assert!(
                    v.why.is_some(),
                    "vector {:?}: berth differs from stripe-python without a reason",
                    v.name
                );
            }
        }
    }

    #[test]
    fn the_signer_produces_the_library_s_headers() {
        let mut signed = 0;
        for v in vectors() {
            if let (Some(secret), Some(t)) = (&v.signed_with, v.timestamp) {
                assert_eq!(
                    sign(v.payload.as_bytes(), secret, t),
                    v.header,
                    "{}",
                    v.name
                );
                signed += 1;
            }
        }
        assert!(signed >= 2);
    }

    #[test]
    fn every_secret_is_tried_against_every_signature() {
        let body = br#"{"id":"evt_1"}"#;
        let new = sign(body, "whsec_new", 100);
        let header = format!("{},v1={}", sign(body, "whsec_old", 100), v1_of(&new));
        let parsed = SignatureHeader::parse(&header).unwrap();
        for secrets in [
            vec!["whsec_new"],
            vec!["whsec_old"],
            vec!["whsec_x", "whsec_new"],
        ] {
            let secrets: Vec<Secret> = secrets.into_iter().map(Secret::new).collect();
            assert_eq!(parsed.verify(body, &secrets, 300, 100), Ok(()));
        }
        let wrong = [Secret::new("whsec_x")];
        assert_eq!(
            parsed.verify(body, &wrong, 300, 100),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn no_configured_secret_verifies_nothing() {
        let body = b"{}";
        let parsed = SignatureHeader::parse(&sign(body, "", 100)).unwrap();
        assert_eq!(
            parsed.verify(body, &[], 300, 100),
            Err(SignatureError::NoSecrets)
        );
        assert_eq!(
            parsed.verify(body, &[Secret::default()], 300, 100),
            Err(SignatureError::NoSecrets),
            "an empty secret is no secret"
        );
    }

    #[test]
    fn the_timestamp_is_checked_both_ways() {
        let body = b"{}";
        let parsed = SignatureHeader::parse(&sign(body, "whsec_a", 1_000)).unwrap();
        let secrets = [Secret::new("whsec_a")];
        assert!(parsed.verify(body, &secrets, 10, 1_010).is_ok());
        assert!(parsed.verify(body, &secrets, 10, 990).is_ok());
        assert!(parsed.verify(body, &secrets, 10, 1_011).is_err());
        assert!(parsed.verify(body, &secrets, 10, 989).is_err());
    }

    #[test]
    fn garbled_headers_are_refused() {
        let sig = "a".repeat(64);
        let cases = [
            (String::new(), "empty"),
            (",".into(), "only a comma"),
            (format!("t=1,,v1={sig}"), "an empty item"),
            (format!("t=1,=x,v1={sig}"), "an empty key"),
            (
                format!("t=1,v1={sig},v1=zz"),
                "one bad v1 beside a good one",
            ),
            (format!("t=1,v1={sig}\n"), "a newline"),
            (format!("t=+1,v1={sig}"), "a signed timestamp"),
            (format!("t=1234567890123,v1={sig}"), "an absurd timestamp"),
            (
                format!("t=1{}", format!(",v1={sig}").repeat(17)),
                "too many signatures",
            ),
            ("x".repeat(MAX_HEADER_LEN + 1), "too long"),
        ];
        for (header, why) in cases {
            assert!(
                matches!(
                    SignatureHeader::parse(&header),
                    Err(SignatureError::Malformed(_))
                ),
                "{why}: {header:?}"
            );
        }
    }

    #[test]
    fn errors_never_show_a_secret_or_a_signature() {
        let body = b"{}";
        let header = sign(body, "whsec_hunter2", 5);
        let err = SignatureHeader::parse(&header)
            .unwrap()
            .verify(body, &[Secret::new("whsec_other")], 300, 5)
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("hunter2")
                && !shown.contains("other")
                && !shown.contains(v1_of(&header))
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Items made of the header's own pieces, so that most inputs get past the first check.
        fn item() -> impl Strategy<Value = String> {
            let key = prop::sample::select(vec!["t", "v1", "v0", "x", "", "T", "v1 "]);
            let value = prop_oneof![
                "[0-9]{0,14}",
                "[0-9a-f]{62,66}",
                "[0-9a-fA-F=, ]{0,70}",
                ".{0,8}",
            ];
            (key, value).prop_map(|(k, v)| format!("{k}={v}"))
        }

        proptest! {
            #[test]
            fn parsing_any_header_never_panics(value in ".{0,300}") {
                let _ = SignatureHeader::parse(&value);
            }

            #[test]
            fn a_header_of_the_grammar_s_pieces_is_parsed_or_refused_never_panics(
                items in prop::collection::vec(item(), 0..20),
            ) {
                let header = items.join(",");
                if let Ok(parsed) = SignatureHeader::parse(&header) {
                    prop_assert!(!parsed.v1.is_empty() && parsed.v1.len() <= MAX_SIGNATURES);
                    prop_assert!(header.contains("t="));
                }
            }

            #[test]
            fn what_is_signed_verifies_and_nothing_else_does(
                body in prop::collection::vec(any::<u8>(), 0..512),
                other in prop::collection::vec(any::<u8>(), 0..512),
                secret in "whsec_[a-zA-Z0-9]{1,40}",
                wrong in "whsec_[a-zA-Z0-9]{1,40}",
                t in 0i64..4_000_000_000,
            ) {
                let parsed = SignatureHeader::parse(&sign(&body, &secret, t)).unwrap();
                let secrets = [Secret::new(secret.clone())];
                prop_assert_eq!(parsed.verify(&body, &secrets, 300, t), Ok(()));
                prop_assert_eq!(
                    parsed.verify(&body, &secrets, 300, t + 301),
                    Err(SignatureError::OutOfTolerance { tolerance_secs: 300 })
                );
                if other != body {
                    prop_assert_eq!(parsed.verify(&other, &secrets, 300, t), Err(SignatureError::Mismatch));
                }
                if wrong != secret {
                    let wrong = [Secret::new(wrong)];
                    prop_assert_eq!(parsed.verify(&body, &wrong, 300, t), Err(SignatureError::Mismatch));
                }
            }

            #[test]
            fn a_changed_signature_digit_never_verifies(
                body in prop::collection::vec(any::<u8>(), 0..128),
                at in 0usize..64,
                digit in "[0-9a-f]",
            ) {
                let t = 1_700_000_000;
                let header = sign(&body, "whsec_k", t);
                let start = header.find("v1=").unwrap() + 3;
                let mut changed = header.clone();
                changed.replace_range(start + at..start + at + 1, &digit);
                prop_assume!(changed != header);
                let parsed = SignatureHeader::parse(&changed).unwrap();
                prop_assert_eq!(
                    parsed.verify(&body, &[Secret::new("whsec_k")], 300, t),
                    Err(SignatureError::Mismatch)
                );
            }
        }
    }
}
