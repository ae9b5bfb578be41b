//! Opening the database, migrating it, and starting transactions.

use std::time::Duration;

use gatehouse_domain::store::{StoreError, StoreResult};
use sqlx::AnyConnection;
use sqlx::any::{Any, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Connection, Executor, Row, Transaction};
use tokio::sync::{OwnedMappedMutexGuard, OwnedMutexGuard};

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
        let (writer, sync_writer, sqlite_file) = match dialect {
            Dialect::Sqlite if !is_memory(database_url) => {
                let mut conn = AnyConnection::connect(&sqlite_url_with_create(database_url))
                    .await
                    .map_err(|e| StoreError::Backend(format!("opening SQLite: {e}")))?;
                configure_sqlite_connection(&mut conn).await.store()?;
                // The file as SQLite resolved it, for the synchronous writer.
                let path: String =
                    sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                        .fetch_one(&mut conn)
                        .await
                        .store()?;
                let sync = crate::one_trip::open(&path)?;
                (
                    Some(Writer { conn, open: false }),
                    Some(sync),
                    Some(std::path::PathBuf::from(path)),
                )
            }
            _ => (None, None, None),
        };
        let bell = crate::bell::Bell::new();
        if dialect == Dialect::Postgres {
            bell.listen(database_url);
        }
        Ok(Self {
            pool,
            dialect,
            writers: std::sync::Arc::new(tokio::sync::Mutex::new(writer)),
            sync_writer,
            sqlite_file,
            bell,
        })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.store()?;
        Ok(())
    }

    /// The fingerprint of the master key this database's secrets are sealed with, if one was
    /// recorded.
    pub async fn master_key_fingerprint(&self) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM gatehouse_meta WHERE name = $1")
            .bind(MASTER_KEY_FINGERPRINT)
            .fetch_optional(&self.pool)
            .await
            .store()?;
        row.map(|r| r.try_get::<String, _>(0)).transpose().store()
    }

    /// Records `fingerprint` as the master key's unless one is recorded already, and returns
    /// the one recorded: of two processes starting with different keys, one wins and the
    /// other sees it.
    pub async fn record_master_key_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<String, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO gatehouse_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(MASTER_KEY_FINGERPRINT)
        .bind(fingerprint)
        .execute(&mut *tx)
        .await
        .store()?;
        let recorded: String = sqlx::query("SELECT value FROM gatehouse_meta WHERE name = $1")
            .bind(MASTER_KEY_FINGERPRINT)
            .fetch_one(&mut *tx)
            .await
            .store()?
            .try_get(0)
            .store()?;
        tx.commit().await.store()?;
        Ok(recorded)
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.bell.stop_listening();
        if let Some(writer) = self.writers.lock().await.take() {
            let _ = writer.conn.close().await;
        }
        self.pool.close().await;
    }

    /// Starts a transaction that will write. On SQLite it waits for this process's other
    /// writers first, then takes the write lock at once (`BEGIN IMMEDIATE`), so that a
    /// transaction that reads first never fails to upgrade its lock.
    pub(crate) async fn begin(&self) -> StoreResult<WriteTx> {
        match self.dialect {
            Dialect::Sqlite => {
                let turn = self.writer_turn().await;
                match OwnedMutexGuard::try_map(turn, Option::as_mut) {
                    Ok(mut writer) => {
                        writer.conn.execute("BEGIN IMMEDIATE").await.store()?;
                        writer.open = true;
                        Ok(WriteTx::Writer(WriterTurn {
                            writer,
                            writers: self.writers.clone(),
                        }))
                    }
                    Err(turn) => Ok(WriteTx::Pooled {
                        tx: self.pool.begin_with("BEGIN IMMEDIATE").await.store()?,
                        _turn: Some(turn),
                    }),
                }
            }
            Dialect::Postgres => Ok(WriteTx::Pooled {
                tx: self.pool.begin().await.store()?,
                _turn: None,
            }),
        }
    }
}

/// SQLite's one writer connection (none in memory, where the pool's only connection writes),
/// and whether a transaction is open on it.
#[derive(Debug)]
pub(crate) struct Writer {
    conn: AnyConnection,
    open: bool,
}

pub(crate) type Writers = std::sync::Arc<tokio::sync::Mutex<Option<Writer>>>;

/// A write transaction, holding this process's writer turn on SQLite until it ends.
pub(crate) enum WriteTx {
    /// On SQLite's own writer connection.
    Writer(WriterTurn),
    /// On a connection of the pool (PostgreSQL, SQLite in memory).
    Pooled {
        tx: Transaction<'static, Any>,
        _turn: Option<OwnedMutexGuard<Option<Writer>>>,
    },
}

/// The writer connection while a transaction of this process is open on it.
pub(crate) struct WriterTurn {
    writer: OwnedMappedMutexGuard<Option<Writer>, Writer>,
    writers: Writers,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            WriteTx::Writer(mut turn) => {
                // On failure the transaction may still be open: it is rolled back on drop.
                turn.writer.conn.execute("COMMIT").await?;
                turn.writer.open = false;
                Ok(())
            }
            WriteTx::Pooled { tx, .. } => tx.commit().await,
        }
    }
}

impl Drop for WriterTurn {
    /// A transaction that ends without its commit is rolled back before the next transaction
    /// of this process starts: by a task queued for the writer, or by the next `begin` if it
    /// comes first.
    fn drop(&mut self) {
        if !self.writer.open {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let writers = self.writers.clone();
            runtime.spawn(async move {
                if let Some(w) = writers.lock().await.as_mut()
                    && w.open
                    && w.conn.execute("ROLLBACK").await.is_ok()
                {
                    w.open = false;
                }
            });
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            WriteTx::Writer(turn) => &turn.writer.conn,
            WriteTx::Pooled { tx, .. } => tx,
        }
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriteTx::Writer(turn) => &mut turn.writer.conn,
            WriteTx::Pooled { tx, .. } => tx,
        }
    }
}

impl SqlStore {
    /// This process's turn to write on SQLite, with no transaction left open on the writer
    /// connection (one dropped uncommitted whose rollback has not run yet is rolled back).
    pub(crate) async fn writer_turn(&self) -> OwnedMutexGuard<Option<Writer>> {
        let mut turn = self.writers.clone().lock_owned().await;
        if let Some(w) = turn.as_mut()
            && w.open
        {
            let _ = w.conn.execute("ROLLBACK").await;
            w.open = false;
        }
        turn
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

/// The file a `sqlite:` URL names, unless it is in memory.
fn sqlite_file_of(url: &str) -> Option<std::path::PathBuf> {
    if is_memory(url) {
        return None;
    }
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    (!path.is_empty()).then(|| std::path::PathBuf::from(path))
}

/// Creates the database file readable and writable by this user alone, before SQLite does
/// (SQLite gives its `-wal` and `-shm` files the database file's mode). An existing file keeps
/// its mode; one that others may read is reported.
fn create_private(path: &std::path::Path) -> StoreResult<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", meta.permissions().mode() & 0o777),
                    "the database file may be read by other users; chmod 600 it (and its -wal and -shm files)"
                );
            }
            Ok(())
        }
        Err(e) => Err(StoreError::Backend(format!(
            "creating the database file {}: {e}",
            path.display()
        ))),
    }
}

async fn open_sqlite(url: &str) -> StoreResult<sqlx::AnyPool> {
    let memory = is_memory(url);
    let creates = !url.split_once('?').is_some_and(|(_, q)| {
        q.split('&')
            .any(|p| p.starts_with("mode=") && p != "mode=rwc")
    });
    if let Some(path) = sqlite_file_of(url).filter(|_| creates) {
        create_private(&path)?;
    }
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

/// What every SQLite connection is set to, whichever driver opened it.
const MASTER_KEY_FINGERPRINT: &str = "master_key_fingerprint";

pub(crate) fn sqlite_pragmas() -> [String; 3] {
    [
        "PRAGMA foreign_keys = ON".to_owned(),
        format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"),
        // Durable at every checkpoint; with WAL this loses no committed transaction on a crash
        // of the process, only possibly the last ones on a power loss.
        "PRAGMA synchronous = NORMAL".to_owned(),
    ]
}

async fn configure_sqlite_connection(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    for pragma in sqlite_pragmas() {
        conn.execute(pragma.as_str()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        use std::path::PathBuf;
        assert_eq!(sqlite_file_of("sqlite://a.db"), Some(PathBuf::from("a.db")));
        assert_eq!(
            sqlite_file_of("sqlite:///var/lib/g.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/g.db"))
        );
        assert_eq!(sqlite_file_of("sqlite:b.db"), Some(PathBuf::from("b.db")));
        assert_eq!(sqlite_file_of("sqlite::memory:"), None);
        assert_eq!(sqlite_file_of("sqlite://x.db?mode=memory"), None);
        assert_eq!(sqlite_file_of("postgres://h/db"), None);
    }

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
