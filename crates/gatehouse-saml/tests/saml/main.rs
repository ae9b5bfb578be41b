//! gatehouse-saml's integration tests, one binary: the assertion consumer service against
//! samlify's Responses and the attacks on it, the redirect binding, metadata and logout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod idp_peer;
mod redirect;
mod response;
