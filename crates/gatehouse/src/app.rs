//! Wiring: the store, keys, services and router, built from a [`Config`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_crypto::keys::MasterKey;
use gatehouse_crypto::password::{HashCost, PasswordHasher};
use gatehouse_crypto::secret::b64url_decode;
use gatehouse_domain::time::{Clock, SystemClock};
use gatehouse_domain::urls::PublicUrl;
use gatehouse_http::{AppState, Metrics, Readiness};
use gatehouse_service::messages::{FileOutbox, MessageTransport, SmtpSettings, SmtpTransport};
use gatehouse_service::{Gatehouse, GatehouseParts};
use gatehouse_store::SqlStore;
use tokio::net::TcpListener;

use crate::config::{Config, Transport};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

fn err(context: &str) -> impl Fn(String) -> StartError + '_ {
    move |e| StartError(format!("{context}: {e}"))
}

/// Reads the master key from the configuration, or from its file (created for SQLite).
fn master_key(config: &Config) -> Result<MasterKey, StartError> {
    let parse = |s: &str| {
        b64url_decode(s.trim())
            .and_then(|b| MasterKey::from_bytes(&b))
            .ok_or_else(|| StartError("the master key must be 32 bytes, base64url".to_owned()))
    };
    if let Some(k) = &config.master_key {
        return parse(k);
    }
    let path = config
        .master_key_file
        .clone()
        .unwrap_or_else(|| Path::new("gatehouse.key").to_path_buf());
    match std::fs::read_to_string(&path) {
        Ok(s) => parse(&s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !config.is_postgres() => {
            let key = MasterKey::generate();
            write_private(&path, key.to_b64().as_bytes()).map_err(|e| {
                StartError(format!(
                    "cannot create the master key file {}: {e}",
                    path.display()
                ))
            })?;
            tracing::info!(path = %path.display(), "created a new master key file; back it up with the database");
            Ok(key)
        }
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
        Transport::Smtp => Arc::new(
            SmtpTransport::new(&SmtpSettings {
                host: config.messages.smtp_host.clone(),
                port: config.messages.smtp_port,
                username: config.messages.smtp_username.clone(),
                password: config.messages.smtp_password.clone(),
                from: config.messages.from.clone(),
            })
            .map_err(|e| StartError(e.to_string()))?,
        ),
    })
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
    let hasher = PasswordHasher::new(cost, config.password_hashing.max_concurrent)
        .map_err(|e| err("password hashing")(e.to_string()))?;
    let gh = Gatehouse::new(GatehouseParts {
        store: Arc::new(store.clone()),
        clock,
        master_key: master_key(config)?,
        hasher,
        messages: transport(config)?,
        public_url: PublicUrl::parse(&config.public_url).map_err(|e| StartError(e.to_string()))?,
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
        let state = AppState {
            gh: gh.clone(),
            metrics: Arc::new(Metrics::new()),
            readiness: Arc::new(StoreReadiness(store)),
        };
        Ok(Self {
            listener,
            router: gatehouse_http::app(state),
            gatehouse: gh,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
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
