use berth::configuration::EmailTransport;
use berth::domain::Secret;

use crate::helpers::TestApp;
use crate::smtp_server::SmtpServer;

#[tokio::test]
async fn the_readiness_email_goes_through_a_real_smtp_server() {
    let mut smtp = SmtpServer::new();
    smtp.start();
    let url = smtp.url();
    let app = TestApp::spawn_with(|s| {
        s.email.transport = EmailTransport::Smtp;
        s.email.smtp_url = Secret::new(url);
    })
    .await;
    let site = app.signup("smtp-shop").await;
    let id = site["id"].as_str().unwrap();
    app.drain_jobs().await;
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].contains(&format!("Message-ID: <site_ready.{id}@localhost>")),
        "{}",
        messages[0]
    );
    assert!(messages[0].contains("Subject: Your site smtp-shop is live"));
}

#[tokio::test]
async fn an_email_to_a_server_that_is_down_arrives_exactly_once_after_it_comes_back() {
    let mut smtp = SmtpServer::new();
    let url = smtp.url();
    let app = TestApp::spawn_with(|s| {
        s.email.transport = EmailTransport::Smtp;
        s.email.smtp_url = Secret::new(url);
        s.email.timeout_secs = 5;
        s.jobs.base_delay_secs = 1;
        s.jobs.max_attempts = 10;
    })
    .await;
    let site = app.signup("late-mail").await;
    let id = site["id"].as_str().unwrap();
    // Provision succeeds, the email attempt fails and is scheduled for later.
    assert_eq!(app.drain_jobs().await, 2);
    assert_eq!(app.status("default", id).await["state"], "ready");
    assert!(smtp.messages().is_empty());

    smtp.start();
    crate::helpers::eventually(30, "the email to arrive", || async {
        app.drain_jobs().await;
        (!smtp.messages().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    app.drain_jobs().await;
    assert_eq!(smtp.messages().len(), 1, "exactly one email");
}
