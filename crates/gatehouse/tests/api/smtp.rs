//! Invitations delivered over SMTP to a real SMTP server (aiosmtpd, storing a Maildir): in
//! plaintext only when configured `none_insecure`, otherwise over STARTTLS (the default) or
//! implicit TLS, with the relay's certificate verified. The TLS relays are
//! `tests/peers/smtp-tls.py`, which also records what clients send in plaintext.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gatehouse::config::{Config, SmtpTls, Transport};
use serde_json::json;

use crate::common::{Backend, TestApp, spawn_app_with, start_peer, venv_tool};

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
        c.messages.transport = Transport::Smtp;
        // This relay speaks plaintext only: it takes the explicit, named setting.
        c.messages.smtp_tls = SmtpTls::NoneInsecure;
        c.messages.smtp_port = Some(port);
        c.messages.from = "Acme <no-reply@acme.example>".into();
    })
    .await;
    let admin = acme_admin(&app).await;
    assert_eq!(invite_bob(&app, &admin).await, 201);

    let mail = wait_for_mail(&maildir.path().join("mail")).await;
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

const RELAY_USER: &str = "gatehouse-relay";
const RELAY_PASSWORD: &str = "relay-secret-6fd1c2";

/// `tests/peers/smtp-tls.py`: a relay requiring AUTH with [`RELAY_USER`] and
/// [`RELAY_PASSWORD`], and TLS as `mode` says.
struct Relay {
    port: u16,
    ca: PathBuf,
    maildir: PathBuf,
    transcript: PathBuf,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Relay {
    async fn start(mode: &str) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let maildir = dir.path().join("mail");
        let transcript = dir.path().join("plaintext");
        let mut cmd = tokio::process::Command::new(venv_tool("python3"));
        cmd.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/smtp-tls.py"))
            .args([
                "--tls",
                mode,
                "--user",
                RELAY_USER,
                "--password",
                RELAY_PASSWORD,
            ])
            .arg("--ca-out")
            .arg(&ca)
            .arg("--maildir")
            .arg(&maildir)
            .arg("--transcript")
            .arg(&transcript);
        let (child, line) = start_peer(cmd, "relay").await;
        let port = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("the relay did not start: {line:?}"))
            .parse()
            .unwrap();
        Relay {
            port,
            ca,
            maildir,
            transcript,
            _child: child,
            _dir: dir,
        }
    }

    /// Gatehouse configured for this relay, with its credentials.
    fn configure(&self, c: &mut Config) {
        c.messages.transport = Transport::Smtp;
        c.messages.smtp_host = "127.0.0.1".into();
        c.messages.smtp_port = Some(self.port);
        c.messages.smtp_username = Some(RELAY_USER.into());
        c.messages.smtp_password = Some(RELAY_PASSWORD.into());
        c.messages.from = "Acme <no-reply@acme.example>".into();
    }

    /// Everything clients sent the relay in plaintext so far.
    fn plaintext(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.transcript).unwrap()).into_owned()
    }

    fn mail_count(&self) -> usize {
        std::fs::read_dir(self.maildir.join("new")).map_or(0, |d| d.count())
    }
}

async fn acme_admin(app: &TestApp) -> String {
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    let client = app.create_client("acme", &[]).await;
    app.sign_in("acme", &client, "ada", "ada-password-123")
        .await
}

/// Creates bob, which sends his invitation (before he is stored); the response status.
async fn invite_bob(app: &TestApp, admin: &str) -> u16 {
    app.http
        .post(app.pool_url("acme", "/api/user-management/users"))
        .bearer_auth(admin)
        .json(&json!({"username": "bob", "attributes": {
            "email": "bob@acme.example", "name": "Bob", "roles": []}}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn bob_status(app: &TestApp, admin: &str) -> u16 {
    app.http
        .get(app.pool_url("acme", "/api/user-management/users/bob"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn wait_for_mail(maildir: &Path) -> String {
    let new = maildir.join("new");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = std::fs::read_dir(&new)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| std::fs::read_to_string(e.path()).unwrap());
        if let Some(m) = found {
            return m;
        }
        assert!(Instant::now() < deadline, "no mail arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_invitation(mail: &str) {
    assert!(mail.contains("To: bob@acme.example"), "{mail}");
    assert!(
        mail.contains("Your username is bob and temporary password is "),
        "{mail}"
    );
}

/// Nothing but `EHLO` and `STARTTLS` crossed the network in clear: no AUTH (the relay
/// password), no envelope, no message.
fn assert_only_the_upgrade_in_clear(relay: &Relay) {
    let clear = relay.plaintext();
    let commands: Vec<String> = clear
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_ascii_uppercase)
        .collect();
    assert_eq!(commands, ["EHLO", "STARTTLS"], "{clear:?}");
    assert!(!clear.contains("temporary password"), "{clear:?}");
}

#[tokio::test]
async fn invitations_go_over_starttls_with_auth_to_a_relay_whose_ca_is_trusted() {
    let relay = Relay::start("starttls").await;
    let app = spawn_app_with(Backend::Sqlite, |c| {
        relay.configure(c);
        // The default mode, left unset; the relay's CA comes from the extra CA file.
        assert_eq!(c.messages.smtp_tls, SmtpTls::Starttls);
        c.messages.smtp_ca_file = Some(relay.ca.clone());
    })
    .await;
    let admin = acme_admin(&app).await;
    // The relay accepts MAIL only after AUTH, and AUTH only after STARTTLS.
    assert_eq!(invite_bob(&app, &admin).await, 201);
    assert_invitation(&wait_for_mail(&relay.maildir).await);
    assert_only_the_upgrade_in_clear(&relay);
}

#[tokio::test]
async fn an_untrusted_relay_certificate_stops_delivery_and_the_user() {
    let relay = Relay::start("starttls").await;
    // The system's roots only: the relay's throwaway CA is not among them.
    let app = spawn_app_with(Backend::Sqlite, |c| relay.configure(c)).await;
    let admin = acme_admin(&app).await;
    assert_eq!(invite_bob(&app, &admin).await, 500);
    // Delivery comes before the user is stored: no user, no mail, nothing sent but STARTTLS.
    assert_eq!(bob_status(&app, &admin).await, 404);
    assert_eq!(relay.mail_count(), 0);
    assert_only_the_upgrade_in_clear(&relay);
}

#[tokio::test]
async fn invitations_go_over_implicit_tls() {
    let relay = Relay::start("implicit").await;
    let app = spawn_app_with(Backend::Sqlite, |c| {
        relay.configure(c);
        c.messages.smtp_tls = SmtpTls::Implicit;
        c.messages.smtp_ca_file = Some(relay.ca.clone());
    })
    .await;
    let admin = acme_admin(&app).await;
    assert_eq!(invite_bob(&app, &admin).await, 201);
    assert_invitation(&wait_for_mail(&relay.maildir).await);
}

#[tokio::test]
async fn a_plaintext_relay_is_refused_unless_none_insecure_is_chosen() {
    let relay = Relay::start("none").await;

    // The default (STARTTLS required): the relay offers no STARTTLS, so nothing is sent, the
    // relay credentials least of all, though the relay offers AUTH in clear.
    let app = spawn_app_with(Backend::Sqlite, |c| relay.configure(c)).await;
    let admin = acme_admin(&app).await;
    assert_eq!(invite_bob(&app, &admin).await, 500);
    assert_eq!(bob_status(&app, &admin).await, 404);
    assert_eq!(relay.mail_count(), 0);
    let clear = relay.plaintext();
    assert!(clear.to_ascii_uppercase().starts_with("EHLO "), "{clear:?}");
    assert!(!clear.to_ascii_uppercase().contains("AUTH"), "{clear:?}");
    assert!(!clear.contains("MAIL FROM"), "{clear:?}");

    // Chosen by name, plaintext works, and is plaintext: AUTH and the message in clear.
    let app = spawn_app_with(Backend::Sqlite, |c| {
        relay.configure(c);
        c.messages.smtp_tls = SmtpTls::NoneInsecure;
    })
    .await;
    let admin = acme_admin(&app).await;
    assert_eq!(invite_bob(&app, &admin).await, 201);
    assert_invitation(&wait_for_mail(&relay.maildir).await);
    let clear = relay.plaintext();
    assert!(clear.contains("AUTH PLAIN "), "{clear:?}");
    assert!(clear.contains("temporary password"), "{clear:?}");
}
