//! Gatehouse's cryptography, in one place: signing keys and JWS, keys at rest, password hashing,
//! and secrets. Private-key operations go through aws-lc-rs only.

pub mod jws;
pub mod keys;
pub mod password;
pub mod secret;
pub mod totp;
pub mod upstream;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key generation failed")]
    KeyGeneration,
    #[error("the key is malformed or does not match its algorithm")]
    BadKey,
    #[error("signing failed")]
    Signing,
    #[error("sealed data could not be opened (wrong master key or tampered)")]
    Unseal,
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
    /// Too many passwords are waiting to be checked; try again after the given seconds.
    #[error("too many password checks are waiting; try again in {retry_after_secs} s")]
    Busy { retry_after_secs: u32 },
    /// The request the check was for was abandoned (its client gone, its deadline passed):
    /// it was not computed.
    #[error("the request was abandoned before its password was checked")]
    Abandoned,
}
