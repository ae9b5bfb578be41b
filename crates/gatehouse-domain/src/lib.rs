//! The Gatehouse domain: the things an identity service is about, and the rules that hold
//! between them. It knows nothing of HTTP, SQL or JSON: the HTTP layer converts wire types to
//! these, and the store persists them behind the [`store::Store`] trait.

pub mod audit;
pub mod authorization;
pub mod backchannel;
pub mod client;
pub mod consent;
pub mod error;
pub mod federation;
pub mod group;
pub mod hooks;
pub mod ids;
pub mod lockout;
pub mod mfa;
pub mod passkey;
pub mod permission;
pub mod pool;
pub mod retention;
pub mod rotation;
pub mod security_event;
pub mod session;
pub mod ssf;
pub mod store;
pub mod theme;
pub mod time;
pub mod txn;
pub mod urls;
pub mod user;

pub use error::ParseError;
