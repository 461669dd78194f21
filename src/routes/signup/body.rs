//! Reading a signup body: urlencoded form, multipart form (the HTML may be a file) or JSON, into
//! raw field bytes. Nothing here judges the values; that is validation's job.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use crate::error::ApiError;
use crate::signup::RawForm;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    UrlEncoded,
    Multipart,
    Json,
}

pub fn kind_of(req: &HttpRequest) -> Result<BodyKind, ApiError> {
    let unsupported = |what: &str| {
        ApiError::UnsupportedMediaType(format!(
            "{what}; send application/x-www-form-urlencoded, multipart/form-data or application/json"
        ))
    };
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
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
        BodyKind::Multipart => parse_multipart(req, body).await,
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
            return Err(RawForm::duplicate(&name));
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

async fn parse_multipart(req: &HttpRequest, body: web::Bytes) -> Result<RawForm, ApiError> {
    let malformed = |e: actix_multipart::MultipartError| {
        ApiError::bad_request(
            "malformed_body",
            format!("the multipart body is malformed: {e}"),
        )
    };
    let stream =
        futures_util::stream::once(async move { Ok::<_, actix_web::error::PayloadError>(body) });
    let mut multipart = actix_multipart::Multipart::new(req.headers(), stream);
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
}
