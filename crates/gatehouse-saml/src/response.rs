//! The assertion consumer service's check of a Response (HTTP-POST binding).
//!
//! Against signature wrapping: IDs are unique in the document, the Response holds exactly one
//! Assertion (as its child), each signature is a direct child of the element it signs and its
//! one Reference names that element's ID, and every value returned is read from the Response
//! root and that Assertion themselves, never found by searching the document.

use std::collections::{BTreeMap, HashSet};

use roxmltree::Node;

use crate::dsig;
use crate::error::{SamlError, excerpt};
use crate::metadata::IdpMetadata;
use crate::sp::SpConfig;
use crate::xml::{self, MAX_XML_BYTES, NS_DS, NS_SAML, NS_SAMLP, NS_XENC, STATUS_SUCCESS};

/// The clock skew allowed on either side of a time window, by default.
pub const DEFAULT_CLOCK_SKEW_SECS: i64 = 60;

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// Which request, if any, the Response must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InResponseTo {
    /// SP-initiated: the ID of the AuthnRequest this browser was sent with. The bearer
    /// confirmation must name it, and so must the Response if it names any.
    Expected(String),
    /// IdP-initiated: no request was sent, so a Response naming one is refused (it answers a
    /// request of another browser, or of another SP).
    Unsolicited,
}

/// What a Response is checked against.
#[derive(Debug, Clone)]
pub struct ResponseCheck<'a> {
    /// The SP's entity ID: the audience required.
    pub sp_entity_id: &'a str,
    /// The assertion consumer service URL: the Destination and the confirmation's Recipient.
    pub acs_url: &'a str,
    /// The identity provider: its entity ID is the Issuer required, its certificates the keys.
    pub idp: &'a IdpMetadata,
    pub in_response_to: InResponseTo,
    /// Now, in Unix seconds.
    pub now: i64,
    /// Seconds of clock skew allowed (see [`DEFAULT_CLOCK_SKEW_SECS`]).
    pub skew: i64,
}

impl<'a> ResponseCheck<'a> {
    /// The check for this SP and IdP with the default skew.
    pub fn new(
        sp: &'a SpConfig,
        idp: &'a IdpMetadata,
        in_response_to: InResponseTo,
        now: i64,
    ) -> Self {
        Self {
            sp_entity_id: &sp.entity_id,
            acs_url: &sp.acs_url,
            idp,
            in_response_to,
            now,
            skew: DEFAULT_CLOCK_SKEW_SECS,
        }
    }
}

/// A verified assertion: who signed in, and what the IdP says about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// The assertion's ID: remember it until `expires_at` and refuse it if it comes again.
    pub id: String,
    /// The IdP's entity ID.
    pub issuer: String,
    /// The subject's NameID, exactly as signed.
    pub name_id: String,
    pub name_id_format: Option<String>,
    /// The IdP's session, for single logout.
    pub session_index: Option<String>,
    /// Attribute name → values, in document order.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// Unix seconds: the earliest of the bearer confirmation's and the conditions'
    /// NotOnOrAfter; after it (and the skew) the assertion is refused anyway.
    pub expires_at: i64,
    /// The request this answers (`None` for IdP-initiated sign-in).
    pub in_response_to: Option<String>,
    /// Unix seconds: when the user authenticated at the IdP.
    pub authn_instant: i64,
    /// Unix seconds: when the IdP says the session it started ends, if it says so
    /// (`SessionNotOnOrAfter`); a session built on this assertion should not outlive it.
    pub session_not_on_or_after: Option<i64>,
}

/// The `InResponseTo` a Response names, read WITHOUT verifying anything: only a key to find
/// the request the caller kept (then [`verify_response`] with `InResponseTo::Expected`), for
/// a caller that cannot tell SP- from IdP-initiated sign-in by its RelayState. `None` means the
/// Response claims to be unsolicited.
pub fn peek_in_response_to(saml_response_b64: &str) -> Result<Option<String>, SamlError> {
    let bytes = xml::decode_base64_capped(saml_response_b64, MAX_XML_BYTES)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| SamlError::Utf8)?;
    let doc = xml::parse(text)?;
    let response = doc.root_element();
    if !xml::is(response, NS_SAMLP, "Response") {
        return Err(SamlError::Structure("the root is not a samlp:Response"));
    }
    Ok(response
        .attribute("InResponseTo")
        .filter(|v| !v.is_empty())
        .map(str::to_owned))
}

/// The Issuer a base64 `SAMLResponse` claims, **unverified**: only to choose which identity
/// provider's metadata to verify it with (an unsolicited response names no request that would
/// say). The Response's own Issuer, else its single assertion's. Nothing read here is trusted;
/// [`verify_response`] then requires that provider to have signed it.
pub fn response_issuer(saml_response_b64: &str) -> Result<String, SamlError> {
    let bytes = xml::decode_base64_capped(saml_response_b64, MAX_XML_BYTES)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| SamlError::Utf8)?;
    let doc = xml::parse(text)?;
    let response = doc.root_element();
    if !xml::is(response, NS_SAMLP, "Response") {
        return Err(SamlError::Structure("the root is not a samlp:Response"));
    }
    if let Some(issuer) = xml::child(response, NS_SAML, "Issuer")? {
        return xml::trimmed_text(issuer);
    }
    let assertion = xml::required_child(response, NS_SAML, "Assertion")?;
    xml::trimmed_text(xml::required_child(assertion, NS_SAML, "Issuer")?)
}

/// Verifies a base64 `SAMLResponse` (HTTP-POST binding) and returns its assertion.
///
/// The caller must then refuse an `Assertion::id` it has seen before (and remember this one
/// until `expires_at`), and for SP-initiated sign-in consume the request it expected.
pub fn verify_response(
    saml_response_b64: &str,
    check: &ResponseCheck<'_>,
) -> Result<Assertion, SamlError> {
    let bytes = xml::decode_base64_capped(saml_response_b64, MAX_XML_BYTES)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| SamlError::Utf8)?;
    let doc = xml::parse(text)?;
    let response = doc.root_element();
    if !xml::is(response, NS_SAMLP, "Response") {
        return Err(SamlError::Structure("the root is not a samlp:Response"));
    }
    if response.attribute("Version") != Some("2.0") {
        return Err(SamlError::Structure("not SAML 2.0"));
    }

    // The IdP's answer, before anything else: an error response carries no assertion.
    let status = xml::required_child(response, NS_SAMLP, "Status")?;
    let code = xml::required_child(status, NS_SAMLP, "StatusCode")?;
    let code = code.attribute("Value").unwrap_or("");
    if code != STATUS_SUCCESS {
        return Err(SamlError::Status(excerpt(code)));
    }

    unique_ids(&doc)?;
    if doc.descendants().any(|n| {
        n.is_element()
            && (n.tag_name().namespace() == Some(NS_XENC)
                || xml::is(n, NS_SAML, "EncryptedAssertion")
                || xml::is(n, NS_SAML, "EncryptedID")
                || xml::is(n, NS_SAML, "EncryptedAttribute"))
    }) {
        return Err(SamlError::EncryptedUnsupported);
    }
    let count = doc
        .descendants()
        .filter(|n| xml::is(*n, NS_SAML, "Assertion"))
        .count();
    if count != 1 {
        return Err(SamlError::AssertionCount(count));
    }
    let assertion = xml::required_child(response, NS_SAML, "Assertion")
        .map_err(|_| SamlError::Structure("the assertion is not a child of the response"))?;

    // Signatures: the assertion's, the response's, or both; each present one must verify.
    let keys = check.idp.keys();
    let assertion_sig = xml::child(assertion, NS_DS, "Signature")?;
    let response_sig = xml::child(response, NS_DS, "Signature")?;
    if assertion_sig.is_none() && response_sig.is_none() {
        return Err(SamlError::Unsigned);
    }
    if let Some(sig) = assertion_sig {
        dsig::verify_enveloped(assertion, sig, keys)?;
    }
    if let Some(sig) = response_sig {
        dsig::verify_enveloped(response, sig, keys)?;
    }

    // The Response's own fields.
    match response.attribute("Destination") {
        Some(d) if d != check.acs_url => return Err(SamlError::DestinationMismatch),
        None if response_sig.is_some() => return Err(SamlError::DestinationMissing),
        _ => {}
    }
    if let Some(issuer) = xml::child(response, NS_SAML, "Issuer")?
        && xml::trimmed_text(issuer)? != check.idp.entity_id
    {
        return Err(SamlError::IssuerMismatch);
    }
    // An empty InResponseTo (not a valid xs:NCName; some IdPs write one for unsolicited
    // responses) names no request.
    let response_irt = response.attribute("InResponseTo").filter(|v| !v.is_empty());
    check_in_response_to(response_irt, &check.in_response_to, Presence::Optional)?;

    read_assertion(assertion, check, response_irt)
}

fn unique_ids(doc: &roxmltree::Document<'_>) -> Result<(), SamlError> {
    let mut seen = HashSet::new();
    for n in doc.descendants().filter(|n| n.is_element()) {
        for a in n.attributes() {
            if a.namespace().is_none()
                && matches!(a.name(), "ID" | "Id" | "id")
                && !seen.insert(a.value())
            {
                return Err(SamlError::DuplicateId);
            }
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Presence {
    Required,
    Optional,
}

fn check_in_response_to(
    value: Option<&str>,
    rule: &InResponseTo,
    presence: Presence,
) -> Result<(), SamlError> {
    match (rule, value) {
        (InResponseTo::Unsolicited, None) => Ok(()),
        (InResponseTo::Unsolicited, Some(_)) => Err(SamlError::InResponseToMismatch),
        (InResponseTo::Expected(id), Some(v)) if v == id => Ok(()),
        (InResponseTo::Expected(_), None) if presence == Presence::Optional => Ok(()),
        (InResponseTo::Expected(_), _) => Err(SamlError::InResponseToMismatch),
    }
}

fn time_attr(node: Node<'_, '_>, name: &'static str) -> Result<Option<i64>, SamlError> {
    node.attribute(name).map(xml::parse_time).transpose()
}

/// `not_before`/`not_on_or_after` hold `now`, with the skew on both sides.
fn check_window(
    now: i64,
    skew: i64,
    not_before: Option<i64>,
    not_on_or_after: Option<i64>,
) -> Result<(), SamlError> {
    if let Some(nb) = not_before
        && now.saturating_add(skew) < nb
    {
        return Err(SamlError::NotYetValid);
    }
    if let Some(noa) = not_on_or_after
        && now.saturating_sub(skew) >= noa
    {
        return Err(SamlError::Expired);
    }
    Ok(())
}

fn read_assertion(
    assertion: Node<'_, '_>,
    check: &ResponseCheck<'_>,
    response_irt: Option<&str>,
) -> Result<Assertion, SamlError> {
    if assertion.attribute("Version") != Some("2.0") {
        return Err(SamlError::Structure("not SAML 2.0"));
    }
    let id = assertion
        .attribute("ID")
        .filter(|id| !id.is_empty())
        .ok_or(SamlError::Missing("Assertion ID"))?
        .to_owned();
    let issuer = xml::trimmed_text(xml::required_child(assertion, NS_SAML, "Issuer")?)?;
    if issuer != check.idp.entity_id {
        return Err(SamlError::IssuerMismatch);
    }

    // Conditions: the time window and the audience.
    let conditions = xml::required_child(assertion, NS_SAML, "Conditions")?;
    let conditions_noa = time_attr(conditions, "NotOnOrAfter")?;
    check_window(
        check.now,
        check.skew,
        time_attr(conditions, "NotBefore")?,
        conditions_noa,
    )?;
    let mut restrictions = xml::children(conditions, NS_SAML, "AudienceRestriction").peekable();
    if restrictions.peek().is_none() {
        return Err(SamlError::AudienceMismatch);
    }
    for r in restrictions {
        let mut ours = false;
        for a in xml::children(r, NS_SAML, "Audience") {
            ours |= xml::trimmed_text(a)? == check.sp_entity_id;
        }
        if !ours {
            return Err(SamlError::AudienceMismatch);
        }
    }

    // The subject and its bearer confirmation for this ACS.
    let subject = xml::required_child(assertion, NS_SAML, "Subject")?;
    let name_id_node = xml::required_child(subject, NS_SAML, "NameID")?;
    let name_id = xml::trimmed_text(name_id_node)?;
    if name_id.is_empty() {
        return Err(SamlError::Missing("NameID"));
    }
    let mut confirmed = Err(SamlError::RecipientMismatch);
    for sc in xml::children(subject, NS_SAML, "SubjectConfirmation") {
        if sc.attribute("Method") != Some(BEARER) {
            continue;
        }
        confirmed = bearer_confirmation(sc, check);
        if confirmed.is_ok() {
            break;
        }
    }
    let (confirmation_noa, confirmation_irt) = confirmed?;

    let authn = xml::children(assertion, NS_SAML, "AuthnStatement")
        .next()
        .ok_or(SamlError::NoAuthnStatement)?;
    let authn_instant = xml::parse_time(
        authn
            .attribute("AuthnInstant")
            .ok_or(SamlError::Missing("AuthnInstant"))?,
    )?;

    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for statement in xml::children(assertion, NS_SAML, "AttributeStatement") {
        for attr in xml::children(statement, NS_SAML, "Attribute") {
            let name = attr
                .attribute("Name")
                .ok_or(SamlError::Missing("Attribute Name"))?;
            let values = attributes.entry(name.to_owned()).or_default();
            for v in xml::children(attr, NS_SAML, "AttributeValue") {
                values.push(xml::text(v)?);
            }
        }
    }

    Ok(Assertion {
        id,
        issuer,
        name_id,
        name_id_format: name_id_node.attribute("Format").map(str::to_owned),
        session_index: authn.attribute("SessionIndex").map(str::to_owned),
        attributes,
        expires_at: conditions_noa.map_or(confirmation_noa, |c| c.min(confirmation_noa)),
        in_response_to: confirmation_irt.or(response_irt.map(str::to_owned)),
        authn_instant,
        session_not_on_or_after: time_attr(authn, "SessionNotOnOrAfter")?,
    })
}

/// A bearer SubjectConfirmation for this ACS, in its time window, answering the right
/// request: its NotOnOrAfter and InResponseTo.
fn bearer_confirmation(
    sc: Node<'_, '_>,
    check: &ResponseCheck<'_>,
) -> Result<(i64, Option<String>), SamlError> {
    let data = xml::required_child(sc, NS_SAML, "SubjectConfirmationData")?;
    if data.attribute("Recipient") != Some(check.acs_url) {
        return Err(SamlError::RecipientMismatch);
    }
    let noa = time_attr(data, "NotOnOrAfter")?.ok_or(SamlError::Missing("NotOnOrAfter"))?;
    check_window(
        check.now,
        check.skew,
        time_attr(data, "NotBefore")?,
        Some(noa),
    )?;
    let irt = data.attribute("InResponseTo").filter(|v| !v.is_empty());
    check_in_response_to(irt, &check.in_response_to, Presence::Required)?;
    Ok((noa, irt.map(str::to_owned)))
}
