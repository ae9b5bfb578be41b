//! `gatehouse-saml`: a SAML 2.0 service provider's protocol logic, with no I/O.
//!
//! The caller serves what this crate writes and keeps what it must remember:
//! - [`sp_metadata`] at `{base}/saml2/metadata` (the SP's entity ID is that URL);
//! - [`authn_request_redirect`] for SP-initiated sign-in: redirect the browser to its URL and
//!   keep its ID with the browser's state;
//! - [`verify_response`] at `{base}/saml2/idpresponse` (HTTP-POST): the `SAMLResponse` form
//!   field, checked against a [`ResponseCheck`]; then refuse an [`Assertion::id`] seen before
//!   and remember it until [`Assertion::expires_at`];
//! - single logout: [`logout_request_redirect`] and [`verify_logout_response_redirect`], or
//!   for the IdP's request [`verify_logout_request_redirect`] and [`logout_response_redirect`];
//! - [`default_claim`] maps AD FS and OID attribute names to profile claims.
//!
//! Times are inputs (Unix seconds), never read from the system clock.
//!
//! ```no_run
//! use gatehouse_saml::*;
//! # fn run(idp_metadata_xml: &str, saml_response: &str, now: i64) -> Result<(), SamlError> {
//! let base = "https://id.example.com/pools/acme";
//! let sp = SpConfig {
//!     entity_id: format!("{base}/saml2/metadata"),
//!     acs_url: format!("{base}/saml2/idpresponse"),
//!     slo_url: Some(format!("{base}/saml2/logout")),
//!     key: SpKey::generate()?, // store `key.pkcs8_der()` (sealed); `SpKey::from_pkcs8` again
//! };
//! let idp = IdpMetadata::parse(idp_metadata_xml)?;
//! // Sign-in starts: redirect the browser, keep `request.id` with its state.
//! let request = authn_request_redirect(&sp, &idp, Some("opaque-state"), now)?;
//! // The browser comes back with a POST to the ACS.
//! let check = ResponseCheck::new(&sp, &idp, InResponseTo::Expected(request.id), now);
//! let assertion = verify_response(saml_response, &check)?;
//! // Refuse `assertion.id` if seen before; remember it until `assertion.expires_at`.
//! for (name, values) in &assertion.attributes {
//!     if let Some(claim) = default_claim(name) {
//!         println!("{claim}: {values:?}"); // e.g. email: ["alice@example.com"]
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! What is refused, by design: DTDs, documents over [`MAX_XML_BYTES`], unsigned responses,
//! SHA-1, encrypted assertions (not supported yet), keys other than the metadata's, more than
//! one assertion, duplicate IDs, and signatures that do not enclose what they reference.

mod c14n;
mod cert;
mod claims;
mod dsig;
mod error;
mod logout;
mod metadata;
mod redirect;
mod request;
mod response;
mod sp;
mod xml;

pub use claims::default_claim;
pub use error::SamlError;
pub use logout::{
    LogoutCheck, LogoutRequest, LogoutResponse, logout_request_redirect, logout_response_redirect,
    verify_logout_request_redirect, verify_logout_response_redirect,
};
pub use metadata::{IdpMetadata, SloEndpoint, sp_metadata};
pub use request::{OutgoingRedirect, authn_request_redirect};
pub use response::{
    Assertion, DEFAULT_CLOCK_SKEW_SECS, InResponseTo, ResponseCheck, peek_in_response_to,
    response_issuer, verify_response,
};
pub use sp::{SpConfig, SpKey};
pub use xml::MAX_XML_BYTES;
