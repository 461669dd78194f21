//! The signup body parsers: urlencoded form, multipart form and JSON.
//!
//! Input: the Content-Type, a newline, then the body. Asserts that every input gives raw fields
//! or a `400`/`415` with the JSON error, never a panic or a hang (a multipart body is read under
//! the parser's own deadline).
#![no_main]

use std::cell::RefCell;

use actix_web::ResponseError;
use berth::routes::parse_signup_body;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static RUNTIME: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a Tokio runtime"),
    );
}

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(content_type) = std::str::from_utf8(content_type) else {
        return;
    };
    let body = actix_web::web::Bytes::copy_from_slice(body);
    let result = RUNTIME.with(|rt| {
        rt.borrow()
            .block_on(parse_signup_body(content_type, body.clone()))
    });
    match result {
        Ok(form) => {
            // The fields a signup reads, if there, are whole values.
            for name in ["name", "email", "html", "plan"] {
                let _ = form.get(name);
            }
        }
        Err(error) => {
            let status = error.status_code().as_u16();
            assert!(
                status == 400 || status == 415,
                "{content_type:?}: answered {status}: {error}"
            );
            assert!(!error.to_string().is_empty());
        }
    }
});
