//! Delivery of messages to users (temporary passwords, verification codes): SMTP in
//! production, a file outbox for development and tests.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Invitation,
    PasswordReset,
    AttributeVerification,
    /// A notice of something done with the account (a recovery code used).
    SecurityNotice,
    /// A one-time code to sign in with (`EMAIL_OTP`).
    SignInCode,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboundMessage {
    pub kind: MessageKind,
    pub pool: String,
    pub username: String,
    pub to_email: Option<String>,
    pub to_phone: Option<String>,
    pub subject: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
#[error("message delivery failed: {0}")]
pub struct MessageError(pub String);

#[async_trait]
pub trait MessageTransport: Send + Sync + 'static {
    async fn send(&self, message: &OutboundMessage) -> Result<(), MessageError>;
}

/// Appends each message as one JSON line to `outbox.jsonl` in a folder. For development: the
/// messages hold live credentials, so the folder must be private.
#[derive(Debug)]
pub struct FileOutbox {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileOutbox {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            path: dir.into().join("outbox.jsonl"),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

#[async_trait]
impl MessageTransport for FileOutbox {
    async fn send(&self, message: &OutboundMessage) -> Result<(), MessageError> {
        let mut line = serde_json::to_vec(message).map_err(|e| MessageError(e.to_string()))?;
        line.push(b'\n');
        let _guard = self.lock.lock().await;
        // Private to this user: the folder 0700 and the file 0600 when they are created.
        if let Some(dir) = self.path.parent() {
            tokio::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .await
                .map_err(|e| MessageError(e.to_string()))?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .await
            .map_err(|e| MessageError(e.to_string()))?;
        file.write_all(&line)
            .await
            .map_err(|e| MessageError(e.to_string()))?;
        file.flush().await.map_err(|e| MessageError(e.to_string()))
    }
}

/// Sends e-mail through an SMTP relay. Messages for users without an e-mail address are
/// refused (no SMS gateway is configured).
pub struct SmtpTransport {
    mailer: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// How the connection to the relay is protected. Both TLS modes verify the relay's
/// certificate for `host` against the system's roots (and an optional extra CA); Gatehouse
/// sends nothing before the handshake but `EHLO` and `STARTTLS`, AUTH least of all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Connect in plaintext, then require `STARTTLS`: a relay that does not offer it is an
    /// error, never a fallback to plaintext. Port 587 by default (submission).
    StartTls,
    /// TLS from the first byte ("SMTPS"). Port 465 by default.
    Implicit,
    /// No TLS at all: messages (temporary passwords) and the relay credentials cross the
    /// network in clear. Port 25 by default.
    NoneInsecure,
}

impl SmtpTls {
    /// The usual port for the mode.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::NoneInsecure => 25,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// A PEM file of CA certificates trusted in addition to the system's (a private relay).
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
}

impl SmtpTransport {
    /// A transport to the relay at `settings.host`, protected as `settings.tls` says. The
    /// trusted roots are read here, once, so a bad CA file stops start-up.
    pub fn new(settings: &SmtpSettings) -> Result<Self, MessageError> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| MessageError(e.to_string()))?;
        let host = settings.host.as_str();
        // `builder_dangerous` starts without TLS; the chosen mode replaces that below.
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host);
        let mut builder = match settings.tls {
            SmtpTls::NoneInsecure => {
                if settings.ca_file.is_some() {
                    return Err(MessageError(
                        "an SMTP CA file is of no use without TLS".to_owned(),
                    ));
                }
                builder.tls(Tls::None)
            }
            SmtpTls::StartTls => builder.tls(Tls::Required(tls_parameters(settings)?)),
            SmtpTls::Implicit => builder.tls(Tls::Wrapper(tls_parameters(settings)?)),
        }
        .port(settings.port);
        if let (Some(u), Some(p)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Ok(Self {
            mailer: builder.build(),
            from,
        })
    }
}

/// Verification against the system's roots plus the configured CA file, for `host`.
fn tls_parameters(settings: &SmtpSettings) -> Result<TlsParameters, MessageError> {
    let mut builder =
        TlsParameters::builder(settings.host.clone()).certificate_store(CertificateStore::Default);
    if let Some(path) = &settings.ca_file {
        builder = builder.add_root_certificate(ca_certificate(path)?);
    }
    builder
        .build_rustls()
        .map_err(|e| MessageError(format!("SMTP TLS: {e}")))
}

fn ca_certificate(path: &Path) -> Result<Certificate, MessageError> {
    let bad = |e: &dyn std::fmt::Display| {
        MessageError(format!("the SMTP CA file {}: {e}", path.display()))
    };
    let pem = std::fs::read(path).map_err(|e| bad(&e))?;
    // A file without a certificate would parse as none at all, and trust nothing extra.
    if !pem
        .windows(CERTIFICATE_PEM.len())
        .any(|w| w == CERTIFICATE_PEM)
    {
        return Err(bad(&"no PEM certificate in it"));
    }
    Certificate::from_pem(&pem).map_err(|e| bad(&e))
}

const CERTIFICATE_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";

#[async_trait]
impl MessageTransport for SmtpTransport {
    async fn send(&self, message: &OutboundMessage) -> Result<(), MessageError> {
        let to = message
            .to_email
            .as_deref()
            .ok_or_else(|| MessageError("the user has no e-mail address".to_owned()))?;
        let to: Mailbox = to
            .parse()
            .map_err(|e: lettre::address::AddressError| MessageError(e.to_string()))?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .body(message.body.clone())
            .map_err(|e| MessageError(e.to_string()))?;
        self.mailer
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| MessageError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(tls: SmtpTls, ca_file: Option<PathBuf>) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".to_owned(),
            port: tls.default_port(),
            tls,
            ca_file,
            username: None,
            password: None,
            from: "Gatehouse <no-reply@localhost>".to_owned(),
        }
    }

    #[test]
    fn every_mode_builds_with_the_system_roots() {
        for tls in [SmtpTls::StartTls, SmtpTls::Implicit, SmtpTls::NoneInsecure] {
            SmtpTransport::new(&settings(tls, None)).unwrap();
        }
    }

    #[test]
    fn a_ca_file_must_exist_and_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = SmtpTransport::new(&settings(SmtpTls::StartTls, Some(missing)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = SmtpTransport::new(&settings(SmtpTls::Implicit, Some(empty)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn a_ca_file_without_tls_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        assert!(SmtpTransport::new(&settings(SmtpTls::NoneInsecure, Some(ca))).is_err());
    }
}
