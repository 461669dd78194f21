//! Reading requests and writing responses the same way in every route: content negotiation,
//! bounded bodies, JSON answers.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::routes::error::ApiError;
use crate::routes::state::AppState;

/// True when the client would rather have HTML than JSON (a browser).
pub fn prefers_html(req: &HttpRequest) -> bool {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let quality = |wanted: &str| -> f32 {
        accept
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.split(';').map(str::trim);
                let media = pieces.next()?;
                let q = pieces
                    .find_map(|p| p.strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (media.eq_ignore_ascii_case(wanted)).then_some(q)
            })
            .fold(0.0, f32::max)
    };
    let html = quality("text/html");
    html > 0.0 && html >= quality("application/json")
}

/// Reads the whole body, refusing (413) anything over `limit` bytes before buffering it, and
/// (408) a body that takes longer than `server.body_timeout_secs` to arrive.
pub async fn read_limited(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let secs = req
        .app_data::<web::Data<AppState>>()
        .map_or(30, |state| state.settings.get().server.body_timeout_secs);
    tokio::time::timeout(
        std::time::Duration::from_secs(secs),
        read_body(req, payload, limit),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ApiError::RequestTimeout(format!(
            "the request body did not arrive within {secs} s"
        )))
    })
}

async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let too_large =
        || ApiError::PayloadTooLarge(format!("the request body is larger than {limit} bytes"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                "malformed_body",
                format!("cannot read the request body: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub fn json_ok<T: serde::Serialize>(status: actix_web::http::StatusCode, body: &T) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn browsers_prefer_html_and_api_clients_json() {
        let browser = TestRequest::default()
            .insert_header((
                header::ACCEPT,
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ))
            .to_http_request();
        assert!(prefers_html(&browser));
        let api = TestRequest::default()
            .insert_header((header::ACCEPT, "application/json"))
            .to_http_request();
        assert!(!prefers_html(&api));
        let both = TestRequest::default()
            .insert_header((header::ACCEPT, "text/html;q=0.5, application/json"))
            .to_http_request();
        assert!(!prefers_html(&both));
        assert!(!prefers_html(&TestRequest::default().to_http_request()));
    }
}
