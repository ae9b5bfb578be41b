//! SP-initiated sign-in: the signed AuthnRequest, sent by the HTTP-Redirect binding.

use url::Url;

use crate::error::SamlError;
use crate::metadata::IdpMetadata;
use crate::redirect::{self, Param};
use crate::sp::SpConfig;
use crate::xml::{BINDING_POST, NS_SAML, NS_SAMLP, escape, format_time, random_id};

/// A message on its way to the identity provider: the URL to redirect the browser to, and the
/// message's ID, which the caller keeps (with the browser's state) until the answer arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRedirect {
    /// The message's ID: the `InResponseTo` the answer must carry.
    pub id: String,
    /// The identity provider's endpoint with `SAMLRequest`/`SAMLResponse`, `RelayState`,
    /// `SigAlg` and `Signature`.
    pub url: Url,
}

/// A signed AuthnRequest for the IdP's HTTP-Redirect SingleSignOnService, asking for the
/// answer by HTTP-POST at the SP's assertion consumer service. `now` is Unix seconds.
pub fn authn_request_redirect(
    sp: &SpConfig,
    idp: &IdpMetadata,
    relay_state: Option<&str>,
    now: i64,
) -> Result<OutgoingRedirect, SamlError> {
    let destination = idp
        .sso_redirect
        .as_ref()
        .ok_or(SamlError::NoEndpoint("HTTP-Redirect single sign-on"))?;
    let id = random_id()?;
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="{NS_SAMLP}" xmlns:saml="{NS_SAML}" ID="{id}" Version="2.0" IssueInstant="{instant}" Destination="{dest}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="{BINDING_POST}"><saml:Issuer>{issuer}</saml:Issuer><samlp:NameIDPolicy AllowCreate="true"/></samlp:AuthnRequest>"#,
        instant = format_time(now)?,
        dest = escape(destination.as_str()),
        acs = escape(&sp.acs_url),
        issuer = escape(&sp.entity_id),
    );
    let url = redirect::encode(&sp.key, destination, Param::Request, &xml, relay_state)?;
    Ok(OutgoingRedirect { id, url })
}
