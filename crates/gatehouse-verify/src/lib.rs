//! `gatehouse-verify`: verifies a Gatehouse pool's access tokens inside a downstream service,
//! and follows the pool's revocation feed so that a revoked session, token, user or pool is
//! refused within a second, with no call to Gatehouse per request.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use gatehouse_verify::{Verifier, VerifyLayer, VerifiedToken};
//!
//! let verifier = Verifier::builder("https://gatehouse.example/pools/acme")
//!     .audience("https://api.example")
//!     .feed_credentials("client-id", "client-secret")
//!     .build()
//!     .await?;
//! let app: axum::Router = axum::Router::new()
//!     .route("/whoami", axum::routing::get(|VerifiedToken(claims): VerifiedToken| async move {
//!         claims.sub
//!     }))
//!     .layer(VerifyLayer::new(verifier));
//! # Ok(()) }
//! ```
//!
//! What it checks: the algorithm (an allow-list of asymmetric ones; the key's type must match
//! it), `typ`, the key (the pool's JWKS, fetched again at most once per interval for an
//! unknown `kid`), the signature, `iss`, `aud`, `exp`/`nbf` with a leeway, and the presence of
//! `exp`, `iat` and `sub`; then the revocation state the feed built.

mod claims;
mod clock;
mod error;
mod feed;
mod health;
mod keys;
mod middleware;
mod revocations;
mod set;
mod verifier;

pub use claims::Claims;
pub use clock::{Clock, SystemClock};
pub use error::{BuildError, RevokedBy, VerifyError};
pub use health::{CallCounts, FeedState, Health};
pub use keys::Alg;
pub use middleware::{Refusal, RefusalKind, VerifiedToken, VerifyLayer, VerifyService, bearer};
pub use revocations::Effect;
pub use verifier::{StalenessPolicy, Verifier, VerifierBuilder};
