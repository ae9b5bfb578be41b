//! Delivery of messages to users (temporary passwords, verification codes): SMTP in
//! production, a file outbox for development and tests.

use std::path::PathBuf;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
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

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
}

impl SmtpTransport {
    /// A plain connection to a relay (TLS termination is the relay's concern on loopback or a
    /// private network).
    pub fn new(settings: &SmtpSettings) -> Result<Self, MessageError> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| MessageError(e.to_string()))?;
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str())
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
