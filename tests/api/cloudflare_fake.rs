//! A Cloudflare API v4 fake on loopback (wiremock) for one zone's DNS records, shared by the
//! provider's unit tests (`src/adapters/dns/cloudflare/tests.rs`) and the end-to-end tests.
//!
//! It answers as the documented API does: bodies are the envelope
//! `{success, errors: [{code, message}], messages, result, result_info}`; only
//! `Authorization: Bearer <token>` is accepted (`403`, code 10000 otherwise); lists filter by
//! exact `name` (case-insensitive) and `type` and page with `page`/`per_page` (capped by
//! [`CloudflareFake::max_per_page`] so paging can be exercised); creates enforce the record
//! rules (a CNAME shares its name with nothing: 81053; an identical record: 81058) and the
//! 100-character comment limit of free zones; a delete answers `{"result": {"id"}}` alone, as
//! documented; updates and deletes of an unknown id get `404` with 81044. Canned answers queued with [`CloudflareFake::fail_next`] are served first, one per
//! request, for `429` and `5xx` sequences. Every request is kept for the tests to check.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const PREFIX: &str = "/client/v4";

pub struct CloudflareFake {
    server: MockServer,
    state: Arc<Mutex<State>>,
    pub zone_id: String,
    pub token: String,
}

#[derive(Default)]
struct State {
    records: Vec<Value>,
    next_id: u64,
    canned: VecDeque<ResponseTemplate>,
    max_per_page: usize,
}

impl CloudflareFake {
    pub async fn start(zone_id: &str, token: &str) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State {
            max_per_page: 5_000,
            ..State::default()
        }));
        Mock::given(any())
            .respond_with(Responder {
                state: state.clone(),
                zone_id: zone_id.to_owned(),
                token: token.to_owned(),
            })
            .mount(&server)
            .await;
        Self {
            server,
            state,
            zone_id: zone_id.to_owned(),
            token: token.to_owned(),
        }
    }

    /// What `dns.api_base` should be.
    pub fn api_base(&self) -> String {
        format!("{}{PREFIX}", self.server.uri())
    }

    /// Caps `per_page`, as a smaller page size than berth asks for.
    pub fn max_per_page(&self, n: usize) {
        self.state.lock().unwrap().max_per_page = n.max(1);
    }

    /// A record that exists before the test starts; returns its id.
    pub fn add(&self, kind: &str, name: &str, content: &str, comment: Option<&str>) -> String {
        let mut state = self.state.lock().unwrap();
        let body = json!({"type": kind, "name": name, "content": content, "comment": comment, "proxied": false, "ttl": 300});
        state.insert(&body)["id"].as_str().unwrap().to_owned()
    }

    /// The zone's records now.
    pub fn records(&self) -> Vec<Value> {
        self.state.lock().unwrap().records.clone()
    }

    /// Serves `response` to the next request that has no canned answer before it.
    pub fn fail_next(&self, response: ResponseTemplate) {
        self.state.lock().unwrap().canned.push_back(response);
    }

    /// Every request received, in order.
    pub async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }

    /// Every request as `METHOD /path?query` without the API prefix, in order.
    pub async fn calls(&self) -> Vec<String> {
        self.requests()
            .await
            .iter()
            .map(|r| {
                let path = r.url.path().strip_prefix(PREFIX).unwrap_or(r.url.path());
                match r.url.query() {
                    Some(q) => format!("{} {path}?{q}", r.method),
                    None => format!("{} {path}", r.method),
                }
            })
            .collect()
    }

    /// The JSON bodies of the requests with `method`, in order.
    pub async fn bodies(&self, method: &str) -> Vec<Value> {
        self.requests()
            .await
            .iter()
            .filter(|r| r.method.as_str() == method)
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

/// The API v4 envelope of a failure.
pub fn failure(status: u16, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "success": false,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": null,
    }))
}

fn success(status: u16, result: Value, result_info: Option<Value>) -> ResponseTemplate {
    let mut body = json!({"success": true, "errors": [], "messages": [], "result": result});
    if let Some(info) = result_info {
        body["result_info"] = info;
    }
    ResponseTemplate::new(status).set_body_json(body)
}

struct Responder {
    state: Arc<Mutex<State>>,
    zone_id: String,
    token: String,
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().unwrap();
        if let Some(canned) = state.canned.pop_front() {
            return canned;
        }
        let wanted = format!("Bearer {}", self.token);
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some(wanted.as_str()) {
            return failure(403, 10000, "Authentication error");
        }
        let records = format!("{PREFIX}/zones/{}/dns_records", self.zone_id);
        let path = request.url.path();
        let method = request.method.as_str();
        if path == records {
            return match method {
                "GET" => state.list(request),
                "POST" => state.create(request),
                _ => failure(405, 10405, "Method not allowed"),
            };
        }
        let Some(id) = path.strip_prefix(&format!("{records}/")) else {
            return failure(
                404,
                7003,
                &format!("Could not route to {path}, perhaps your object identifier is invalid?"),
            );
        };
        match method {
            "PATCH" => state.patch(id, request),
            "DELETE" => state.delete(id),
            "GET" => match state.find(id) {
                Some(i) => success(200, state.records[i].clone(), None),
                None => failure(404, 81044, "Record does not exist."),
            },
            _ => failure(405, 10405, "Method not allowed"),
        }
    }
}

impl State {
    fn find(&self, id: &str) -> Option<usize> {
        self.records.iter().position(|r| r["id"] == id)
    }

    fn insert(&mut self, body: &Value) -> Value {
        self.next_id += 1;
        let record = json!({
            "id": format!("{:032x}", self.next_id),
            "type": body["type"],
            "name": body["name"].as_str().unwrap_or_default().to_ascii_lowercase(),
            "content": body["content"],
            "proxiable": true,
            "proxied": body.get("proxied").cloned().unwrap_or(json!(false)),
            "ttl": body.get("ttl").cloned().unwrap_or(json!(1)),
            "comment": body.get("comment").cloned().unwrap_or(Value::Null),
            "tags": [],
            "meta": {},
            "created_on": "2026-01-01T00:00:00Z",
            "modified_on": "2026-01-01T00:00:00Z",
        });
        self.records.push(record.clone());
        record
    }

    fn list(&self, request: &Request) -> ResponseTemplate {
        let param = |key: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let name = param("name").map(|n| n.to_ascii_lowercase());
        let kind = param("type");
        let page: usize = param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let per_page: usize = param("per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(100)
            .min(self.max_per_page);
        let matching: Vec<&Value> = self
            .records
            .iter()
            .filter(|r| name.as_deref().is_none_or(|n| r["name"] == n))
            .filter(|r| kind.as_deref().is_none_or(|k| r["type"] == k))
            .collect();
        let total = matching.len();
        let result: Vec<Value> = matching
            .into_iter()
            .skip((page.max(1) - 1) * per_page)
            .take(per_page)
            .cloned()
            .collect();
        let info = json!({
            "page": page,
            "per_page": per_page,
            "count": result.len(),
            "total_count": total,
            "total_pages": total.div_ceil(per_page).max(1),
        });
        success(200, Value::Array(result), Some(info))
    }

    fn create(&mut self, request: &Request) -> ResponseTemplate {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return failure(400, 9207, "Request body is invalid.");
        };
        let (Some(kind), Some(name), Some(content)) = (
            body["type"].as_str(),
            body["name"].as_str(),
            body["content"].as_str(),
        ) else {
            return failure(400, 9005, "DNS record type, name and content are required.");
        };
        if body["comment"].as_str().is_some_and(|c| c.len() > 100) {
            return failure(
                400,
                9999,
                "DNS record comment is longer than 100 characters.",
            );
        }
        let name = name.to_ascii_lowercase();
        let at_name: Vec<&Value> = self.records.iter().filter(|r| r["name"] == name).collect();
        if at_name
            .iter()
            .any(|r| r["type"] == kind && r["content"] == content)
        {
            return failure(400, 81058, "An identical record already exists.");
        }
        let clash = at_name
            .iter()
            .any(|r| kind == "CNAME" || r["type"] == "CNAME");
        if clash {
            return failure(
                400,
                81053,
                "An A, AAAA, or CNAME record with that host already exists.",
            );
        }
        success(200, self.insert(&body), None)
    }

    fn patch(&mut self, id: &str, request: &Request) -> ResponseTemplate {
        let Some(i) = self.find(id) else {
            return failure(404, 81044, "Record does not exist.");
        };
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&request.body) else {
            return failure(400, 9207, "Request body is invalid.");
        };
        for (key, value) in body {
            self.records[i][key.as_str()] = value;
        }
        success(200, self.records[i].clone(), None)
    }

    fn delete(&mut self, id: &str) -> ResponseTemplate {
        match self.find(id) {
            Some(i) => {
                self.records.remove(i);
                // As documented: the deleted id, and nothing else.
                ResponseTemplate::new(200).set_body_json(json!({"result": {"id": id}}))
            }
            None => failure(404, 81044, "Record does not exist."),
        }
    }
}
