//! Opening the database, migrating it, and starting transactions.

use std::time::Duration;

use gatehouse_domain::store::{StoreError, StoreResult};
use sqlx::AnyConnection;
use sqlx::any::{Any, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Connection, Executor, Transaction};
use tokio::sync::OwnedMutexGuard;

use crate::error::ResultExt;
use crate::{Dialect, SqlStore};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long SQLite waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 5_000;

impl SqlStore {
    /// Connects to `sqlite://path` (the file is created if missing) or
    /// `postgres://…`/`postgresql://…`, and brings the schema up to date.
    ///
    /// On PostgreSQL the migrations hold an advisory lock, so several instances may start at
    /// once. `sqlite::memory:` gives a private in-memory database on a single connection.
    pub async fn connect(database_url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let dialect = dialect_of(database_url)?;
        let pool = match dialect {
            Dialect::Sqlite => open_sqlite(database_url).await?,
            Dialect::Postgres => AnyPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(Duration::from_secs(10))
                .connect(database_url)
                .await
                .map_err(|e| StoreError::Backend(format!("connecting to PostgreSQL: {e}")))?,
        };
        let migrator = match dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating the database: {e}")))?;
        tracing::debug!(dialect = dialect.as_str(), "store ready");
        // SQLite in a file: one connection of its own writes, so that its page cache stays
        // warm (another connection's commit would invalidate it) and no write waits for a
        // connection of the pool. In memory there is one connection, the pool's.
        let writer = match dialect {
            Dialect::Sqlite if !is_memory(database_url) => {
                let mut conn = AnyConnection::connect(&sqlite_url_with_create(database_url))
                    .await
                    .map_err(|e| StoreError::Backend(format!("opening SQLite: {e}")))?;
                configure_sqlite_connection(&mut conn).await.store()?;
                Some(conn)
            }
            _ => None,
        };
        Ok(Self {
            pool,
            dialect,
            writers: std::sync::Arc::new(tokio::sync::Mutex::new(Writer {
                conn: writer,
                open: false,
            })),
        })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.store()?;
        Ok(())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        if let Some(conn) = self.writers.lock().await.conn.take() {
            let _ = conn.close().await;
        }
        self.pool.close().await;
    }

    /// Starts a transaction that will write. On SQLite it waits for this process's other
    /// writers first, then takes the write lock at once (`BEGIN IMMEDIATE`), so that a
    /// transaction that reads first never fails to upgrade its lock.
    pub(crate) async fn begin(&self) -> StoreResult<WriteTx> {
        match self.dialect {
            Dialect::Sqlite => {
                let mut turn = self.writers.clone().lock_owned().await;
                if turn.conn.is_some() {
                    let writer = &mut *turn;
                    let conn = writer.conn.as_mut().ok_or_else(closed)?;
                    if writer.open {
                        // A transaction dropped where its rollback could not be spawned.
                        let _ = conn.execute("ROLLBACK").await;
                        writer.open = false;
                    }
                    conn.execute("BEGIN IMMEDIATE").await.store()?;
                    writer.open = true;
                    return Ok(WriteTx::Writer(WriterTurn(Some(turn))));
                }
                let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.store()?;
                Ok(WriteTx::Pooled {
                    tx,
                    _turn: Some(turn),
                })
            }
            Dialect::Postgres => Ok(WriteTx::Pooled {
                tx: self.pool.begin().await.store()?,
                _turn: None,
            }),
        }
    }
}

fn closed() -> StoreError {
    StoreError::Backend("the store is closed".to_owned())
}

/// SQLite's one writer: its connection (none in memory, where the pool's only connection
/// writes) and whether a transaction is open on it.
#[derive(Debug)]
pub(crate) struct Writer {
    conn: Option<AnyConnection>,
    open: bool,
}

/// A write transaction, holding this process's writer turn on SQLite until it ends.
pub(crate) enum WriteTx {
    /// On SQLite's own writer connection.
    Writer(WriterTurn),
    /// On a connection of the pool (PostgreSQL, SQLite in memory).
    Pooled {
        tx: Transaction<'static, Any>,
        _turn: Option<OwnedMutexGuard<Writer>>,
    },
}

/// The writer connection while a transaction is open on it; `None` once committed.
pub(crate) struct WriterTurn(Option<OwnedMutexGuard<Writer>>);

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            WriteTx::Writer(mut turn) => {
                let Some(mut turn) = turn.0.take() else {
                    return Err(sqlx::Error::PoolClosed);
                };
                let writer = &mut *turn;
                let conn = writer.conn.as_mut().ok_or(sqlx::Error::PoolClosed)?;
                // On failure the transaction may still be open: the next writer rolls it back.
                conn.execute("COMMIT").await?;
                writer.open = false;
                Ok(())
            }
            WriteTx::Pooled { tx, .. } => tx.commit().await,
        }
    }

    fn conn(&self) -> &AnyConnection {
        match self {
            WriteTx::Writer(turn) => turn
                .0
                .as_ref()
                .and_then(|t| t.conn.as_ref())
                .expect("a write transaction is used after its end"),
            WriteTx::Pooled { tx, .. } => tx,
        }
    }

    fn conn_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriteTx::Writer(turn) => turn
                .0
                .as_mut()
                .and_then(|t| t.conn.as_mut())
                .expect("a write transaction is used after its end"),
            WriteTx::Pooled { tx, .. } => tx,
        }
    }
}

impl Drop for WriterTurn {
    /// A transaction that ends without its commit is rolled back before the next writer
    /// starts: by a task that holds the writer meanwhile, or else by the next `begin`.
    fn drop(&mut self) {
        let Some(mut turn) = self.0.take() else {
            return;
        };
        if !turn.open {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Some(conn) = turn.conn.as_mut()
                    && conn.execute("ROLLBACK").await.is_ok()
                {
                    turn.open = false;
                }
            });
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        self.conn()
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn_mut()
    }
}

fn dialect_of(url: &str) -> StoreResult<Dialect> {
    if url.starts_with("sqlite:") {
        Ok(Dialect::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Dialect::Postgres)
    } else {
        Err(StoreError::Backend(
            "the database URL must start with sqlite:, postgres:// or postgresql://".to_owned(),
        ))
    }
}

fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Adds `mode=rwc` (create if missing) unless the URL chooses a mode.
fn sqlite_url_with_create(url: &str) -> String {
    match url.split_once('?') {
        Some((_, query)) if query.split('&').any(|p| p.starts_with("mode=")) => url.to_owned(),
        Some(_) => format!("{url}&mode=rwc"),
        None => format!("{url}?mode=rwc"),
    }
}

async fn open_sqlite(url: &str) -> StoreResult<sqlx::AnyPool> {
    let memory = is_memory(url);
    // A connection to a local file does not drop out the way a network connection does: no
    // round trip to the connection's thread to test it before every use.
    let options = AnyPoolOptions::new()
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                configure_sqlite_connection(conn).await?;
                Ok(())
            })
        });
    // Each connection to `:memory:` would open its own database: keep exactly one, for ever.
    let options = if memory {
        options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        options.max_connections(8)
    };
    let url = if memory {
        url.to_owned()
    } else {
        sqlite_url_with_create(url)
    };
    let pool = options
        .connect(&url)
        .await
        .map_err(|e| StoreError::Backend(format!("opening SQLite: {e}")))?;
    if !memory {
        // Persistent in the file: readers do not block the writer, nor the writer readers.
        pool.execute("PRAGMA journal_mode = WAL").await.store()?;
    }
    Ok(pool)
}

async fn configure_sqlite_connection(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute("PRAGMA foreign_keys = ON").await?;
    conn.execute(format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}").as_str())
        .await?;
    // Durable at every checkpoint; with WAL this loses no committed transaction on a crash of
    // the process, only possibly the last ones on a power loss.
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_the_file_unless_told_otherwise() {
        assert_eq!(
            sqlite_url_with_create("sqlite://a.db"),
            "sqlite://a.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url_with_create("sqlite://a.db?cache=shared"),
            "sqlite://a.db?cache=shared&mode=rwc"
        );
        assert_eq!(
            sqlite_url_with_create("sqlite://a.db?mode=ro"),
            "sqlite://a.db?mode=ro"
        );
    }

    #[test]
    fn dialects_follow_the_scheme() {
        assert_eq!(dialect_of("sqlite://x").ok(), Some(Dialect::Sqlite));
        assert_eq!(dialect_of("postgres://h/db").ok(), Some(Dialect::Postgres));
        assert_eq!(
            dialect_of("postgresql://h/db").ok(),
            Some(Dialect::Postgres)
        );
        assert!(dialect_of("mysql://h/db").is_err());
    }
}
