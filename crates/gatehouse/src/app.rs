//! Wiring: the store, keys, services and router, built from a [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_crypto::keys::MasterKey;
use gatehouse_crypto::password::{DEFAULT_WAITING_PER_WORKER, HashCost, PasswordHasher};
use gatehouse_crypto::secret::b64url_decode;
use gatehouse_domain::store::Store as _;
use gatehouse_domain::time::{Clock, SystemClock};
use gatehouse_domain::urls::PublicUrl;
use gatehouse_http::limits::FailureLimits;
use gatehouse_http::{AppState, Metrics, Readiness};
use gatehouse_service::messages::{
    self as smtp, FileOutbox, MessageTransport, SmtpSettings, SmtpTransport,
};
use gatehouse_service::outbound::{Outbound, OutboundPolicy};
use gatehouse_service::ssf::delivery::SsfSettings;
use gatehouse_service::{Gatehouse, GatehouseParts};
use gatehouse_store::SqlStore;
use tokio::net::TcpListener;

use crate::config::{Config, Messages, SmtpTls, Transport};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

fn err(context: &str) -> impl Fn(String) -> StartError + '_ {
    move |e| StartError(format!("{context}: {e}"))
}

/// Where the master key came from, to name it when it is the wrong one.
enum KeySource {
    Setting,
    File(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Setting => f.write_str("the master_key setting (GATEHOUSE_MASTER_KEY)"),
            KeySource::File(path) => write!(f, "the key file {}", path.display()),
        }
    }
}

/// The master key, checked against the one the database was sealed with.
///
/// The database records the fingerprint of its master key when it is first opened; a process
/// (server or CLI) that comes with another key refuses to start, naming both, instead of
/// sealing new signing keys with it. With SQLite the default key file is `gatehouse.key` in the
/// database file's folder, wherever the command runs, and it is created only for a database
/// that has no secrets yet.
async fn master_key(config: &Config, store: &SqlStore) -> Result<MasterKey, StartError> {
    let db = |e: gatehouse_domain::store::StoreError| StartError(format!("database: {e}"));
    let recorded = store.master_key_fingerprint().await.map_err(db)?;
    // A database from before fingerprints were recorded may hold sealed keys all the same.
    let pools = if recorded.is_none() {
        store.list_pools().await.map_err(db)?
    } else {
        Vec::new()
    };
    let fresh = recorded.is_none() && pools.is_empty();
    let (key, source) = load_master_key(config, store, fresh)?;
    let mismatch = |fingerprint: &str| {
        StartError(format!(
            "this database's signing keys are sealed with the master key {fingerprint}, but {source} \
             holds the key {}: start with the key this database was created with",
            key.fingerprint()
        ))
    };
    if let Some(fingerprint) = &recorded {
        return if *fingerprint == key.fingerprint() {
            Ok(key)
        } else {
            Err(mismatch(fingerprint))
        };
    }
    for pool in &pools {
        for record in store.signing_keys(pool.id).await.map_err(db)? {
            if key
                .open(pool.id, &record.kid, &record.sealed_private_key)
                .is_err()
            {
                return Err(StartError(format!(
                    "the signing key {} of pool {} does not open with {source} (master key {}): \
                     start with the key this database was created with",
                    record.kid,
                    pool.slug,
                    key.fingerprint()
                )));
            }
        }
    }
    // Of two processes starting at once with different keys, one records its own; the other
    // reads it back here.
    let recorded = store
        .record_master_key_fingerprint(&key.fingerprint())
        .await
        .map_err(db)?;
    if recorded == key.fingerprint() {
        Ok(key)
    } else {
        Err(mismatch(&recorded))
    }
}

/// The configured master key, or the key file's (created only when `fresh`, on SQLite).
fn load_master_key(
    config: &Config,
    store: &SqlStore,
    fresh: bool,
) -> Result<(MasterKey, KeySource), StartError> {
    let parse = |s: &str| {
        b64url_decode(s.trim())
            .and_then(|b| MasterKey::from_bytes(&b))
            .ok_or_else(|| StartError("the master key must be 32 bytes, base64url".to_owned()))
    };
    if let Some(k) = &config.master_key {
        return Ok((parse(k)?, KeySource::Setting));
    }
    let path = config.master_key_file.clone().unwrap_or_else(|| {
        store.sqlite_file().and_then(Path::parent).map_or_else(
            || PathBuf::from("gatehouse.key"),
            |dir| dir.join("gatehouse.key"),
        )
    });
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok((parse(&s)?, KeySource::File(path))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !config.is_postgres() && fresh => {
            let key = MasterKey::generate();
            write_private(&path, key.to_b64().as_bytes()).map_err(|e| {
                StartError(format!(
                    "cannot create the master key file {}: {e}",
                    path.display()
                ))
            })?;
            tracing::info!(path = %path.display(), "created a new master key file; back it up with the database");
            Ok((key, KeySource::File(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !fresh => Err(StartError(format!(
            "the master key file {} does not exist, and this database already holds keys sealed \
             with a master key: set master_key_file (GATEHOUSE_MASTER_KEY_FILE) or master_key to \
             the key it was created with",
            path.display()
        ))),
        Err(e) => Err(StartError(format!(
            "cannot read the master key file {}: {e}",
            path.display()
        ))),
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

fn transport(config: &Config) -> Result<Arc<dyn MessageTransport>, StartError> {
    Ok(match config.messages.transport {
        Transport::File => Arc::new(FileOutbox::new(&config.messages.outbox_dir)),
        Transport::Smtp => Arc::new(smtp(&config.messages)?),
    })
}

fn smtp(m: &Messages) -> Result<SmtpTransport, StartError> {
    let tls = match m.smtp_tls {
        SmtpTls::Starttls => smtp::SmtpTls::StartTls,
        SmtpTls::Implicit => smtp::SmtpTls::Implicit,
        SmtpTls::NoneInsecure => {
            tracing::warn!(
                "messages.smtp_tls is none_insecure: messages (temporary passwords) and the SMTP \
                 credentials cross the network unencrypted"
            );
            smtp::SmtpTls::NoneInsecure
        }
    };
    SmtpTransport::new(&SmtpSettings {
        host: m.smtp_host.clone(),
        port: m.smtp_port.unwrap_or(tls.default_port()),
        tls,
        ca_file: m.smtp_ca_file.clone(),
        username: m.smtp_username.clone(),
        password: m.smtp_password.clone(),
        from: m.from.clone(),
    })
    .map_err(|e| StartError(e.to_string()))
}

/// The services over the configured database: what `serve` and the admin subcommands share.
pub async fn services(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<Gatehouse>, SqlStore), StartError> {
    let store = SqlStore::connect(&config.database_url)
        .await
        .map_err(|e| StartError(format!("database: {e}")))?;
    let cost = HashCost {
        memory_kib: config.password_hashing.memory_kib,
        iterations: config.password_hashing.iterations,
        parallelism: config.password_hashing.parallelism,
    };
    let workers = config.password_hashing.max_concurrent.max(1);
    let waiting = config
        .password_hashing
        .max_waiting
        .unwrap_or(workers * DEFAULT_WAITING_PER_WORKER);
    let hasher = PasswordHasher::with_waiting(cost, workers, waiting)
        .map_err(|e| err("password hashing")(e.to_string()))?;
    let gh = Gatehouse::new(GatehouseParts {
        store: Arc::new(store.clone()),
        clock,
        master_key: master_key(config, &store).await?,
        hasher,
        messages: transport(config)?,
        public_url: PublicUrl::parse(&config.public_url).map_err(|e| StartError(e.to_string()))?,
        outbound: Outbound::new(OutboundPolicy {
            allow: config
                .outbound
                .allow()
                .map_err(|e| StartError(e.to_string()))?,
            allow_plain_http: config.public_url.starts_with("http://"),
        })
        .map_err(|e| StartError(e.to_string()))?,
    })
    .with_hook_budget(gatehouse_service::hooks::HookBudget::new(
        Duration::from_millis(config.limits.hook_time_ms_per_second.max(1)),
        Duration::from_millis(config.limits.hook_time_burst_ms),
    ))
    .with_ssf_settings(SsfSettings {
        long_poll_timeout: Duration::from_secs(config.ssf.long_poll_timeout_secs.clamp(1, 25)),
        long_polls_per_stream: config.ssf.long_polls_per_stream.max(1),
        long_polls_per_pool: config.ssf.long_polls_per_pool.max(1),
    });
    Ok((Arc::new(gh), store))
}

struct StoreReadiness(SqlStore);

#[async_trait]
impl Readiness for StoreReadiness {
    async fn ready(&self) -> bool {
        self.0.ping().await.is_ok()
    }
}

/// A built server: bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    pub gatehouse: Arc<Gatehouse>,
    /// The fleet feed's streams, ended when the server shuts down (they would not end on
    /// their own before their tokens expire).
    streams: Arc<gatehouse_http::revocation_stream::Streams>,
    /// Time between purges of expired rows; `None`: none.
    purge_every: Option<Duration>,
}

impl Application {
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Builds with a given clock (tests advance a manual one).
    pub async fn build_with_clock(
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let (gh, store) = services(config, clock).await?;
        if gh
            .ensure_staff_pool()
            .await
            .map_err(|e| StartError(format!("creating the staff pool: {}", e.for_operator())))?
        {
            tracing::info!(
                "created the staff pool. Create the first administrator with:\n  \
                 gatehouse user create --pool staff <username> --email <email> --name <name> --role admin --password-stdin"
            );
        }
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|e| StartError(format!("cannot listen on {}: {e}", config.listen)))?;
        let streams = Arc::new(gatehouse_http::revocation_stream::Streams::new(
            config
                .feed
                .settings()
                .map_err(|e| StartError(e.to_string()))?,
        ));
        let state = AppState {
            gh: gh.clone(),
            metrics: Arc::new(Metrics::new()),
            readiness: Arc::new(StoreReadiness(store)),
            limits: Arc::new(FailureLimits::new(
                &config
                    .limits
                    .settings()
                    .map_err(|e| StartError(e.to_string()))?,
            )),
            streams: streams.clone(),
        };
        Ok(Self {
            listener,
            router: gatehouse_http::app(state),
            streams,
            gatehouse: gh,
            purge_every: (config.maintenance.purge_interval_secs > 0)
                .then(|| Duration::from_secs(config.maintenance.purge_interval_secs)),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight. Meanwhile
    /// expired rows are purged every `maintenance.purge_interval_secs` (the first time at
    /// once), and back-channel logout tokens are sent from the security event log; both
    /// stop with the server.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let purges = self
            .purge_every
            .map(|every| tokio::spawn(purge_periodically(self.gatehouse.clone(), every, stopped)));
        // The SSF push worker: delivers every pool's push streams until the server stops.
        let (stop_push, push_stopped) = tokio::sync::oneshot::channel::<()>();
        let gh = self.gatehouse.clone();
        let pushes = tokio::spawn(async move { gh.ssf_push_worker(push_stopped).await });
        let (stop_logouts, logouts_stopped) = tokio::sync::oneshot::channel::<()>();
        let logouts = tokio::spawn(self.gatehouse.clone().run_backchannel_logout(Box::pin(
            async move {
                let _ = logouts_stopped.await;
            },
        )));
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown({
            let streams = self.streams.clone();
            async move {
                shutdown.await;
                streams.close();
            }
        })
        .await;
        drop(stop);
        drop(stop_push);
        drop(stop_logouts);
        let _ = logouts.await;
        if let Some(task) = purges {
            let _ = task.await;
        }
        let _ = pushes.await;
        served
    }
}

/// Purges expired rows every `every` until `stop` completes (or its sender is dropped). A
/// purge cut short by the stop loses nothing: each batch is its own transaction, and what is
/// left is purged next time. Failures are logged and the next purge comes all the same.
async fn purge_periodically(
    gh: Arc<Gatehouse>,
    every: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticks.tick() => {}
        }
        tokio::select! {
            _ = &mut stop => return,
            purged = gh.purge_expired() => match purged {
                Ok(n) if n.total() > 0 => tracing::info!(
                    sessions = n.sessions,
                    revoked_tokens = n.revoked_tokens,
                    verification_codes = n.verification_codes,
                    sign_in_failures = n.sign_in_failures,
                    code_issuance = n.code_issuance,
                    audit_events = n.audit_events,
                    security_events = n.security_events,
                    "purged expired rows"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e.for_operator(), "purging expired rows failed; trying again later"),
            },
        }
    }
}

/// A future that completes on SIGINT or SIGTERM. The handlers are registered here, before
/// the future is first polled: a signal that arrives once the server answers is never missed
/// (one that arrives earlier stops the process the default way).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    async move {
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let interrupt = async {
            match interrupt.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = term => {},
            () = interrupt => {},
        }
        tracing::info!("shutting down: finishing requests in flight");
    }
}
