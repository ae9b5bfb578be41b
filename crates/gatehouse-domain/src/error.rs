/// Why a storage call failed. Defined here, below the storage traits (`store`, `ssf`,
/// `federation`, `txn`), which all return it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (a username, group name, host, link already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row to change does not exist in this pool.
    #[error("not found")]
    NotFound,
    /// The database failed; the message is for logs, never for clients.
    #[error("storage failure: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A value from outside did not parse into a domain type. The message is safe to show a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ParseError {
    pub field: &'static str,
    pub message: String,
}

impl ParseError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}
