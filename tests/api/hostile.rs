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
