//! Hostile clients: what an attacker can send to the public endpoints, each with the answer it
//! must get. Every answer is a 4xx with a precise JSON error; nothing is stored.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;

/// Writes `head` (and `body`, one byte every `pause`) on a raw connection and returns what the
/// server answers, until it closes the connection or sends a whole JSON error.
async fn raw_exchange(app: &TestApp, head: &str, body: &[u8], pause: Duration) -> String {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let body = body.to_vec();
    let trickle = tokio::spawn(async move {
        for byte in body {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(pause).await;
        }
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    // A guard against a hang, not a timing assertion: the answer is checked, not its time.
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buffer[..n]);
                    if answer.ends_with(b"}}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    trickle.abort();
    assert!(
        read.is_ok(),
        "the server neither answered nor closed the connection"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_body_sent_too_slowly_gets_408_and_stores_nothing() {
    let app = TestApp::spawn_with(|s| s.server.body_timeout_secs = 1).await;
    let head = "POST /signup HTTP/1.1\r\nHost: berth\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n";
    let answer = raw_exchange(&app, head, &[b'x'; 1000], Duration::from_millis(500)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert_eq!(app.count_sites().await, 0);
}

/// A raw connection that has sent `head` and is waiting.
async fn open_with(app: &TestApp, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// What the server answers on `stream` before it closes it.
async fn answer_of(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the server neither answered nor closed the connection"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn a_client_address_holds_at_most_max_connections_per_ip() {
    let app = TestApp::spawn_with(|s| s.server.max_connections_per_ip = 2).await;
    // Two slow clients: headers sent, the body never comes. Each waits until berth has taken
    // its connection (and asks for the body with 100 Continue).
    let slow = "POST /signup HTTP/1.1\r\nHost: berth\r\nExpect: 100-continue\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = open_with(&app, slow).await;
        let mut buffer = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("berth asks for the body")
            .unwrap();
        let answer = String::from_utf8_lossy(&buffer[..n]);
        assert!(answer.starts_with("HTTP/1.1 100 Continue"), "{answer}");
        held.push(stream);
    }
    // A third connection from the same address is closed at once, unanswered.
    let mut third = open_with(&app, HEALTHZ).await;
    assert_eq!(answer_of(&mut third).await, "", "refused without an answer");
    // When one of them goes, the address may connect again.
    drop(held.pop());
    crate::helpers::eventually(10, "a connection to be admitted again", || async {
        let mut again = open_with(&app, HEALTHZ).await;
        answer_of(&mut again)
            .await
            .starts_with("HTTP/1.1 200")
            .then_some(())
    })
    .await;
}

/// One attack on a public endpoint and the answer it must get.
struct Attack {
    why: &'static str,
    method: reqwest::Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn attack(why: &'static str, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Attack {
    Attack {
        why,
        method: reqwest::Method::POST,
        path: path.to_owned(),
        headers: vec![("content-type", content_type.to_owned())],
        body: body.into(),
        status: 0,
        code: "",
    }
}

impl Attack {
    fn answer(self, status: u16, code: &'static str) -> Self {
        Self {
            status,
            code,
            ..self
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn with_method(mut self, method: reqwest::Method) -> Self {
        self.method = method;
        self
    }
}

/// Sends every attack and checks each answer: status, a JSON error with the code, never a 5xx.
async fn expect_answers(app: &TestApp, attacks: Vec<Attack>) {
    for attack in attacks {
        let mut request = app
            .client
            .request(attack.method.clone(), app.url(&attack.path))
            .body(attack.body.clone());
        for (name, value) in &attack.headers {
            request = request.header(*name, value.as_str());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, attack.status, "{}: {text}", attack.why);
        let body: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{}: the error is not JSON: {text}", attack.why));
        assert_eq!(body["error"]["code"], attack.code, "{}: {text}", attack.why);
        assert!(
            !body["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{}: the error says nothing",
            attack.why
        );
    }
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

#[tokio::test]
async fn attacks_on_signup_get_a_precise_4xx_and_store_nothing() {
    let app = TestApp::spawn().await;
    let multipart = "multipart/form-data; boundary=XyZw";
    let part = |name: &str, value: &str| {
        format!("--XyZw\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
    };
    let whole = format!(
        "{}{}{}",
        part("name", "multi-shop"),
        part("email", "a@b.co"),
        part("html", "x")
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let attacks = vec![
        attack(
            "a multipart body cut before its closing boundary (it used to hang)",
            "/signup",
            multipart,
            whole.clone(),
        )
        .answer(400, "malformed_body"),
        attack(
            "the same field twice in multipart",
            "/signup",
            multipart,
            format!("{whole}{}--XyZw--\r\n", part("name", "evil")),
        )
        .answer(400, "duplicate_field"),
        attack(
            "the same key twice in JSON",
            "/signup",
            JSON,
            r#"{"name":"abc","email":"a@b.co","html":"x","name":"evil"}"#,
        )
        .answer(400, "duplicate_field"),
        attack(
            "the same key twice in JSON, the first null",
            "/signup",
            JSON,
            r#"{"name":null,"email":"a@b.co","html":"x","name":"evil"}"#,
        )
        .answer(400, "duplicate_field"),
        attack(
            "a JSON object where a string belongs",
            "/signup",
            JSON,
            r#"{"name":{"$ne":""},"email":"a@b.co","html":"x"}"#,
        )
        .answer(400, "malformed_body"),
        attack("JSON nested ten thousand deep", "/signup", JSON, deep)
            .answer(400, "malformed_body"),
        attack("a top-level JSON null", "/signup", JSON, "null").answer(400, "malformed_body"),
        attack("an empty JSON object", "/signup", JSON, "{}").answer(400, "missing_field"),
        attack(
            "a body over the limit",
            "/signup",
            FORM,
            format!("name=abc&email=a%40b.co&html={}", "x".repeat(200 * 1024)),
        )
        .answer(413, "payload_too_large"),
        attack(
            "a content type berth does not read",
            "/signup",
            "text/plain",
            "name=abc",
        )
        .answer(415, "unsupported_media_type"),
        attack("no content type at all", "/signup", "", "name=abc")
            .answer(415, "unsupported_media_type"),
        attack(
            "a Cyrillic letter in the name",
            "/signup",
            FORM,
            "name=p%D0%B0ypal&email=a%40b.co&html=x",
        )
        .answer(422, "invalid_fields"),
        attack(
            "a NUL in the name",
            "/signup",
            FORM,
            "name=ab%00c&email=a%40b.co&html=x",
        )
        .answer(422, "invalid_fields"),
        attack(
            "a 64-character name",
            "/signup",
            FORM,
            format!("name=a{}&email=a%40b.co&html=x", "b".repeat(63)),
        )
        .answer(422, "invalid_fields"),
        attack(
            "a header injected through the email",
            "/signup",
            FORM,
            "name=abc&email=a%40b.co%0D%0ABcc%3A+x%40y.z&html=x",
        )
        .answer(422, "invalid_fields"),
        attack(
            "a quoted email the mailer cannot send to",
            "/signup",
            JSON,
            r#"{"name":"abc","email":"\"a b\"@example.com","html":"x"}"#,
        )
        .answer(422, "invalid_fields"),
        attack(
            "an email of 100 KB",
            "/signup",
            FORM,
            format!("name=abc&email={}%40b.co&html=x", "a".repeat(100_000)),
        )
        .answer(422, "invalid_fields"),
        attack(
            "HTML that is not UTF-8",
            "/signup",
            FORM,
            "name=abc&email=a%40b.co&html=%FF%FE",
        )
        .answer(422, "invalid_fields"),
        attack(
            "HTML with a NUL byte",
            "/signup",
            FORM,
            "name=abc&email=a%40b.co&html=a%00b",
        )
        .answer(422, "invalid_fields"),
        attack(
            "a plan the tenant does not sell",
            "/signup",
            FORM,
            "name=abc&email=a%40b.co&html=x&plan=enterprise",
        )
        .answer(422, "invalid_fields"),
        attack(
            "a reserved name",
            "/signup",
            FORM,
            "name=admin&email=a%40b.co&html=x",
        )
        .answer(422, "invalid_fields"),
        attack(
            "a tenant that does not exist",
            "/t/nobody/signup",
            FORM,
            "name=abc&email=a%40b.co&html=x",
        )
        .answer(404, "unknown_tenant"),
        attack(
            "a tenant name that climbs out of its path",
            "/t/..%2Fadmin/signup",
            FORM,
            "name=abc&email=a%40b.co&html=x",
        )
        .answer(404, "unknown_tenant"),
    ];
    expect_answers(&app, attacks).await;
    assert_eq!(app.count_sites().await, 0, "nothing was stored");
}

#[tokio::test]
async fn attacks_on_the_stripe_webhook_get_a_400_and_store_nothing() {
    use crate::helpers::{ACME_STRIPE_SECRET, STRIPE_SECRET};
    use berth::services::stripe::signature::sign;

    let app = TestApp::spawn().await;
    let now = berth::adapters::db::now_ms() / 1000;
    let event = r#"{"id":"evt_attack","object":"event","type":"invoice.paid","created":1700000000,"livemode":false,"data":{"object":{"id":"in_1","object":"invoice"}}}"#;
    let good = sign(event.as_bytes(), STRIPE_SECRET, now);
    let v1 = good.split_once("v1=").unwrap().1.to_owned();
    let stripe = |why, body: &str| attack(why, "/webhooks/stripe", JSON, body.to_owned());
    let attacks = vec![
        stripe("no signature", event).answer(400, "missing_signature"),
        stripe("two signature headers", event)
            .header("stripe-signature", good.clone())
            .header("stripe-signature", good.clone())
            .answer(400, "malformed_signature"),
        stripe("seventeen v1 signatures", event)
            .header(
                "stripe-signature",
                format!("t={now}{}", format!(",v1={v1}").repeat(17)),
            )
            .answer(400, "malformed_signature"),
        stripe("a signature header that is not ASCII", event)
            .header("stripe-signature", format!("t={now},v1=é{}", &v1[2..]))
            .answer(400, "malformed_signature"),
        stripe("only a v0 signature", event)
            .header("stripe-signature", format!("t={now},v0={v1}"))
            .answer(400, "no_v1_signature"),
        stripe("another tenant's secret", event)
            .header(
                "stripe-signature",
                sign(event.as_bytes(), ACME_STRIPE_SECRET, now),
            )
            .answer(400, "invalid_signature"),
        stripe("a signature replayed an hour later", event)
            .header(
                "stripe-signature",
                sign(event.as_bytes(), STRIPE_SECRET, now - 3600),
            )
            .answer(400, "timestamp_out_of_tolerance"),
        stripe("a body over 1 MiB", &"x".repeat(1024 * 1024 + 1))
            .header("stripe-signature", good.clone())
            .answer(413, "payload_too_large"),
        stripe("a signed body that is not an event", "[1,2,3]")
            .header("stripe-signature", sign(b"[1,2,3]", STRIPE_SECRET, now))
            .answer(400, "malformed_event"),
    ];
    expect_answers(&app, attacks).await;
    let events = app
        .admin(
            reqwest::Method::GET,
            "/admin/events",
            crate::helpers::ADMIN_TOKEN,
        )
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(
        events["events"],
        serde_json::json!([]),
        "nothing was stored"
    );
}

#[tokio::test]
async fn attacks_on_the_admin_api_and_status_pages_get_401_403_or_404() {
    use crate::helpers::{ACME_TOKEN, ADMIN_TOKEN};

    let app = TestApp::spawn().await;
    let site = app.signup("real-shop").await;
    let id = site["id"].as_str().unwrap().to_owned();
    let get = |why, path: &str| attack(why, path, JSON, "").with_method(reqwest::Method::GET);
    let attacks = vec![
        get("no token", "/admin/sites").answer(401, "unauthorized"),
        get("an empty bearer token", "/admin/sites")
            .header("authorization", "Bearer ")
            .answer(401, "unauthorized"),
        get("the token as Basic credentials", "/admin/sites")
            .header("authorization", format!("Basic {ADMIN_TOKEN}"))
            .answer(401, "unauthorized"),
        get("a lowercase scheme", "/admin/sites")
            .header("authorization", format!("bearer {ADMIN_TOKEN}"))
            .answer(401, "unauthorized"),
        get("a prefix of the token", "/admin/sites")
            .header(
                "authorization",
                format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]),
            )
            .answer(401, "unauthorized"),
        get("the token and one more character", "/admin/sites")
            .header("authorization", format!("Bearer {ADMIN_TOKEN}x"))
            .answer(401, "unauthorized"),
        get(
            "a tenant token on another tenant's site",
            &format!("/admin/sites/{id}"),
        )
        .header("authorization", format!("Bearer {ACME_TOKEN}"))
        .answer(403, "forbidden"),
        get(
            "a tenant token on another tenant's plugins",
            "/admin/t/default/plugins",
        )
        .header("authorization", format!("Bearer {ACME_TOKEN}"))
        .answer(403, "forbidden"),
        get(
            "a tenant token on a tenant that does not exist",
            "/admin/t/ghost/plugins",
        )
        .header("authorization", format!("Bearer {ACME_TOKEN}"))
        .answer(403, "forbidden"),
        get("a tenant token on the global jobs", "/admin/jobs")
            .header("authorization", format!("Bearer {ACME_TOKEN}"))
            .answer(403, "forbidden"),
        get(
            "another tenant's site on the status page",
            &format!("/t/acme/sites/{id}"),
        )
        .header("accept", JSON)
        .answer(404, "site_not_found"),
        get(
            "a site id that is not one",
            "/t/default/sites/..%2F..%2Fetc%2Fpasswd",
        )
        .header("accept", JSON)
        .answer(404, "site_not_found"),
        attack(
            "a module that is not wasm",
            "/admin/t/default/plugins/evil",
            "application/wasm",
            "not wasm",
        )
        .with_method(reqwest::Method::PUT)
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .answer(400, "module_refused"),
    ];
    expect_answers(&app, attacks).await;
}
