//! Gatehouse storage: the one implementation of [`gatehouse_domain::store::Store`], for SQLite
//! (the embedded default) and PostgreSQL (production).
//!
//! The SQL is written once, against sqlx's `Any` driver, with `$n` placeholders (SQLite reads
//! `$n` as the n-th argument too). [`Dialect`] covers the few real differences: the migrations,
//! how a write transaction starts, and the connection set-up. Every query names a pool id, and
//! every mutation commits in one transaction with the audit event that records it.

mod audit;
mod authorization;
mod backchannel;
mod bell;
mod clients;
mod connect;
mod consents;
mod error;
mod federation;
mod groups;
mod hooks;
mod lockout;
mod mfa;
mod one_trip;
mod passkeys;
mod pools;
mod purge;
mod rows;
mod security_events;
mod sessions;
mod ssf;
mod store_impl;
mod users;
mod write;

#[cfg(feature = "test-support")]
pub mod test_support;

use sqlx::AnyPool;

/// The SQL dialect behind a [`SqlStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// Whether a read inside a write transaction locks the rows it returns. PostgreSQL needs
/// `FOR UPDATE` for that; SQLite runs one write transaction at a time, so a read in one is
/// already stable until the commit (and `FOR UPDATE` is not SQLite syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    None,
    ForUpdate,
}

impl Lock {
    pub(crate) fn clause(self) -> &'static str {
        match self {
            Lock::None => "",
            Lock::ForUpdate => " FOR UPDATE",
        }
    }
}

impl Dialect {
    /// How reads inside a write transaction take their rows.
    pub(crate) fn row_lock(self) -> Lock {
        match self {
            Dialect::Sqlite => Lock::None,
            Dialect::Postgres => Lock::ForUpdate,
        }
    }
}

/// The SQL store. Cheap to clone: it holds a connection pool.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite has one writer at a time. Its busy handler is not fair: under many concurrent
    /// writers one can wait past the busy timeout and fail. Write transactions of this
    /// process therefore queue here, first come first served, and only writers of other
    /// processes (the admin CLI) meet the busy timeout.
    writers: connect::Writers,
    /// SQLite in a file: the connection impersonations write on in one trip (`one_trip.rs`).
    sync_writer: Option<std::sync::Arc<one_trip::SyncWriter>>,
    /// SQLite in a file: the file, as SQLite resolved it.
    sqlite_file: Option<std::path::PathBuf>,
    /// Rung after every commit that appended security events (`bell.rs`).
    bell: std::sync::Arc<bell::Bell>,
}

impl SqlStore {
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The database file, for SQLite in a file.
    pub fn sqlite_file(&self) -> Option<&std::path::Path> {
        self.sqlite_file.as_deref()
    }

    /// The connection pool, for work the trait does not cover (maintenance queries, metrics of
    /// the pool). LISTEN/NOTIFY needs a `PgListener` of its own: the `Any` driver has none.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}
