//! How database failures become [`StoreError`]s.

use gatehouse_domain::store::StoreError;
use sqlx::error::ErrorKind;

/// Maps a sqlx error: a broken unique rule is a conflict (described by `conflict`, a message
/// safe to show a client), a reference to a row that does not exist (a foreign key) is
/// `NotFound`, anything else is a backend failure.
fn map(err: sqlx::Error, conflict: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        match db.kind() {
            ErrorKind::UniqueViolation => return StoreError::Conflict(conflict.to_owned()),
            ErrorKind::ForeignKeyViolation => return StoreError::NotFound,
            _ => {}
        }
    }
    StoreError::Backend(err.to_string())
}

/// A stored value that does not parse back into its domain type.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("stored {what} is invalid: {detail}"))
}

pub(crate) trait ResultExt<T> {
    /// Maps the error, naming a conflict generically.
    fn store(self) -> Result<T, StoreError>;
    /// Maps the error, naming a conflict with `what`.
    fn conflict(self, what: &str) -> Result<T, StoreError>;
}

impl<T> ResultExt<T> for Result<T, sqlx::Error> {
    fn store(self) -> Result<T, StoreError> {
        self.map_err(|e| map(e, "already exists"))
    }
    fn conflict(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|e| map(e, what))
    }
}

/// `NotFound` unless the statement changed a row.
pub(crate) fn expect_row(affected: u64) -> Result<(), StoreError> {
    if affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}
