//! Why a token is refused, and why a verifier could not be built.

/// A refused token. Every variant but [`VerifyError::Stale`] and
/// [`VerifyError::Unavailable`] means the token itself is not acceptable (HTTP 401,
/// `invalid_token`); those two mean the verifier cannot currently tell (HTTP 503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token's type is not the expected one")]
    Type,
    #[error("the token names no key of the pool")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token's issuer is not the pool")]
    Issuer,
    #[error("the token is not meant for this service")]
    Audience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token lacks a required claim")]
    MissingClaim,
    #[error("the token has been revoked ({0})")]
    Revoked(RevokedBy),
    #[error("the pool says the token is not active")]
    Inactive,
    #[error("the revocation feed is stale: tokens cannot be checked")]
    Stale,
    #[error("the pool could not be asked about the token")]
    Unavailable,
}

impl VerifyError {
    /// Whether the refusal is about the verifier's own state rather than the token.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Stale | Self::Unavailable)
    }
}

/// The revocation rule that refused a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedBy {
    Session,
    Token,
    User,
    Group,
    Pool,
}

impl std::fmt::Display for RevokedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Session => "session",
            Self::Token => "token",
            Self::User => "user",
            Self::Group => "group",
            Self::Pool => "pool",
        })
    }
}

/// Why [`crate::VerifierBuilder::build`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the issuer is not an http(s) URL: {0}")]
    Issuer(String),
    #[error("the pool's discovery document could not be read: {0}")]
    Discovery(String),
    #[error("the pool's JWKS could not be read: {0}")]
    Jwks(String),
    #[error("the configuration is not usable: {0}")]
    Config(&'static str),
}
