//! App clients: the OAuth clients of a pool.

use std::fmt;

use crate::ParseError;
use crate::ids::{ClientId, PoolId};
use crate::permission::Scope;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppClient {
    pub pool: PoolId,
    pub client_id: ClientId,
    pub name: String,
    /// SHA-256 of the secret; `None` for a public client.
    pub secret_sha256: Option<SecretDigest>,
    pub scopes: Vec<Scope>,
    pub grant_types: Vec<GrantType>,
    pub redirect_uris: Vec<String>,
    pub created_at: Timestamp,
}

/// SHA-256 of a client secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest(pub [u8; 32]);

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest([redacted])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    ClientCredentials,
    AuthorizationCode,
    RefreshToken,
    TokenExchange,
}

impl GrantType {
    pub const TOKEN_EXCHANGE_URN: &'static str = "urn:ietf:params:oauth:grant-type:token-exchange";

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::TokenExchange => Self::TOKEN_EXCHANGE_URN,
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "client_credentials" => Ok(Self::ClientCredentials),
            "authorization_code" => Ok(Self::AuthorizationCode),
            "refresh_token" => Ok(Self::RefreshToken),
            Self::TOKEN_EXCHANGE_URN => Ok(Self::TokenExchange),
            _ => Err(ParseError::new(
                "grant_types",
                format!("unknown grant type '{s}'"),
            )),
        }
    }
}

pub fn validate_client_name(name: &str) -> Result<(), ParseError> {
    let n = name.chars().count();
    if n == 0 || n > 128 || name.chars().any(char::is_control) {
        return Err(ParseError::new("name", "must be 1 to 128 characters"));
    }
    Ok(())
}
