//! The authorization code flow's stored values: codes and refresh tokens, each kept only as
//! the SHA-256 of a 256-bit random secret (SPEC §9), each consumed by one atomic
//! compare-and-set.

use crate::ids::{ClientId, PoolId, SessionId, UserId};
use crate::time::Timestamp;

/// A checked authorization request: what the sign-in pages carry from step to step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
}

impl AuthorizationRequest {
    /// Whether `prompt` holds this value.
    pub fn prompts(&self, p: &str) -> bool {
        self.prompt.iter().any(|x| x == p)
    }
}

/// How long an authorization code may be exchanged (RFC 6749 §4.1.2 recommends at most ten
/// minutes; one is plenty for a redirect).
pub const CODE_TTL_SECS: i64 = 60;

/// An authorization code, issued in a browser session to one client for one redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub pool: PoolId,
    pub code_sha256: [u8; 32],
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub user_id: UserId,
    /// The browser session the user authorized in.
    pub browser_session: SessionId,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    /// The PKCE S256 challenge (RFC 7636), when the request carried one.
    pub code_challenge: Option<String>,
    /// When the user last authenticated in that browser session.
    pub auth_time: Timestamp,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What presenting a code finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeTaken {
    /// Never presented before: it is used now.
    Fresh(Box<AuthorizationCode>),
    /// Presented before: the session its first exchange started, if any, which the replay
    /// ends (RFC 6749 §4.1.2: revoke what the code issued).
    Replayed {
        issued: Option<SessionId>,
    },
    Unknown,
}

/// A refresh token: one of an authorization's family, good for one use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub pool: PoolId,
    pub token_sha256: [u8; 32],
    /// The authorization (an `Authorized` session) whose family it belongs to.
    pub session: SessionId,
    pub client_id: ClientId,
    pub user_id: UserId,
    pub scopes: Vec<String>,
    pub auth_time: Timestamp,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What presenting a refresh token finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshTaken {
    /// Not used before: it is used now.
    Fresh(Box<RefreshToken>),
    /// Used before: someone holds a copy, so its whole family ends.
    Reused(Box<RefreshToken>),
    Unknown,
}
