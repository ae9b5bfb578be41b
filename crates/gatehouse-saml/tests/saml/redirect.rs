//! The HTTP-Redirect binding: our AuthnRequest and logout messages (signatures checked here
//! with aws-lc-rs against the key in our certificate), samlify's logout messages, metadata.

use std::io::Read as _;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use base64::Engine as _;
use gatehouse_saml::{
    IdpMetadata, LogoutCheck, SamlError, SpConfig, SpKey, authn_request_redirect,
    logout_request_redirect, logout_response_redirect, sp_metadata, verify_logout_request_redirect,
    verify_logout_response_redirect,
};

use crate::common::*;

fn sp() -> SpConfig {
    SpConfig {
        entity_id: SP_ENTITY.to_owned(),
        acs_url: SP_ACS.to_owned(),
        slo_url: Some(SP_SLO.to_owned()),
        key: SpKey::generate().unwrap(),
    }
}

/// The raw query's parameters, and the signature checked over its exact bytes with the public
/// key our certificate carries. Returns the inflated message and the decoded parameters.
fn check_signed_redirect(
    sp: &SpConfig,
    url: &url::Url,
    param: &str,
) -> (String, Vec<(String, String)>) {
    let query = url.query().unwrap();
    let (signed, signature) = query.rsplit_once("&Signature=").unwrap();
    assert!(signed.starts_with(&format!("{param}=")), "{signed}");
    assert!(
        signed.ends_with("&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256")
    );
    let sig: String = url::form_urlencoded::parse(format!("s={signature}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .unwrap();

    // The certificate in the SP metadata carries the key that verifies the signature.
    let public = sp.key.public_key_der();
    let cert = sp.key.certificate_der();
    assert!(
        cert.windows(public.len()).any(|w| w == public),
        "the certificate holds the key"
    );
    let metadata = sp_metadata(sp);
    let cert_b64 = base64::engine::general_purpose::STANDARD.encode(cert);
    assert!(metadata.contains(&cert_b64));
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
        .verify(signed.as_bytes(), &sig)
        .expect("the redirect signature verifies");
    let mut tampered = signed.as_bytes().to_vec();
    tampered[param.len() + 3] ^= 1;
    assert!(
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
            .verify(&tampered, &sig)
            .is_err()
    );

    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let message = &params.iter().find(|(k, _)| k == param).unwrap().1;
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(message)
        .unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .read_to_string(&mut xml)
        .unwrap();
    (xml, params)
}

fn attr<'a>(doc: &'a roxmltree::Document<'_>, name: &str) -> &'a str {
    doc.root_element()
        .attribute(name)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn the_authn_request_is_signed_over_the_exact_query_and_says_what_it_must() {
    let sp = sp();
    let idp = idp();
    let out = authn_request_redirect(&sp, &idp, Some("state/with spaces&more"), ISSUED).unwrap();
    assert!(
        out.url
            .as_str()
            .starts_with("https://idp.test/sso?SAMLRequest=")
    );
    let (xml, params) = check_signed_redirect(&sp, &out.url, "SAMLRequest");
    assert!(params.contains(&("RelayState".to_owned(), "state/with spaces&more".to_owned())));
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "AuthnRequest");
    assert_eq!(attr(&doc, "ID"), out.id);
    assert!(out.id.starts_with('_') && out.id.len() == 41);
    assert_eq!(attr(&doc, "Version"), "2.0");
    assert_eq!(attr(&doc, "IssueInstant"), "2026-01-01T00:00:00Z");
    assert_eq!(attr(&doc, "Destination"), "https://idp.test/sso");
    assert_eq!(attr(&doc, "AssertionConsumerServiceURL"), SP_ACS);
    assert_eq!(
        attr(&doc, "ProtocolBinding"),
        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    );
    let issuer = root
        .children()
        .find(|c| c.tag_name().name() == "Issuer")
        .unwrap();
    assert_eq!(issuer.text(), Some(SP_ENTITY));
    // Every request has an ID of its own.
    let again = authn_request_redirect(&sp, &idp, None, ISSUED).unwrap();
    assert_ne!(again.id, out.id);
    assert!(!again.url.as_str().contains("RelayState"));
}

#[test]
fn an_idp_without_a_redirect_endpoint_gets_no_request() {
    let xml = fixture("idp-metadata.xml").replace(
        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"https://idp.test/sso\"",
        "urn:oasis:names:tc:SAML:2.0:bindings:SOAP\" Location=\"https://idp.test/sso\"",
    );
    let idp = IdpMetadata::parse(&xml).unwrap();
    assert!(idp.sso_redirect.is_none());
    assert!(matches!(
        authn_request_redirect(&sp(), &idp, None, ISSUED),
        Err(SamlError::NoEndpoint(_))
    ));
}

#[test]
fn the_sp_key_reloads_with_the_same_certificate() {
    let key = SpKey::generate().unwrap();
    let again = SpKey::from_pkcs8(key.pkcs8_der()).unwrap();
    assert_eq!(key.certificate_der(), again.certificate_der());
    assert!(format!("{key:?}").contains("redacted"));
    assert!(SpKey::from_pkcs8(b"not a key").is_err());
}

#[test]
fn sp_metadata_describes_the_service_provider() {
    let sp = sp();
    let xml = sp_metadata(&sp);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.attribute("entityID"), Some(SP_ENTITY));
    let sso = root.first_element_child().unwrap();
    assert_eq!(sso.tag_name().name(), "SPSSODescriptor");
    assert_eq!(sso.attribute("AuthnRequestsSigned"), Some("true"));
    assert_eq!(sso.attribute("WantAssertionsSigned"), Some("true"));
    let acs = sso
        .children()
        .find(|c| c.tag_name().name() == "AssertionConsumerService")
        .unwrap();
    assert_eq!(acs.attribute("Location"), Some(SP_ACS));
    assert_eq!(
        acs.attribute("Binding"),
        Some("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST")
    );
    let slo = sso
        .children()
        .find(|c| c.tag_name().name() == "SingleLogoutService")
        .unwrap();
    assert_eq!(slo.attribute("Location"), Some(SP_SLO));
}

#[test]
fn idp_metadata_is_read_from_an_entity_or_an_entities_descriptor() {
    let idp = idp();
    assert_eq!(idp.entity_id, "https://idp.test/metadata");
    assert_eq!(
        idp.sso_redirect.as_ref().map(|u| u.as_str()),
        Some("https://idp.test/sso")
    );
    assert_eq!(
        idp.sso_post.as_ref().map(|u| u.as_str()),
        Some("https://idp.test/sso")
    );
    assert_eq!(
        idp.slo_redirect.as_ref().map(|s| s.location.as_str()),
        Some("https://idp.test/slo")
    );
    assert_eq!(idp.signing_certificates.len(), 1);
    assert!(idp.want_authn_requests_signed);

    let single = fixture("idp-metadata.xml");
    let wrapped = format!(
        "<EntitiesDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\">{single}</EntitiesDescriptor>"
    );
    assert_eq!(IdpMetadata::parse(&wrapped).unwrap(), idp);
    let two = format!(
        "<EntitiesDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\">{single}{single}</EntitiesDescriptor>"
    );
    assert!(matches!(
        IdpMetadata::parse(&two),
        Err(SamlError::Structure(_))
    ));
}

#[test]
fn idp_metadata_without_a_signing_key_or_too_large_is_refused() {
    let xml = fixture("idp-metadata.xml");
    let no_key = xml.replace(between(&xml, "<KeyDescriptor", "</KeyDescriptor>"), "");
    assert_eq!(IdpMetadata::parse(&no_key), Err(SamlError::NoSigningKey));
    let encryption_only = xml.replace("use=\"signing\"", "use=\"encryption\"");
    assert_eq!(
        IdpMetadata::parse(&encryption_only),
        Err(SamlError::NoSigningKey)
    );
    let big = format!("{xml}<!--{}-->", " ".repeat(gatehouse_saml::MAX_XML_BYTES));
    assert!(matches!(
        IdpMetadata::parse(&big),
        Err(SamlError::TooLarge { .. })
    ));
    assert!(matches!(
        IdpMetadata::parse("<!DOCTYPE x><x/>"),
        Err(SamlError::DtdRefused)
    ));
}

fn logout_check<'a>(sp: &'a SpConfig, idp: &'a IdpMetadata) -> LogoutCheck<'a> {
    LogoutCheck::new(sp, idp, NOW).unwrap()
}

#[test]
fn samlify_s_logout_request_verifies() {
    let sp = sp();
    let idp = idp();
    let query = fixture("logout-request.query");
    let req = verify_logout_request_redirect(query.trim(), &logout_check(&sp, &idp)).unwrap();
    assert_eq!(req.id, "_idp-logout-0001");
    assert_eq!(req.name_id, "alice@example.com");
    assert_eq!(req.session_indexes, ["_session-alice-1"]);
    assert_eq!(req.relay_state.as_deref(), Some("after-logout"));

    // Our answer to it, signed for the IdP's single logout endpoint.
    let answer =
        logout_response_redirect(&sp, &idp, &req.id, req.relay_state.as_deref(), NOW).unwrap();
    assert!(
        answer
            .url
            .as_str()
            .starts_with("https://idp.test/slo?SAMLResponse=")
    );
    let (xml, _) = check_signed_redirect(&sp, &answer.url, "SAMLResponse");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "LogoutResponse");
    assert_eq!(attr(&doc, "InResponseTo"), "_idp-logout-0001");
}

#[test]
fn a_tampered_or_unsigned_logout_request_is_refused() {
    let sp = sp();
    let idp = idp();
    let query = fixture("logout-request.query");
    let query = query.trim();
    let c = logout_check(&sp, &idp);
    let relayed = query.replace("RelayState=after-logout", "RelayState=elsewhere");
    assert_eq!(
        verify_logout_request_redirect(&relayed, &c),
        Err(SamlError::BadSignature)
    );
    let unsigned = query.split("&SigAlg=").next().unwrap();
    assert_eq!(
        verify_logout_request_redirect(unsigned, &c),
        Err(SamlError::Unsigned)
    );
    let sha1 = query
        .replace("xmldsig-more%23rsa-sha256", "xmldsig%23rsa-sha1")
        .replace(
            "2001%2F04%2Fxmldsig%23rsa-sha1",
            "2000%2F09%2Fxmldsig%23rsa-sha1",
        );
    assert_eq!(
        verify_logout_request_redirect(&sha1, &c),
        Err(SamlError::Sha1Refused)
    );
    let repeated = format!("{query}&RelayState=x");
    assert!(matches!(
        verify_logout_request_redirect(&repeated, &c),
        Err(SamlError::Structure(_))
    ));
    // Another SP's logout URL is not this one's.
    let other = SpConfig {
        slo_url: Some("https://gatehouse.test/pools/other/saml2/logout".to_owned()),
        ..sp
    };
    assert_eq!(
        verify_logout_request_redirect(query, &logout_check(&other, &idp)),
        Err(SamlError::DestinationMismatch)
    );
}

#[test]
fn samlify_s_logout_response_verifies_for_our_request_only() {
    let sp = sp();
    let idp = idp();
    let query = fixture("logout-response.query");
    let c = logout_check(&sp, &idp);
    let res = verify_logout_response_redirect(query.trim(), &c, "_gatehouse-logout-0001").unwrap();
    assert_eq!(res.in_response_to, "_gatehouse-logout-0001");
    assert_eq!(
        verify_logout_response_redirect(query.trim(), &c, "_another"),
        Err(SamlError::InResponseToMismatch)
    );
}

#[test]
fn our_logout_request_names_the_subject_and_session() {
    let sp = sp();
    let idp = idp();
    let out = logout_request_redirect(
        &sp,
        &idp,
        "alice@example.com",
        Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"),
        Some("_session-alice-1"),
        Some("rs"),
        NOW,
    )
    .unwrap();
    assert!(
        out.url
            .as_str()
            .starts_with("https://idp.test/slo?SAMLRequest=")
    );
    let (xml, _) = check_signed_redirect(&sp, &out.url, "SAMLRequest");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "LogoutRequest");
    assert_eq!(attr(&doc, "ID"), out.id);
    assert!(xml.contains(">alice@example.com</saml:NameID>"));
    assert!(xml.contains("<samlp:SessionIndex>_session-alice-1</samlp:SessionIndex>"));
}
