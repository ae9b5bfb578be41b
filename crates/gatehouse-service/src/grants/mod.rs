//! The token endpoint's grants, one file each (RFC 6749 §4, RFC 8693).

pub mod authorization_code;
pub mod client_credentials;
pub mod token_exchange;
