//! Opening the database, migrating it, and starting transactions.

use std::time::Duration;

use gatehouse_domain::store::{StoreError, StoreResult};
use sqlx::AnyConnection;
use sqlx::any::{Any, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Executor, Transaction};

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
        Ok(Self {
            pool,
            dialect,
            writers: std::sync::Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.store()?;
        Ok(())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a transaction that will write. On SQLite it waits for this process's other
    /// writers first, then takes the write lock at once (`BEGIN IMMEDIATE`), so that a
    /// transaction that reads first never fails to upgrade its lock.
    pub(crate) async fn begin(&self) -> StoreResult<WriteTx> {
        match self.dialect {
            Dialect::Sqlite => {
                let turn = self.writers.clone().lock_owned().await;
                let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.store()?;
                Ok(WriteTx {
                    tx,
                    _turn: Some(turn),
                })
            }
            Dialect::Postgres => Ok(WriteTx {
                tx: self.pool.begin().await.store()?,
                _turn: None,
            }),
        }
    }
}

/// A write transaction, holding this process's writer turn on SQLite until it ends.
pub(crate) struct WriteTx {
    tx: Transaction<'static, Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
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
