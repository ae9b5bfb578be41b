//! Configuration: defaults, then an optional TOML file, then `GATEHOUSE_*` environment
//! variables (nested keys with `__`, e.g. `GATEHOUSE_MESSAGES__TRANSPORT=smtp`). Unknown keys
//! are errors that name the key. Validated once at start-up and passed explicitly.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `sqlite://gatehouse.db` (the embedded default) or `postgres://…`.
    pub database_url: String,
    /// Address to listen on.
    pub listen: String,
    /// The externally visible base URL; pools live under `{public_url}/pools/{pool}`, and the
    /// issuers of host-bound pools take its scheme.
    pub public_url: String,
    /// The 256-bit key sealing signing keys at rest, base64url. Required with PostgreSQL
    /// (every instance needs the same one); with SQLite, a key file is created if missing.
    pub master_key: Option<String>,
    /// A file holding the master key (base64url), created if missing when the database is
    /// SQLite.
    pub master_key_file: Option<PathBuf>,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    pub password_hashing: PasswordHashing,
    pub messages: Messages,
    pub limits: Limits,
    pub maintenance: Maintenance,
    pub outbound: Outbound,
    pub feed: Feed,
    pub ssf: Ssf,
}

/// The SSF transmitter's long polls (RFC 8936 with `returnImmediately: false`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ssf {
    /// The longest a long poll waits for an event, in seconds (1 to 25).
    pub long_poll_timeout_secs: u64,
    /// Long polls waiting at once on one stream; more are answered 429.
    pub long_polls_per_stream: usize,
    /// Long polls waiting at once in one pool; more are answered 429.
    pub long_polls_per_pool: usize,
}

impl Default for Ssf {
    fn default() -> Self {
        Self {
            long_poll_timeout_secs: 25,
            long_polls_per_stream: 4,
            long_polls_per_pool: 64,
        }
    }
}

/// Calls to URLs tenants configure (SSF push, back-channel logout).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outbound {
    /// CIDR ranges (or single addresses) such calls may reach although they are not public:
    /// loopback, private, link-local and other non-public addresses are refused otherwise.
    pub allow: Vec<String>,
}

impl Outbound {
    pub fn allow(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.allow
            .iter()
            .map(|net| cidr("outbound.allow", net))
            .collect()
    }
}

/// A CIDR range, or one address as its own range.
fn cidr(key: &str, net: &str) -> Result<ipnet::IpNet, ConfigError> {
    net.parse::<ipnet::IpNet>()
        .or_else(|_| net.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            ConfigError::Invalid(format!("{key}: '{net}' is not a CIDR range or an address"))
        })
}

/// The fleet feed's streams (`GET {base}/api/auth/revocations/stream`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Feed {
    /// Streams open at once per pool; more are answered 503 with `Retry-After`.
    pub max_streams_per_pool: usize,
    /// Seconds of silence after which an idle stream sends a heartbeat, 1 to 5.
    pub heartbeat_secs: u64,
}

impl Default for Feed {
    fn default() -> Self {
        let d = gatehouse_http::revocation_stream::StreamSettings::default();
        Self {
            max_streams_per_pool: d.max_per_pool,
            heartbeat_secs: d.heartbeat.as_secs(),
        }
    }
}

impl Feed {
    pub fn settings(
        &self,
    ) -> Result<gatehouse_http::revocation_stream::StreamSettings, ConfigError> {
        if !(1..=5).contains(&self.heartbeat_secs) {
            return Err(ConfigError::Invalid(
                "feed.heartbeat_secs must be 1 to 5".to_owned(),
            ));
        }
        if self.max_streams_per_pool == 0 {
            return Err(ConfigError::Invalid(
                "feed.max_streams_per_pool must be at least 1".to_owned(),
            ));
        }
        Ok(gatehouse_http::revocation_stream::StreamSettings {
            max_per_pool: self.max_streams_per_pool,
            heartbeat: std::time::Duration::from_secs(self.heartbeat_secs),
        })
    }
}

/// Background work of the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Maintenance {
    /// Seconds between purges of expired rows (sessions, revoked token ids, verification
    /// codes, failed sign-ins, audit events past their pool's retention). 0 turns it off.
    pub purge_interval_secs: u64,
}

impl Default for Maintenance {
    fn default() -> Self {
        Self {
            purge_interval_secs: 600,
        }
    }
}

/// Failed attempts allowed per source address and per app client on the endpoints that check
/// secrets (token, introspection, revocation, sign-in, challenge answers, reset confirmation,
/// attribute verification). Successes cost nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub address_burst: u32,
    pub address_per_minute: u32,
    pub client_burst: u32,
    pub client_per_minute: u32,
    /// CIDR ranges of reverse proxies whose `X-Forwarded-For` is believed. Empty: the
    /// connection's peer is the source, whatever the header says.
    pub trusted_proxies: Vec<String>,
    /// Each pool's share of this instance's hook time: milliseconds of hook calls per second
    /// (a webhook call counts 10 ms), and at most this many saved up. Past it, sign-ins that
    /// need the pool's hooks are answered 503 with `Retry-After`.
    pub hook_time_ms_per_second: u64,
    pub hook_time_burst_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        let d = gatehouse_http::limits::LimitSettings::default();
        Self {
            address_burst: d.address_burst,
            address_per_minute: d.address_per_minute,
            client_burst: d.client_burst,
            client_per_minute: d.client_per_minute,
            trusted_proxies: Vec::new(),
            hook_time_ms_per_second: 1000,
            hook_time_burst_ms: 2000,
        }
    }
}

impl Limits {
    pub fn settings(&self) -> Result<gatehouse_http::limits::LimitSettings, ConfigError> {
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|net| cidr("limits.trusted_proxies", net))
            .collect::<Result<_, _>>()?;
        Ok(gatehouse_http::limits::LimitSettings {
            address_burst: self.address_burst,
            address_per_minute: self.address_per_minute,
            client_burst: self.client_burst,
            client_per_minute: self.client_per_minute,
            trusted_proxies,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordHashing {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes computed at once; bounds their memory (memory_kib each).
    pub max_concurrent: usize,
    /// Requests that may wait for a hash; more are answered 503 with `Retry-After` at once.
    /// By default 16 per concurrent hash: about 0.4 s of work at the default cost.
    pub max_waiting: Option<usize>,
}

impl Default for PasswordHashing {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_waiting: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Append messages to `{outbox_dir}/outbox.jsonl` (development).
    File,
    Smtp,
}

/// How the connection to the SMTP relay is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plaintext greeting, then STARTTLS, required (no fallback). Port 587 by default.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS). Port 465 by default.
    Implicit,
    /// No TLS: mail and credentials in clear. Port 25 by default.
    NoneInsecure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Messages {
    pub transport: Transport,
    pub outbox_dir: PathBuf,
    pub smtp_host: String,
    /// By default the usual port of `smtp_tls`: 587, 465 or 25.
    pub smtp_port: Option<u16>,
    pub smtp_tls: SmtpTls,
    /// A PEM file of CA certificates trusted, besides the system's roots, for the relay.
    pub smtp_ca_file: Option<PathBuf>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    pub from: String,
}

impl Default for Messages {
    fn default() -> Self {
        Self {
            transport: Transport::File,
            outbox_dir: PathBuf::from("gatehouse-outbox"),
            smtp_host: "127.0.0.1".to_owned(),
            smtp_port: None,
            smtp_tls: SmtpTls::default(),
            smtp_ca_file: None,
            smtp_username: None,
            smtp_password: None,
            from: "Gatehouse <no-reply@localhost>".to_owned(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://gatehouse.db".to_owned(),
            listen: "127.0.0.1:8080".to_owned(),
            public_url: "http://127.0.0.1:8080".to_owned(),
            master_key: None,
            master_key_file: None,
            log_format: LogFormat::Text,
            password_hashing: PasswordHashing::default(),
            messages: Messages::default(),
            limits: Limits::default(),
            maintenance: Maintenance::default(),
            outbound: Outbound::default(),
            feed: Feed::default(),
            ssf: Ssf::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads defaults, the optional file, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "the file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        // `GATEHOUSE_TEST_*` is left to the test suite.
        figment = figment.merge(
            Env::prefixed("GATEHOUSE_")
                .filter(|k| !k.as_str().to_ascii_lowercase().starts_with("test_"))
                .split("__"),
        );
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let db = &self.database_url;
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(
                "database_url must start with sqlite:, postgres:// or postgresql://".to_owned(),
            ));
        }
        if let Err(e) = gatehouse_domain::urls::PublicUrl::parse(&self.public_url) {
            return Err(ConfigError::Invalid(e.to_string()));
        }
        self.limits.settings()?;
        self.outbound.allow()?;
        self.feed.settings()?;
        if !(1..=25).contains(&self.ssf.long_poll_timeout_secs)
            || self.ssf.long_polls_per_stream == 0
            || self.ssf.long_polls_per_pool == 0
        {
            return Err(ConfigError::Invalid(
                "ssf.long_poll_timeout_secs must be 1 to 25, and the long-poll caps at least 1"
                    .to_owned(),
            ));
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "listen must be an address such as 127.0.0.1:8080, not '{}'",
                self.listen
            )));
        }
        if self.is_postgres() && self.master_key.is_none() && self.master_key_file.is_none() {
            return Err(ConfigError::Invalid(
                "with PostgreSQL, set master_key or master_key_file (every instance needs the same key)"
                    .to_owned(),
            ));
        }
        if self.messages.smtp_tls == SmtpTls::NoneInsecure && self.messages.smtp_ca_file.is_some() {
            return Err(ConfigError::Invalid(
                "messages.smtp_ca_file needs TLS, but messages.smtp_tls is none_insecure"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_file_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nlisten_port = 3\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("listen_port"), "{err}");
    }

    #[test]
    fn file_values_apply_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[messages]\ntransport = \"smtp\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.messages.transport, Transport::Smtp);
        assert_eq!(c.database_url, "sqlite://gatehouse.db");
    }

    #[test]
    fn smtp_uses_starttls_unless_told_otherwise() {
        let c = Config::default();
        assert_eq!(c.messages.smtp_tls, SmtpTls::Starttls);
        assert_eq!(c.messages.smtp_port, None);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(
            &path,
            "[messages]\nsmtp_tls = \"none_insecure\"\nsmtp_port = 2525\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.messages.smtp_tls, SmtpTls::NoneInsecure);
        assert_eq!(c.messages.smtp_port, Some(2525));

        std::fs::write(&path, "[messages]\nsmtp_tls = \"plain\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("plain"), "{err}");
    }

    #[test]
    fn an_smtp_ca_file_needs_tls() {
        let mut c = Config::default();
        c.messages.smtp_ca_file = Some("ca.pem".into());
        assert!(c.validate().is_ok());
        c.messages.smtp_tls = SmtpTls::NoneInsecure;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("smtp_ca_file"), "{err}");
    }

    #[test]
    fn purges_run_every_ten_minutes_unless_told_otherwise() {
        assert_eq!(Config::default().maintenance.purge_interval_secs, 600);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, "[maintenance]\npurge_interval_secs = 0\n").unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.maintenance.purge_interval_secs, 0);
    }

    #[test]
    fn postgres_needs_a_master_key() {
        let c = Config {
            database_url: "postgres://localhost/x".into(),
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }
}
