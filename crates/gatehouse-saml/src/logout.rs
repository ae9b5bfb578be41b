//! Single logout over the HTTP-Redirect binding: our signed LogoutRequest to the IdP and the
//! check of its LogoutResponse; the IdP's LogoutRequest and our LogoutResponse to it.

use crate::error::{SamlError, excerpt};
use crate::metadata::IdpMetadata;
use crate::redirect::{self, Param};
use crate::request::OutgoingRedirect;
use crate::response::DEFAULT_CLOCK_SKEW_SECS;
use crate::sp::SpConfig;
use crate::xml::{self, NS_SAML, NS_SAMLP, STATUS_SUCCESS, escape, format_time, random_id};

/// How long a LogoutRequest Gatehouse sends stays valid.
const LOGOUT_REQUEST_LIFETIME_SECS: i64 = 300;

/// A signed LogoutRequest for the IdP's HTTP-Redirect SingleLogoutService, naming the
/// subject and the IdP session (from the [`crate::Assertion`] the session began with).
pub fn logout_request_redirect(
    sp: &SpConfig,
    idp: &IdpMetadata,
    name_id: &str,
    name_id_format: Option<&str>,
    session_index: Option<&str>,
    relay_state: Option<&str>,
    now: i64,
) -> Result<OutgoingRedirect, SamlError> {
    let slo = idp
        .slo_redirect
        .as_ref()
        .ok_or(SamlError::NoEndpoint("HTTP-Redirect single logout"))?;
    let id = random_id()?;
    let format = name_id_format
        .map(|f| format!(" Format=\"{}\"", escape(f)))
        .unwrap_or_default();
    let session = session_index
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", escape(s)))
        .unwrap_or_default();
    let xml = format!(
        r#"<samlp:LogoutRequest xmlns:samlp="{NS_SAMLP}" xmlns:saml="{NS_SAML}" ID="{id}" Version="2.0" IssueInstant="{instant}" NotOnOrAfter="{until}" Destination="{dest}"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID{format}>{name}</saml:NameID>{session}</samlp:LogoutRequest>"#,
        instant = format_time(now)?,
        until = format_time(now.saturating_add(LOGOUT_REQUEST_LIFETIME_SECS))?,
        dest = escape(slo.location.as_str()),
        issuer = escape(&sp.entity_id),
        name = escape(name_id),
    );
    let url = redirect::encode(&sp.key, &slo.location, Param::Request, &xml, relay_state)?;
    Ok(OutgoingRedirect { id, url })
}

/// A signed LogoutResponse (Success) answering the IdP's LogoutRequest `in_response_to`.
pub fn logout_response_redirect(
    sp: &SpConfig,
    idp: &IdpMetadata,
    in_response_to: &str,
    relay_state: Option<&str>,
    now: i64,
) -> Result<OutgoingRedirect, SamlError> {
    let slo = idp
        .slo_redirect
        .as_ref()
        .ok_or(SamlError::NoEndpoint("HTTP-Redirect single logout"))?;
    let destination = slo.response_location.as_ref().unwrap_or(&slo.location);
    let id = random_id()?;
    let xml = format!(
        r#"<samlp:LogoutResponse xmlns:samlp="{NS_SAMLP}" xmlns:saml="{NS_SAML}" ID="{id}" Version="2.0" IssueInstant="{instant}" Destination="{dest}" InResponseTo="{irt}"><saml:Issuer>{issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value="{STATUS_SUCCESS}"/></samlp:Status></samlp:LogoutResponse>"#,
        instant = format_time(now)?,
        dest = escape(destination.as_str()),
        irt = escape(in_response_to),
        issuer = escape(&sp.entity_id),
    );
    let url = redirect::encode(&sp.key, destination, Param::Response, &xml, relay_state)?;
    Ok(OutgoingRedirect { id, url })
}

/// What a logout message arriving at the SP's single logout URL is checked against.
#[derive(Debug, Clone)]
pub struct LogoutCheck<'a> {
    /// The SP's single logout URL: the Destination required when one is named.
    pub slo_url: &'a str,
    pub idp: &'a IdpMetadata,
    /// Now, in Unix seconds.
    pub now: i64,
    pub skew: i64,
}

impl<'a> LogoutCheck<'a> {
    /// The check for this SP (which must have a single logout URL) with the default skew.
    pub fn new(sp: &'a SpConfig, idp: &'a IdpMetadata, now: i64) -> Result<Self, SamlError> {
        let slo_url = sp
            .slo_url
            .as_deref()
            .ok_or(SamlError::NoEndpoint("service provider single logout"))?;
        Ok(Self {
            slo_url,
            idp,
            now,
            skew: DEFAULT_CLOCK_SKEW_SECS,
        })
    }
}

/// An IdP-initiated LogoutRequest whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    /// Answer with [`logout_response_redirect`] naming this ID.
    pub id: String,
    pub name_id: String,
    pub name_id_format: Option<String>,
    /// The IdP sessions to end (none: every session of the subject).
    pub session_indexes: Vec<String>,
    pub relay_state: Option<String>,
}

/// The IdP's answer to our LogoutRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponse {
    pub id: String,
    pub in_response_to: String,
    pub relay_state: Option<String>,
}

/// Checks the common parts of a logout message: its Version, ID, Issuer and Destination.
fn common<'a>(
    node: roxmltree::Node<'a, '_>,
    check: &LogoutCheck<'_>,
) -> Result<&'a str, SamlError> {
    if node.attribute("Version") != Some("2.0") {
        return Err(SamlError::Structure("not SAML 2.0"));
    }
    let id = node
        .attribute("ID")
        .filter(|id| !id.is_empty())
        .ok_or(SamlError::Missing("ID"))?;
    let issuer = xml::required_child(node, NS_SAML, "Issuer")?;
    if xml::trimmed_text(issuer)? != check.idp.entity_id {
        return Err(SamlError::IssuerMismatch);
    }
    if let Some(dest) = node.attribute("Destination")
        && dest != check.slo_url
    {
        return Err(SamlError::DestinationMismatch);
    }
    Ok(id)
}

/// Verifies an IdP's LogoutRequest received by HTTP-Redirect. `raw_query` is the query
/// string exactly as received (the signature covers its encoded bytes).
pub fn verify_logout_request_redirect(
    raw_query: &str,
    check: &LogoutCheck<'_>,
) -> Result<LogoutRequest, SamlError> {
    let received = redirect::decode_verified(raw_query, Param::Request, check.idp)?;
    let doc = xml::parse(&received.xml)?;
    let root = doc.root_element();
    if !xml::is(root, NS_SAMLP, "LogoutRequest") {
        return Err(SamlError::Structure("not a LogoutRequest"));
    }
    let id = common(root, check)?;
    if let Some(noa) = root.attribute("NotOnOrAfter")
        && check.now.saturating_sub(check.skew) >= xml::parse_time(noa)?
    {
        return Err(SamlError::Expired);
    }
    if xml::child(root, NS_SAML, "EncryptedID")?.is_some() {
        return Err(SamlError::EncryptedUnsupported);
    }
    let name_id = xml::required_child(root, NS_SAML, "NameID")?;
    let mut session_indexes = Vec::new();
    for s in xml::children(root, NS_SAMLP, "SessionIndex") {
        session_indexes.push(xml::trimmed_text(s)?);
    }
    Ok(LogoutRequest {
        id: id.to_owned(),
        name_id: xml::trimmed_text(name_id)?,
        name_id_format: name_id.attribute("Format").map(str::to_owned),
        session_indexes,
        relay_state: received.relay_state,
    })
}

/// Verifies the IdP's LogoutResponse (HTTP-Redirect) to our request `expected_request_id`;
/// a status other than Success is an error.
pub fn verify_logout_response_redirect(
    raw_query: &str,
    check: &LogoutCheck<'_>,
    expected_request_id: &str,
) -> Result<LogoutResponse, SamlError> {
    let received = redirect::decode_verified(raw_query, Param::Response, check.idp)?;
    let doc = xml::parse(&received.xml)?;
    let root = doc.root_element();
    if !xml::is(root, NS_SAMLP, "LogoutResponse") {
        return Err(SamlError::Structure("not a LogoutResponse"));
    }
    let id = common(root, check)?;
    if root.attribute("InResponseTo") != Some(expected_request_id) {
        return Err(SamlError::InResponseToMismatch);
    }
    let status = xml::required_child(root, NS_SAMLP, "Status")?;
    let code = xml::required_child(status, NS_SAMLP, "StatusCode")?
        .attribute("Value")
        .unwrap_or("");
    if code != STATUS_SUCCESS {
        return Err(SamlError::Status(excerpt(code)));
    }
    Ok(LogoutResponse {
        id: id.to_owned(),
        in_response_to: expected_request_id.to_owned(),
        relay_state: received.relay_state,
    })
}
