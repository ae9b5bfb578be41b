//! Invitations delivered over SMTP to a real SMTP server (aiosmtpd, storing a Maildir).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Backend, spawn_app_with, venv_tool};

struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn invitations_are_sent_through_smtp() {
    let maildir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _sink = Sink(
        Command::new(venv_tool("python3"))
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (pip install -r tests/peers/requirements.txt)"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the SMTP server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.messages.transport = gatehouse::config::Transport::Smtp;
        c.messages.smtp_port = port;
        c.messages.from = "Acme <no-reply@acme.example>".into();
    })
    .await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    let client = app.create_client("acme", &[]).await;
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/users"))
        .bearer_auth(&admin)
        .json(&json!({"username": "bob", "attributes": {
            "email": "bob@acme.example", "name": "Bob", "roles": []}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let new = maildir.path().join("mail").join("new");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mail = loop {
        let found = std::fs::read_dir(&new)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| std::fs::read_to_string(e.path()).unwrap());
        if let Some(m) = found {
            break m;
        }
        assert!(Instant::now() < deadline, "no mail arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(mail.contains("To: bob@acme.example"), "{mail}");
    assert!(
        mail.contains("From: Acme <no-reply@acme.example>"),
        "{mail}"
    );
    assert!(
        mail.contains("Your username is bob and temporary password is "),
        "{mail}"
    );
}
