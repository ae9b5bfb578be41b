//! Identity provider metadata (read) and the SP's own metadata (written).

use base64::Engine as _;
use roxmltree::Node;
use url::Url;

use crate::cert::{self, PublicKey};
use crate::error::SamlError;
use crate::sp::SpConfig;
use crate::xml::{self, BINDING_POST, BINDING_REDIRECT, NS_DS, NS_MD, escape};

/// A single logout endpoint of the identity provider (HTTP-Redirect binding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SloEndpoint {
    /// Where LogoutRequests go.
    pub location: Url,
    /// Where LogoutResponses go, when it differs from `location`.
    pub response_location: Option<Url>,
}

/// What Gatehouse needs of an identity provider's metadata.
///
/// The metadata is trusted as a whole (an administrator uploaded it, or it was fetched from a
/// URL they gave): its signing certificates are the only keys messages are verified with. The
/// certificates' validity periods are not checked, as is usual for SAML metadata keys. A
/// signature on the metadata document itself is not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    /// The IdP's entity ID: the Issuer of its messages.
    pub entity_id: String,
    /// SingleSignOnService, HTTP-Redirect binding: where AuthnRequests go.
    pub sso_redirect: Option<Url>,
    /// SingleSignOnService, HTTP-POST binding, if offered.
    pub sso_post: Option<Url>,
    /// SingleLogoutService, HTTP-Redirect binding, if offered.
    pub slo_redirect: Option<SloEndpoint>,
    /// The signing certificates (`use="signing"` or no `use`), DER.
    pub signing_certificates: Vec<Vec<u8>>,
    /// `WantAuthnRequestsSigned` (Gatehouse signs its requests either way).
    pub want_authn_requests_signed: bool,
    keys: Vec<PublicKey>,
}

impl IdpMetadata {
    /// Reads an EntityDescriptor, or an EntitiesDescriptor holding exactly one identity
    /// provider. The document is size-capped before parsing and may not hold a DTD.
    pub fn parse(xml: &str) -> Result<Self, SamlError> {
        let doc = xml::parse(xml)?;
        let root = doc.root_element();
        let entity = if xml::is(root, NS_MD, "EntityDescriptor") {
            root
        } else if xml::is(root, NS_MD, "EntitiesDescriptor") {
            let mut idps = root.descendants().filter(|n| {
                xml::is(*n, NS_MD, "EntityDescriptor")
                    && xml::children(*n, NS_MD, "IDPSSODescriptor")
                        .next()
                        .is_some()
            });
            let first = idps.next().ok_or(SamlError::Missing("IDPSSODescriptor"))?;
            if idps.next().is_some() {
                return Err(SamlError::Structure("more than one identity provider"));
            }
            first
        } else {
            return Err(SamlError::Structure("not SAML metadata"));
        };
        let entity_id = entity
            .attribute("entityID")
            .filter(|e| !e.is_empty())
            .ok_or(SamlError::Missing("entityID"))?
            .to_owned();
        let idp = xml::required_child(entity, NS_MD, "IDPSSODescriptor")?;

        let endpoint = |name: &'static str,
                        binding: &str|
         -> Result<Option<Node<'_, '_>>, SamlError> {
            Ok(xml::children(idp, NS_MD, name).find(|e| e.attribute("Binding") == Some(binding)))
        };
        let location = |node: Node<'_, '_>, attr: &str| -> Result<Option<Url>, SamlError> {
            node.attribute(attr)
                .map(|l| Url::parse(l.trim()).map_err(|_| SamlError::Invalid("endpoint URL")))
                .transpose()
        };
        let sso_redirect = match endpoint("SingleSignOnService", BINDING_REDIRECT)? {
            Some(e) => location(e, "Location")?,
            None => None,
        };
        let sso_post = match endpoint("SingleSignOnService", BINDING_POST)? {
            Some(e) => location(e, "Location")?,
            None => None,
        };
        let slo_redirect = match endpoint("SingleLogoutService", BINDING_REDIRECT)? {
            Some(e) => match location(e, "Location")? {
                Some(loc) => Some(SloEndpoint {
                    location: loc,
                    response_location: location(e, "ResponseLocation")?,
                }),
                None => None,
            },
            None => None,
        };

        let mut signing_certificates = Vec::new();
        let mut keys = Vec::new();
        for kd in xml::children(idp, NS_MD, "KeyDescriptor") {
            if !matches!(kd.attribute("use"), None | Some("signing")) {
                continue;
            }
            let certs = kd
                .descendants()
                .filter(|n| xml::is(*n, NS_DS, "X509Certificate"));
            for c in certs {
                let compact: Vec<u8> = xml::text(c)?
                    .bytes()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                let der = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|_| SamlError::Invalid("certificate"))?;
                // A key of a kind Gatehouse cannot verify with is skipped, not fatal.
                if let Ok(key) = cert::public_key(&der) {
                    keys.push(key);
                    signing_certificates.push(der);
                }
            }
        }
        if keys.is_empty() {
            return Err(SamlError::NoSigningKey);
        }
        let want_authn_requests_signed = matches!(
            idp.attribute("WantAuthnRequestsSigned"),
            Some("true") | Some("1")
        );
        Ok(Self {
            entity_id,
            sso_redirect,
            sso_post,
            slo_redirect,
            signing_certificates,
            want_authn_requests_signed,
            keys,
        })
    }

    pub(crate) fn keys(&self) -> &[PublicKey] {
        &self.keys
    }
}

/// The SP's metadata document: an SPSSODescriptor that signs its requests and wants signed
/// assertions, its signing certificate, the assertion consumer service (HTTP-POST), the
/// single logout service (HTTP-Redirect) if configured, and the NameID formats it takes.
/// No encryption key is published, so identity providers do not encrypt assertions.
pub fn sp_metadata(sp: &SpConfig) -> String {
    let slo = match &sp.slo_url {
        Some(url) => format!(
            "\n    <md:SingleLogoutService Binding=\"{BINDING_REDIRECT}\" Location=\"{}\"/>",
            escape(url)
        ),
        None => String::new(),
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="{NS_MD}" xmlns:ds="{NS_DS}" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>{slo}
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{BINDING_POST}" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity = escape(&sp.entity_id),
        cert = sp.key.certificate_base64(),
        acs = escape(&sp.acs_url),
    )
}
