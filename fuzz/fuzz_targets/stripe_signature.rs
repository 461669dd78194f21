//! The `Stripe-Signature` header parser and verifier.
//!
//! Input: the header value, a newline, then the body. Asserts that parsing never panics; that a
//! parsed header accepts the body under a secret exactly when one of its `v1` items is that
//! body's MAC at its timestamp (and the timestamp is within tolerance); and that what berth's
//! own `sign` makes parses and verifies.
#![no_main]

use berth::domain::Secret;
use berth::services::stripe::signature::{sign, SignatureError, SignatureHeader, MAX_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "whsec_fuzzing0123456789";
const TOLERANCE: u64 = 300;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let secrets = [Secret::new(SECRET)];
    match SignatureHeader::parse(header) {
        Ok(parsed) => {
            assert!(header.len() <= MAX_HEADER_LEN);
            let ts = parsed.timestamp();
            assert!(ts >= 0, "t is decimal digits only");
            let expected = sign(body, SECRET, ts);
            let expected_v1 = expected.split_once(",v1=").unwrap().1;
            let carries_mac = header
                .split(',')
                .any(|item| item == format!("v1={expected_v1}"));
            for now in [ts, ts.saturating_add(TOLERANCE as i64 + 1)] {
                let verdict = parsed.verify(body, &secrets, TOLERANCE, now);
                let in_time = now.abs_diff(ts) <= TOLERANCE;
                match verdict {
                    Ok(()) => assert!(carries_mac && in_time),
                    Err(SignatureError::Mismatch) => assert!(!carries_mac),
                    Err(SignatureError::OutOfTolerance { .. }) => assert!(carries_mac && !in_time),
                    Err(other) => panic!("unexpected verdict {other:?}"),
                }
            }
            assert_eq!(
                parsed.verify(body, &[Secret::new("")], TOLERANCE, ts),
                Err(SignatureError::NoSecrets)
            );
            // What berth signs at this timestamp, berth accepts.
            let own = SignatureHeader::parse(&expected).expect("berth's own header parses");
            assert_eq!(own.timestamp(), ts);
            own.verify(body, &secrets, TOLERANCE, ts)
                .expect("berth's own signature verifies");
        }
        Err(error) => {
            assert!(!error.code().is_empty());
            let _ = error.to_string();
        }
    }
});
