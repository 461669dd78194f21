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
