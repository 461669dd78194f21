//! Reading a signup body: urlencoded form, multipart form (the HTML may be a file) or JSON, into
//! raw field bytes. Nothing here judges the values; that is validation's job.

use actix_web::http::header::{self, HeaderMap};
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use crate::routes::error::ApiError;
use crate::services::signup::RawForm;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    UrlEncoded,
    Multipart,
    Json,
}

pub fn kind_of(req: &HttpRequest) -> Result<BodyKind, ApiError> {
    kind_of_headers(req.headers())
}

fn kind_of_headers(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    let unsupported = |what: &str| {
        ApiError::UnsupportedMediaType(format!(
            "{what}; send application/x-www-form-urlencoded, multipart/form-data or application/json"
        ))
    };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(unsupported("the request has no Content-Type"));
    };
    let mime: mime::Mime = value
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| unsupported("the Content-Type header does not parse"))?;
    match (mime.type_(), mime.subtype()) {
        (mime::APPLICATION, mime::WWW_FORM_URLENCODED) => Ok(BodyKind::UrlEncoded),
        (mime::MULTIPART, mime::FORM_DATA) => Ok(BodyKind::Multipart),
        (mime::APPLICATION, mime::JSON) => Ok(BodyKind::Json),
        _ => Err(unsupported(&format!(
            "Content-Type {} is not supported",
            mime.essence_str()
        ))),
    }
}

pub async fn parse(
    req: &HttpRequest,
    kind: BodyKind,
    body: web::Bytes,
) -> Result<RawForm, ApiError> {
    match kind {
        BodyKind::UrlEncoded => parse_urlencoded(&body),
        BodyKind::Json => parse_json(&body),
        BodyKind::Multipart => parse_multipart(req.headers(), body).await,
    }
}

/// Reads a signup body sent with `content_type` exactly as `POST /signup` does (the body
/// already read whole): raw fields, or the `415`/`400` error the route answers. Any content type
/// and body give one or the other, never a panic; the fuzz target `signup_body` checks that.
/// A multipart body needs a Tokio runtime with time enabled.
pub async fn parse_with_content_type(
    content_type: &str,
    body: web::Bytes,
) -> Result<RawForm, ApiError> {
    let mut headers = HeaderMap::new();
    let value = header::HeaderValue::from_str(content_type).map_err(|_| {
        ApiError::UnsupportedMediaType("the Content-Type header does not parse".into())
    })?;
    headers.insert(header::CONTENT_TYPE, value);
    match kind_of_headers(&headers)? {
        BodyKind::UrlEncoded => parse_urlencoded(&body),
        BodyKind::Json => parse_json(&body),
        BodyKind::Multipart => parse_multipart(&headers, body).await,
    }
}

fn parse_urlencoded(body: &[u8]) -> Result<RawForm, ApiError> {
    let mut form = RawForm::default();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let name = String::from_utf8(percent_decode(name)?)
            .map_err(|_| ApiError::bad_request("malformed_body", "a field name is not UTF-8"))?;
        form.insert(name, percent_decode(value)?)?;
    }
    Ok(form)
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn percent_decode(input: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = input
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request("malformed_body", "the form body has a bad %-escape")
                    })?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

/// The members of a JSON object in order, duplicates included (a `serde_json::Map` would keep
/// only the last of `{"name": "a", "name": "b"}`).
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

fn parse_json(body: &[u8]) -> Result<RawForm, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("malformed_body", format!("the body is not valid JSON: {e}"))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "malformed_body",
            "the JSON body must be an object",
        ));
    }
    let Members(members) = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("malformed_body", format!("the body is not valid JSON: {e}"))
    })?;
    let mut form = RawForm::default();
    let mut nulls = std::collections::HashSet::new();
    for (name, value) in members {
        if form.get(&name).is_some() || !nulls.insert(name.clone()) {
            return Err(RawForm::duplicate(&name).into());
        }
        match value {
            serde_json::Value::String(s) => form.insert(name, s.into_bytes())?,
            serde_json::Value::Null => {}
            other => {
                let kind = match other {
                    serde_json::Value::Bool(_) => "a boolean",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::Array(_) => "an array",
                    _ => "an object",
                };
                return Err(ApiError::bad_request(
                    "malformed_body",
                    format!("field {name:?} must be a string, not {kind}"),
                ));
            }
        }
    }
    Ok(form)
}

/// A multipart body, read from memory. The parser waits forever for the rest of a body that
/// ends before its closing boundary, so such a body is refused before it is parsed, and, as a
/// last guard, parsing (microseconds for anything berth accepts) has a deadline.
async fn parse_multipart(headers: &HeaderMap, body: web::Bytes) -> Result<RawForm, ApiError> {
    if let Some(boundary) = boundary_of(headers) {
        // actix-multipart panics on a three-byte line (`--\n`) when the boundary is that short;
        // browsers and HTTP clients send 16 or more characters (found by the fuzz target).
        if boundary.len() < 4 {
            return Err(ApiError::bad_request(
                "malformed_body",
                "the multipart boundary is too short: it needs at least 4 characters",
            ));
        }
        let close = format!("--{boundary}--");
        let closed = body.starts_with(close.as_bytes())
            || contains(&body, format!("\r\n{close}").as_bytes());
        if !closed {
            return Err(ApiError::bad_request(
                "malformed_body",
                "the multipart body is incomplete: it has no closing boundary",
            ));
        }
    }
    tokio::time::timeout(std::time::Duration::from_secs(1), read_parts(headers, body))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::bad_request(
                "malformed_body",
                "the multipart body cannot be read to its end",
            ))
        })
}

/// The `boundary` parameter of the request's multipart Content-Type.
fn boundary_of(headers: &HeaderMap) -> Option<String> {
    let mime: mime::Mime = headers
        .get(header::CONTENT_TYPE)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    mime.get_param(mime::BOUNDARY).map(|b| b.to_string())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn read_parts(headers: &HeaderMap, body: web::Bytes) -> Result<RawForm, ApiError> {
    let malformed = |e: actix_multipart::MultipartError| {
        ApiError::bad_request(
            "malformed_body",
            format!("the multipart body is malformed: {e}"),
        )
    };
    let stream =
        futures_util::stream::once(async move { Ok::<_, actix_web::error::PayloadError>(body) });
    let mut multipart = actix_multipart::Multipart::new(headers, stream);
    let mut form = RawForm::default();
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(malformed)?;
        let name = field
            .content_disposition()
            .and_then(|cd| cd.get_name())
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::bad_request("malformed_body", "a multipart part has no field name")
            })?;
        // What a header's quoted string carries plainly, as the OpenAPI document says: no
        // escapes, no control or non-ASCII characters (no field berth reads has any).
        if !name
            .chars()
            .all(|c| matches!(c, ' '..='~') && c != '"' && c != '\\')
        {
            return Err(ApiError::bad_request(
                "malformed_body",
                format!("multipart field name {name:?} must be printable ASCII without \" or \\"),
            ));
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.next().await {
            value.extend_from_slice(&chunk.map_err(malformed)?);
        }
        form.insert(name, value)?;
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_values_are_decoded_to_bytes() {
        let form =
            parse_urlencoded(b"name=my-shop&email=a%40b.co&html=%3Cp%3Ehi+there%3C%2Fp%3E&flag")
                .unwrap();
        assert_eq!(form.get("name"), Some(&b"my-shop"[..]));
        assert_eq!(form.get("email"), Some(&b"a@b.co"[..]));
        assert_eq!(form.get("html"), Some(&b"<p>hi there</p>"[..]));
        assert_eq!(form.get("flag"), Some(&b""[..]));
    }

    #[test]
    fn urlencoded_errors_are_precise() {
        assert!(matches!(
            parse_urlencoded(b"name=%zz"),
            Err(ApiError::BadRequest {
                code: "malformed_body",
                ..
            })
        ));
        assert!(matches!(
            parse_urlencoded(b"name=a&name=b"),
            Err(ApiError::BadRequest {
                code: "duplicate_field",
                ..
            })
        ));
        let raw = parse_urlencoded(b"html=%ff%fe").unwrap();
        assert_eq!(
            raw.get("html"),
            Some(&[0xff, 0xfe][..]),
            "bad UTF-8 is kept for validation to report"
        );
    }

    #[test]
    fn json_fields_must_be_strings() {
        assert!(parse_json(br#"{"name": "a", "email": null}"#).is_ok());
        let err = parse_json(br#"{"name": 5}"#).unwrap_err().to_string();
        assert!(
            err.contains("\"name\" must be a string, not a number"),
            "{err}"
        );
        assert!(parse_json(b"[1]").is_err());
        assert!(parse_json(b"{").is_err());
    }

    #[test]
    fn json_refuses_a_field_given_twice_like_the_forms_do() {
        for body in [
            &br#"{"name": "a", "name": "b"}"#[..],
            br#"{"name": null, "name": "b"}"#,
            br#"{"name": "a", "email": "x@y.z", "name": null}"#,
        ] {
            assert!(
                matches!(
                    parse_json(body),
                    Err(ApiError::BadRequest {
                        code: "duplicate_field",
                        ..
                    })
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Nested objects are refused anyway; only the top level names fields.
        assert!(parse_json(br#"{"name": "a", "email": "b"}"#).is_ok());
    }

    #[test]
    fn a_multipart_boundary_of_three_characters_is_refused_not_a_panic() {
        let req = actix_web::test::TestRequest::default()
            .insert_header((header::CONTENT_TYPE, "multipart/form-data; boundary=XyZ"))
            .to_http_request();
        // The fuzz target's input: a line of three bytes once made the parser panic.
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nn\r\n--\n\r\n--XyZ--\r\n";
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(parse_multipart(
                req.headers(),
                web::Bytes::from_static(body),
            ));
        assert!(
            matches!(&result, Err(ApiError::BadRequest { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn a_multipart_body_without_its_closing_boundary_is_refused_not_waited_for() {
        let part = "--XyZw\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv";
        let cases = [
            ("".to_owned(), "incomplete"),
            (format!("{part}\r\n"), "incomplete"),
            (format!("{part}--XyZw--"), "incomplete"),
            (format!("{part}\r\n--XyZw\r\n"), "incomplete"),
            (
                "--XyZw\r\nContent-Disposition: form-data; name=\"a\"\r\n--XyZw--\r\n".to_owned(),
                "malformed",
            ),
        ];
        for (body, expected) in cases {
            let error = properties::multipart(body.clone().into_bytes()).unwrap_err();
            assert!(
                matches!(
                    error,
                    ApiError::BadRequest {
                        code: "malformed_body",
                        ..
                    }
                ) && error.to_string().contains(expected),
                "{body:?}: {error}"
            );
        }
        let whole = format!("{part}\r\n--XyZw--\r\n");
        let form = properties::multipart(whole.into_bytes()).unwrap();
        assert_eq!(form.get("a"), Some(&b"v"[..]));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        fn percent_encode(bytes: &[u8]) -> String {
            bytes
                .iter()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (*b as char).to_string(),
                    b' ' => "+".to_owned(),
                    other => format!("%{other:02X}"),
                })
                .collect()
        }

        /// The answer of a body parser to anything: a form, or a 400 that says what is wrong.
        fn is_form_or_400(result: Result<RawForm, ApiError>) -> bool {
            matches!(result, Ok(_) | Err(ApiError::BadRequest { .. }))
        }

        pub(super) fn multipart(body: Vec<u8>) -> Result<RawForm, ApiError> {
            let req = actix_web::test::TestRequest::default()
                .insert_header((header::CONTENT_TYPE, "multipart/form-data; boundary=XyZw"))
                .to_http_request();
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap()
                .block_on(parse_multipart(req.headers(), web::Bytes::from(body)))
        }

        #[test]
        fn multipart_field_names_are_printable_ascii() {
            let part = |name: &[u8]| {
                let mut body = b"--XyZw\r\nContent-Disposition: form-data; name=\"".to_vec();
                body.extend_from_slice(name);
                body.extend_from_slice(b"\"\r\n\r\nvalue\r\n--XyZw--\r\n");
                multipart(body)
            };
            assert_eq!(part(b"html").unwrap().get("html"), Some(&b"value"[..]));
            assert!(part(b"").is_ok(), "an empty name is a part nobody reads");
            for name in [&b"\xc2\x84"[..], b"a\x01b", b"caf\xc3\xa9"] {
                assert!(
                    matches!(
                        part(name),
                        Err(ApiError::BadRequest {
                            code: "malformed_body",
                            ..
                        })
                    ),
                    "{name:?}"
                );
            }
        }

        proptest! {
            #[test]
            fn any_body_is_a_form_or_a_400_in_every_encoding(
                body in prop::collection::vec(any::<u8>(), 0..600),
            ) {
                prop_assert!(is_form_or_400(parse_urlencoded(&body)));
                prop_assert!(is_form_or_400(parse_json(&body)));
                prop_assert!(is_form_or_400(multipart(body)));
            }

            #[test]
            fn multipart_shaped_bodies_are_a_form_or_a_400(
                parts in prop::collection::vec(("[a-z\"]{0,6}", prop::collection::vec(any::<u8>(), 0..40)), 0..5),
                end in any::<bool>(),
            ) {
                let mut body = Vec::new();
                for (name, value) in &parts {
                    body.extend_from_slice(format!("--XyZw\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes());
                    body.extend_from_slice(value);
                    body.extend_from_slice(b"\r\n");
                }
                if end {
                    body.extend_from_slice(b"--XyZw--\r\n");
                }
                prop_assert!(is_form_or_400(multipart(body)));
            }

            #[test]
            fn urlencoded_fields_round_trip(
                fields in prop::collection::btree_map("[a-z_]{1,8}", prop::collection::vec(any::<u8>(), 0..64), 0..6),
            ) {
                let body = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", percent_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                let form = parse_urlencoded(body.as_bytes()).unwrap();
                for (name, value) in &fields {
                    prop_assert_eq!(form.get(name), Some(value.as_slice()));
                }
            }

            #[test]
            fn json_fields_round_trip(
                fields in prop::collection::btree_map(".{1,8}", ".{0,40}", 0..6),
            ) {
                let body = serde_json::to_vec(&fields).unwrap();
                let form = parse_json(&body).unwrap();
                for (name, value) in &fields {
                    prop_assert_eq!(form.get(name), Some(value.as_bytes()));
                }
            }

            #[test]
            fn a_field_given_twice_is_refused_in_every_encoding(
                name in "[a-z]{1,8}",
                first in "[a-z0-9]{0,10}",
                second in "[a-z0-9]{0,10}",
            ) {
                let duplicate = |r: Result<RawForm, ApiError>| {
                    matches!(r, Err(ApiError::BadRequest { code: "duplicate_field", .. }))
                };
                let form = format!("{name}={first}&{name}={second}");
                prop_assert!(duplicate(parse_urlencoded(form.as_bytes())));
                let json = format!("{{\"{name}\":\"{first}\",\"{name}\":\"{second}\"}}");
                prop_assert!(duplicate(parse_json(json.as_bytes())));
                let mut fields = BTreeMap::new();
                fields.insert(name.clone(), first);
                let body = format!(
                    "--XyZw\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{}\r\n\
                     --XyZw\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{second}\r\n--XyZw--\r\n",
                    fields[&name]
                );
                prop_assert!(duplicate(multipart(body.into_bytes())));
            }
        }
    }
}
