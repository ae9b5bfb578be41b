//! Service errors: what went wrong, in terms the HTTP layer maps once to status codes.

use std::fmt;

use gatehouse_domain::ParseError;
use gatehouse_domain::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input broke a rule; the message is safe for the client.
    #[error("invalid input: {0}")]
    Invalid(#[from] ParseError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    /// No valid credential was presented (401).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The credential is valid but does not allow this (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// An error of the OAuth endpoints, answered as RFC 6749 §5.2.
    #[error("oauth error: {0:?}")]
    OAuth(OAuthError),
    /// What the request asks for is no longer kept (410): a feed cursor older than the
    /// retention horizon.
    #[error("gone: {0}")]
    Gone(String),
    /// Gatehouse is too busy to take this request now (503); it may be retried after the
    /// given seconds.
    #[error("busy: {detail}")]
    Busy {
        detail: String,
        retry_after_secs: u32,
    },
    /// Too many attempts (429); the next may be made after the given seconds.
    #[error("throttled: {detail}")]
    Throttled {
        detail: String,
        retry_after_secs: u32,
    },
    /// A pool's hook failed (it trapped, ran out of time, fuel or memory, or answered
    /// nonsense): the sign-in it was deciding fails closed. Its trigger and why.
    #[error("the {trigger} hook failed: {reason}")]
    HookFailed {
        trigger: &'static str,
        reason: String,
    },
    /// A failure that is ours, not the client's; logged, never shown. Displays as "internal
    /// error" only: the detail is reached through [`InternalError::detail`].
    #[error("{0}")]
    Internal(InternalError),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    /// An internal failure; `detail` (a driver's message, a broken stored value) is for the
    /// log only.
    pub fn internal(detail: impl fmt::Display) -> Self {
        ServiceError::Internal(InternalError::new(detail))
    }

    /// Too many attempts: the next may be made at `at` (at least a second from `now`).
    pub fn throttled_until(
        detail: impl Into<String>,
        at: gatehouse_domain::time::Timestamp,
        now: gatehouse_domain::time::Timestamp,
    ) -> Self {
        let wait = (at.as_secs() - now.as_secs()).max(1);
        ServiceError::Throttled {
            detail: detail.into(),
            retry_after_secs: u32::try_from(wait).unwrap_or(u32::MAX),
        }
    }

    /// The error as the operator who runs Gatehouse reads it (the command line, start-up):
    /// with the detail of an internal failure, which clients never see.
    pub fn for_operator(&self) -> String {
        match self {
            ServiceError::Internal(e) => format!("internal error: {}", e.detail()),
            e => e.to_string(),
        }
    }
}

/// What went wrong inside Gatehouse. Its `Display` says only "internal error", so that neither
/// `to_string()` nor `format!("{e}")` can carry a database driver's text (its host, user,
/// table names) to a client; the detail is for the log, through [`InternalError::detail`].
/// `Debug` shows it, for logs and failing tests.
pub struct InternalError(String);

impl InternalError {
    pub fn new(detail: impl fmt::Display) -> Self {
        Self(detail.to_string())
    }

    /// The detail, for the log only.
    pub fn detail(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InternalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("internal error")
    }
}

impl fmt::Debug for InternalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InternalError").field(&self.0).finish()
    }
}

impl std::error::Error for InternalError {}

impl From<String> for InternalError {
    fn from(detail: String) -> Self {
        Self(detail)
    }
}

impl From<&str> for InternalError {
    fn from(detail: &str) -> Self {
        Self(detail.to_owned())
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ServiceError::Conflict(m),
            StoreError::NotFound => ServiceError::NotFound("resource"),
            StoreError::Backend(m) => ServiceError::internal(m),
        }
    }
}

impl From<gatehouse_crypto::CryptoError> for ServiceError {
    fn from(e: gatehouse_crypto::CryptoError) -> Self {
        match e {
            gatehouse_crypto::CryptoError::Busy { retry_after_secs } => ServiceError::Busy {
                detail: e.to_string(),
                retry_after_secs,
            },
            // Nobody reads this answer; it is no failure of ours to log.
            gatehouse_crypto::CryptoError::Abandoned => ServiceError::Busy {
                detail: e.to_string(),
                retry_after_secs: 1,
            },
            e => ServiceError::internal(e),
        }
    }
}

/// RFC 6749 §5.2 error codes, plus RFC 7009's and RFC 8693's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    UnsupportedTokenType,
    InvalidTarget,
    /// RFC 6749 §4.1.2.1: the server cannot handle the request now (answered 503).
    TemporarilyUnavailable,
}

impl OAuthErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidTarget => "invalid_target",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }
}

impl From<OAuthError> for ServiceError {
    fn from(e: OAuthError) -> Self {
        ServiceError::OAuth(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_prints_no_detail() {
        let driver = "error returned from database: connection to postgres://gh@db/pool closed";
        for e in [
            ServiceError::internal(driver),
            ServiceError::from(StoreError::Backend(driver.to_owned())),
            ServiceError::Internal(driver.to_owned().into()),
        ] {
            assert_eq!(e.to_string(), "internal error");
            assert_eq!(format!("{e}"), "internal error");
            let ServiceError::Internal(inner) = &e else {
                panic!("not internal: {e:?}");
            };
            assert_eq!(inner.to_string(), "internal error");
            // The detail stays reachable for the log.
            assert_eq!(inner.detail(), driver);
        }
    }
}
