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
    Assertion, DEFAULT_CLOCK_SKEW_SECS, InResponseTo, ResponseCheck, verify_response,
};
pub use sp::{SpConfig, SpKey};
pub use xml::MAX_XML_BYTES;
