//! Fixtures made by samlify (tests/peers/saml-fixtures.mjs) and the service provider they
//! were made for.

use base64::Engine as _;
use gatehouse_saml::{IdpMetadata, InResponseTo, ResponseCheck};

pub const SP_ENTITY: &str = "https://gatehouse.test/pools/acme/saml2/metadata";
pub const SP_ACS: &str = "https://gatehouse.test/pools/acme/saml2/idpresponse";
pub const SP_SLO: &str = "https://gatehouse.test/pools/acme/saml2/logout";
pub const REQUEST_ID: &str = "_gatehouse-request-0001";
/// 2026-01-01T00:00:00Z: the fixtures' IssueInstant and NotBefore.
pub const ISSUED: i64 = 1_767_225_600;
/// The fixtures' NotOnOrAfter, five minutes later.
pub const UNTIL: i64 = ISSUED + 300;
/// A minute into the window.
pub const NOW: i64 = ISSUED + 60;

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn idp() -> IdpMetadata {
    IdpMetadata::parse(&fixture("idp-metadata.xml")).unwrap()
}

pub fn b64(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml)
}

pub fn check(idp: &IdpMetadata, in_response_to: InResponseTo, now: i64) -> ResponseCheck<'_> {
    ResponseCheck {
        sp_entity_id: SP_ENTITY,
        acs_url: SP_ACS,
        idp,
        in_response_to,
        now,
        skew: 60,
    }
}

pub fn expected() -> InResponseTo {
    InResponseTo::Expected(REQUEST_ID.to_owned())
}

/// The substring from the first `start` to the first `end` after it, inclusive.
pub fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let s = text.find(start).unwrap_or_else(|| panic!("no {start}"));
    let e = s + text[s..].find(end).unwrap_or_else(|| panic!("no {end}")) + end.len();
    &text[s..e]
}
