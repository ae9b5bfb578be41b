//! Service errors: what went wrong, in terms the HTTP layer maps once to status codes.

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
    /// A failure that is ours, not the client's; logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ServiceError::Conflict(m),
            StoreError::NotFound => ServiceError::NotFound("resource"),
            StoreError::Backend(m) => ServiceError::Internal(m),
        }
    }
}

impl From<gatehouse_crypto::CryptoError> for ServiceError {
    fn from(e: gatehouse_crypto::CryptoError) -> Self {
        ServiceError::Internal(e.to_string())
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
