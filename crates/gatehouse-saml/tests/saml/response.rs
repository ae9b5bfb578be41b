//! The assertion consumer service's check, on Responses samlify signed, and the attacks on
//! it: forged, wrapped, replayed elsewhere, out of time, SHA-1, oversized, entity expansion.

use crate::common::*;
use gatehouse_saml::{InResponseTo, SamlError, verify_response};

fn verify(xml: &str) -> Result<gatehouse_saml::Assertion, SamlError> {
    let idp = idp();
    verify_response(&b64(xml), &check(&idp, expected(), NOW))
}

#[test]
fn an_assertion_signed_response_verifies_with_every_value_read() {
    let a = verify(&fixture("response-assertion-signed.xml")).unwrap();
    assert_eq!(a.id, "_assert-a1");
    assert_eq!(a.issuer, "https://idp.test/metadata");
    assert_eq!(a.name_id, "alice@example.com");
    assert_eq!(
        a.name_id_format.as_deref(),
        Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
    );
    assert_eq!(a.session_index.as_deref(), Some("_session-alice-1"));
    assert_eq!(a.in_response_to.as_deref(), Some(REQUEST_ID));
    assert_eq!(a.expires_at, UNTIL);
    assert_eq!(a.authn_instant, ISSUED - 30);
    let attr = |name: &str| a.attributes.get(name).cloned().unwrap_or_default();
    assert_eq!(
        attr("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"),
        ["alice@example.com"]
    );
    assert_eq!(
        attr("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"),
        ["Liddell"]
    );
    assert_eq!(
        attr("http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"),
        ["staff", "admins"]
    );
}

#[test]
fn a_response_signed_response_verifies() {
    let a = verify(&fixture("response-response-signed.xml")).unwrap();
    assert_eq!(a.id, "_assert-r1");
    assert_eq!(a.name_id, "alice@example.com");
}

#[test]
fn a_response_signed_twice_verifies() {
    let a = verify(&fixture("response-both-signed.xml")).unwrap();
    assert_eq!(a.id, "_assert-b1");
}

#[test]
fn an_unsolicited_response_verifies_for_idp_initiated_sign_in() {
    let idp = idp();
    let xml = fixture("response-unsolicited.xml");
    let a = verify_response(&b64(&xml), &check(&idp, InResponseTo::Unsolicited, NOW)).unwrap();
    assert_eq!(a.in_response_to, None);
    assert_eq!(a.name_id, "alice@example.com");
}

#[test]
fn base64_with_line_breaks_is_read() {
    let idp = idp();
    let encoded = b64(&fixture("response-assertion-signed.xml"));
    let wrapped: String = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect();
    verify_response(&wrapped, &check(&idp, expected(), NOW)).unwrap();
}

fn strip_signature(xml: &str) -> String {
    xml.replacen(between(xml, "<ds:Signature", "</ds:Signature>"), "", 1)
}

#[test]
fn an_unsigned_assertion_is_refused() {
    let xml = strip_signature(&fixture("response-assertion-signed.xml"));
    assert_eq!(verify(&xml), Err(SamlError::Unsigned));
    let xml = strip_signature(&fixture("response-response-signed.xml"));
    assert_eq!(verify(&xml), Err(SamlError::Unsigned));
}

#[test]
fn a_signature_by_another_key_is_refused_whatever_its_key_info_says() {
    assert_eq!(
        verify(&fixture("response-other-key.xml")),
        Err(SamlError::BadSignature)
    );
}

#[test]
fn a_tampered_attribute_value_is_refused() {
    for name in [
        "response-assertion-signed.xml",
        "response-response-signed.xml",
        "response-both-signed.xml",
    ] {
        let xml = fixture(name).replace("Liddell", "Mallory");
        assert_eq!(verify(&xml), Err(SamlError::DigestMismatch), "{name}");
    }
}

#[test]
fn a_tampered_signed_info_is_refused() {
    // The digest is of the real assertion, but SignedInfo now differs from what was signed.
    let xml = fixture("response-assertion-signed.xml").replace(
        "<ds:Reference URI=\"#_assert-a1\">",
        "<ds:Reference URI=\"#_assert-a1\" Id=\"x\">",
    );
    assert_eq!(verify(&xml), Err(SamlError::BadSignature));
}

#[test]
fn a_comment_in_the_name_id_neither_breaks_the_digest_nor_truncates_the_value() {
    // The attack: an IdP user `alice@example.com.evil.test` inserts a comment so that a
    // reader taking the first text node sees `alice@example.com`. Canonicalization drops the
    // comment (the digest holds), and the value read is the whole text.
    let xml = fixture("response-assertion-signed.xml").replace(
        ">alice@example.com</saml:NameID>",
        ">alice@example<!-- a comment -->.com</saml:NameID>",
    );
    let a = verify(&xml).unwrap();
    assert_eq!(a.name_id, "alice@example.com");
}

/// The original assertion (with its signature), an unsigned copy with another subject and
/// the given ID, and the response's opening (everything before the assertion).
struct Parts {
    head: String,
    assertion: String,
    signature: String,
}

fn parts(name: &str) -> Parts {
    let xml = fixture(name);
    let assertion = between(&xml, "<saml:Assertion", "</saml:Assertion>").to_owned();
    let head = xml[..xml.find("<saml:Assertion").unwrap()].to_owned();
    let signature = between(&assertion, "<ds:Signature", "</ds:Signature>").to_owned();
    Parts {
        head,
        assertion,
        signature,
    }
}

fn evil(assertion: &str, id: Option<(&str, &str)>) -> String {
    let a = assertion.replace(
        ">alice@example.com</saml:NameID>",
        ">mallory@example.com</saml:NameID>",
    );
    match id {
        Some((from, to)) => a.replace(&format!("ID=\"{from}\""), &format!("ID=\"{to}\"")),
        None => a,
    }
}

const END: &str = "</samlp:Response>";

#[test]
fn xsw1_a_copied_response_inside_the_signature_is_refused() {
    let xml = fixture("response-response-signed.xml");
    let signature = between(&xml, "<ds:Signature", "</ds:Signature>").to_owned();
    let original = xml.clone();
    let forged = evil(
        &xml.replace(&signature, ""),
        Some(("_assert-r1", "_evil-assert")),
    )
    .replacen("ID=\"_resp-r1\"", "ID=\"_evil-resp\"", 1);
    let wrapped_sig = signature.replace(
        "</ds:Signature>",
        &format!("<ds:Object>{original}</ds:Object></ds:Signature>"),
    );
    let issuer_end = forged.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
    let attack = format!(
        "{}{}{}",
        &forged[..issuer_end],
        wrapped_sig,
        &forged[issuer_end..]
    );
    assert!(matches!(
        verify(&attack),
        Err(SamlError::AssertionCount(_) | SamlError::DuplicateId)
    ));
}

#[test]
fn xsw2_a_copied_response_beside_the_signature_is_refused() {
    let xml = fixture("response-response-signed.xml");
    let signature = between(&xml, "<ds:Signature", "</ds:Signature>").to_owned();
    let original = xml.clone();
    let forged = evil(
        &xml.replace(&signature, ""),
        Some(("_assert-r1", "_evil-assert")),
    )
    .replacen("ID=\"_resp-r1\"", "ID=\"_evil-resp\"", 1);
    let issuer_end = forged.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
    let attack = format!(
        "{}{}{}{}",
        &forged[..issuer_end],
        original,
        signature,
        &forged[issuer_end..]
    );
    assert!(matches!(
        verify(&attack),
        Err(SamlError::AssertionCount(_) | SamlError::DuplicateId)
    ));
    // With the copy's assertion removed, the one assertion left is the forged one, and the
    // response signature names an element that is not the root.
    let copy_without_assertion = original.replace(
        between(&original, "<saml:Assertion", "</saml:Assertion>"),
        "",
    );
    let attack = format!(
        "{}{}{}{}",
        &forged[..issuer_end],
        copy_without_assertion,
        signature,
        &forged[issuer_end..]
    );
    assert_eq!(verify(&attack), Err(SamlError::ReferenceMismatch));
}

#[test]
fn xsw3_a_forged_assertion_before_the_signed_one_is_refused() {
    let p = parts("response-assertion-signed.xml");
    let forged = evil(
        &p.assertion.replace(&p.signature, ""),
        Some(("_assert-a1", "_evil")),
    );
    let attack = format!("{}{}{}{END}", p.head, forged, p.assertion);
    assert_eq!(verify(&attack), Err(SamlError::AssertionCount(2)));
}

#[test]
fn xsw4_the_signed_assertion_inside_a_forged_one_is_refused() {
    let p = parts("response-assertion-signed.xml");
    let forged = evil(
        &p.assertion.replace(&p.signature, ""),
        Some(("_assert-a1", "_evil")),
    );
    let forged = forged.replace(
        "</saml:Assertion>",
        &format!("{}</saml:Assertion>", p.assertion),
    );
    let attack = format!("{}{}{END}", p.head, forged);
    assert_eq!(verify(&attack), Err(SamlError::AssertionCount(2)));
}

#[test]
fn xsw5_a_forged_assertion_keeping_the_signature_with_a_copy_after_it_is_refused() {
    let p = parts("response-assertion-signed.xml");
    let forged = evil(&p.assertion, None);
    let copy = p.assertion.replace(&p.signature, "");
    let attack = format!("{}{}{}{END}", p.head, forged, copy);
    assert_eq!(verify(&attack), Err(SamlError::DuplicateId));
}

#[test]
fn xsw6_a_copy_of_the_signed_assertion_inside_the_forged_ones_signature_is_refused() {
    let p = parts("response-assertion-signed.xml");
    let copy = p.assertion.replace(&p.signature, "");
    let sig = p.signature.replace(
        "</ds:Signature>",
        &format!("<ds:Object>{copy}</ds:Object></ds:Signature>"),
    );
    let forged = evil(&p.assertion, None).replace(&p.signature, &sig);
    let attack = format!("{}{}{END}", p.head, forged);
    assert_eq!(verify(&attack), Err(SamlError::DuplicateId));
}

#[test]
fn xsw7_the_signed_assertion_hidden_in_extensions_is_refused() {
    let p = parts("response-assertion-signed.xml");
    let forged = evil(&p.assertion.replace(&p.signature, ""), None);
    let status_at = p.head.find("<samlp:Status>").unwrap();
    let head = format!(
        "{}<samlp:Extensions>{}</samlp:Extensions>{}",
        &p.head[..status_at],
        p.assertion,
        &p.head[status_at..]
    );
    let attack = format!("{head}{forged}{END}");
    assert_eq!(verify(&attack), Err(SamlError::DuplicateId));
    // With a fresh ID on the forged assertion, the count still refuses it.
    let forged = evil(
        &p.assertion.replace(&p.signature, ""),
        Some(("_assert-a1", "_evil")),
    );
    let attack = format!("{head}{forged}{END}");
    assert_eq!(verify(&attack), Err(SamlError::AssertionCount(2)));
}

#[test]
fn xsw8_the_signed_assertion_in_an_object_of_the_forged_ones_signature_is_refused() {
    let p = parts("response-assertion-signed.xml");
    let copy = p.assertion.replace(&p.signature, "");
    let sig = p.signature.replace(
        "</ds:Signature>",
        &format!("<ds:Object>{copy}</ds:Object></ds:Signature>"),
    );
    let forged = evil(&p.assertion, Some(("_assert-a1", "_evil"))).replace(&p.signature, &sig);
    let attack = format!("{}{}{END}", p.head, forged);
    assert_eq!(verify(&attack), Err(SamlError::AssertionCount(2)));
}

#[test]
fn a_signature_that_names_another_element_is_refused() {
    let xml = fixture("response-assertion-signed.xml")
        .replace("URI=\"#_assert-a1\"", "URI=\"#_resp-a1\"");
    assert_eq!(verify(&xml), Err(SamlError::ReferenceMismatch));
    let xml = fixture("response-assertion-signed.xml").replace("URI=\"#_assert-a1\"", "URI=\"\"");
    assert_eq!(verify(&xml), Err(SamlError::ReferenceMismatch));
}

#[test]
fn an_assertion_for_another_audience_is_refused() {
    let idp = idp();
    let mut c = check(&idp, expected(), NOW);
    c.sp_entity_id = "https://gatehouse.test/pools/other/saml2/metadata";
    let xml = fixture("response-assertion-signed.xml");
    assert_eq!(
        verify_response(&b64(&xml), &c),
        Err(SamlError::AudienceMismatch)
    );
}

#[test]
fn an_assertion_for_another_recipient_is_refused() {
    assert_eq!(
        verify(&fixture("response-other-recipient.xml")),
        Err(SamlError::RecipientMismatch)
    );
}

#[test]
fn a_response_for_another_destination_is_refused() {
    let idp = idp();
    let mut c = check(&idp, expected(), NOW);
    c.acs_url = "https://gatehouse.test/pools/other/saml2/idpresponse";
    for name in [
        "response-assertion-signed.xml",
        "response-response-signed.xml",
    ] {
        let xml = fixture(name);
        assert_eq!(
            verify_response(&b64(&xml), &c),
            Err(SamlError::DestinationMismatch),
            "{name}"
        );
    }
}

#[test]
fn the_time_window_holds_with_the_skew_and_no_further() {
    let idp = idp();
    let xml = b64(&fixture("response-assertion-signed.xml"));
    let at = |now| verify_response(&xml, &check(&idp, expected(), now));
    assert!(at(UNTIL + 59).is_ok());
    assert_eq!(at(UNTIL + 60), Err(SamlError::Expired));
    assert_eq!(at(UNTIL + 86_400), Err(SamlError::Expired));
    assert!(at(ISSUED - 60).is_ok());
    assert_eq!(at(ISSUED - 61), Err(SamlError::NotYetValid));
}

#[test]
fn a_response_to_another_request_is_refused() {
    let idp = idp();
    let xml = b64(&fixture("response-assertion-signed.xml"));
    let other = InResponseTo::Expected("_another-request".to_owned());
    assert_eq!(
        verify_response(&xml, &check(&idp, other, NOW)),
        Err(SamlError::InResponseToMismatch)
    );
}

#[test]
fn an_unsolicited_check_refuses_a_response_to_a_request() {
    let idp = idp();
    let xml = b64(&fixture("response-assertion-signed.xml"));
    assert_eq!(
        verify_response(&xml, &check(&idp, InResponseTo::Unsolicited, NOW)),
        Err(SamlError::InResponseToMismatch)
    );
}

#[test]
fn an_sp_initiated_check_refuses_an_unsolicited_response() {
    let idp = idp();
    let xml = b64(&fixture("response-unsolicited.xml"));
    assert_eq!(
        verify_response(&xml, &check(&idp, expected(), NOW)),
        Err(SamlError::InResponseToMismatch)
    );
}

#[test]
fn a_status_other_than_success_is_refused() {
    let xml = fixture("response-assertion-signed.xml").replace(
        "urn:oasis:names:tc:SAML:2.0:status:Success",
        "urn:oasis:names:tc:SAML:2.0:status:Requester",
    );
    assert_eq!(
        verify(&xml),
        Err(SamlError::Status(
            "urn:oasis:names:tc:SAML:2.0:status:Requester".to_owned()
        ))
    );
}

#[test]
fn sha1_is_refused_in_the_signature_and_in_the_digest() {
    assert_eq!(
        verify(&fixture("response-sha1.xml")),
        Err(SamlError::Sha1Refused)
    );
    let xml = fixture("response-assertion-signed.xml").replace(
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2000/09/xmldsig#sha1",
    );
    assert_eq!(verify(&xml), Err(SamlError::Sha1Refused));
}

#[test]
fn an_oversized_document_is_refused_before_parsing() {
    let xml = fixture("response-assertion-signed.xml");
    let padding = " ".repeat(gatehouse_saml::MAX_XML_BYTES);
    let big = xml.replacen("<saml:Issuer>", &format!("{padding}<saml:Issuer>"), 1);
    assert!(matches!(verify(&big), Err(SamlError::TooLarge { .. })));
    // Base64 text far over the cap is refused before decoding.
    let idp = idp();
    let text = "A".repeat(4 * gatehouse_saml::MAX_XML_BYTES);
    assert!(matches!(
        verify_response(&text, &check(&idp, expected(), NOW)),
        Err(SamlError::TooLarge { .. })
    ));
}

#[test]
fn a_dtd_with_entities_is_refused() {
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&lol3;</samlp:Response>"#;
    assert_eq!(verify(laughs), Err(SamlError::DtdRefused));
    let xml = fixture("response-assertion-signed.xml");
    let external = format!("<!DOCTYPE r SYSTEM \"file:///etc/passwd\">{xml}");
    assert_eq!(verify(&external), Err(SamlError::DtdRefused));
}

#[test]
fn two_assertions_are_refused() {
    let p = parts("response-assertion-signed.xml");
    let second = parts("response-unsolicited.xml").assertion;
    let attack = format!("{}{}{}{END}", p.head, p.assertion, second);
    assert_eq!(verify(&attack), Err(SamlError::AssertionCount(2)));
}

#[test]
fn an_encrypted_assertion_is_refused_as_unsupported() {
    let p = parts("response-assertion-signed.xml");
    let attack = format!(
        "{}<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\"/></saml:EncryptedAssertion>{END}",
        p.head
    );
    assert_eq!(verify(&attack), Err(SamlError::EncryptedUnsupported));
}

#[test]
fn another_issuer_is_refused() {
    let xml = fixture("response-assertion-signed.xml").replacen(
        "<saml:Issuer>https://idp.test/metadata</saml:Issuer>",
        "<saml:Issuer>https://evil.test/metadata</saml:Issuer>",
        1,
    );
    assert_eq!(verify(&xml), Err(SamlError::IssuerMismatch));
}

#[test]
fn garbage_gets_a_typed_error() {
    let idp = idp();
    for input in [
        "",
        "%%%",
        &b64("not xml"),
        &b64("<a>"),
        &b64("<a/>"),
        &b64("\u{0}"),
    ] {
        assert!(verify_response(input, &check(&idp, expected(), NOW)).is_err());
    }
}

#[test]
fn an_ecdsa_signature_by_xmlsec1_verifies_with_the_ec_key_only() {
    let ec = gatehouse_saml::IdpMetadata::parse(&fixture("idp-metadata-ec.xml")).unwrap();
    let xml = b64(&fixture("response-ecdsa.xml"));
    let a = verify_response(&xml, &check(&ec, InResponseTo::Unsolicited, NOW)).unwrap();
    assert_eq!(a.name_id, "alice@example.com");
    let rsa = idp();
    assert_eq!(
        verify_response(&xml, &check(&rsa, InResponseTo::Unsolicited, NOW)),
        Err(SamlError::BadSignature)
    );
    let tampered = b64(&fixture("response-ecdsa.xml").replace("Liddell", "Mallory"));
    assert_eq!(
        verify_response(&tampered, &check(&ec, InResponseTo::Unsolicited, NOW)),
        Err(SamlError::DigestMismatch)
    );
}

/// Random edits of a signed Response: each is refused with an error (never a panic), or,
/// when the edit does not change the signed content (white space inside a tag, say), yields
/// exactly the assertion the original does.
#[test]
fn random_edits_are_refused_or_change_nothing() {
    let original = fixture("response-assertion-signed.xml");
    let idp = idp();
    let c = check(&idp, expected(), NOW);
    let reference = verify_response(&b64(&original), &c).unwrap();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    let alphabet = b"<>/=\"' :-_#&;!?[]abcdefxyzID0123456789\n\t";
    let mut accepted = 0;
    for round in 0..3000 {
        let mut bytes = original.as_bytes().to_vec();
        match round % 4 {
            0 => bytes.truncate(next(bytes.len())),
            1 => {
                let i = next(bytes.len());
                bytes[i] = alphabet[next(alphabet.len())];
            }
            2 => {
                let i = next(bytes.len());
                bytes.insert(i, alphabet[next(alphabet.len())]);
            }
            _ => {
                let i = next(bytes.len());
                let n = next(40).min(bytes.len() - i);
                bytes.drain(i..i + n);
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(a) = verify_response(&b64(&text), &c) {
            assert_eq!(a, reference, "an edit changed what was read: {text}");
            accepted += 1;
        }
    }
    assert!(accepted < 3000);
}

#[test]
fn an_ad_fs_shaped_response_signed_by_xmlsec1_verifies() {
    // Default namespaces (SAML's on the assertion, XML-DSig's on KeyInfo), milliseconds in
    // every time, an escaped ampersand in a value.
    let a = verify(&fixture("response-adfs.xml")).unwrap();
    assert_eq!(a.id, "_adfs-assert");
    assert_eq!(a.name_id, "CORP\\alice");
    assert_eq!(a.session_index.as_deref(), Some("_adfs-session"));
    assert_eq!(a.expires_at, UNTIL); // the confirmation's, earlier than the conditions'
    assert_eq!(a.authn_instant, ISSUED - 30);
    assert_eq!(
        a.attributes["http://schemas.microsoft.com/ws/2008/06/identity/claims/role"],
        ["Domain Users", "Finance & Audit"]
    );
    let mut claims: Vec<_> = a
        .attributes
        .keys()
        .filter_map(|k| gatehouse_saml::default_claim(k))
        .collect();
    claims.sort_unstable();
    assert_eq!(claims, ["email", "preferred_username", "roles"]);
    let tampered =
        fixture("response-adfs.xml").replace("Finance &amp; Audit", "Finance &amp; Admin");
    assert_eq!(verify(&tampered), Err(SamlError::DigestMismatch));
}

#[test]
fn an_inclusive_namespaces_prefix_list_is_honoured() {
    let idp = idp();
    let xml = fixture("response-prefixlist.xml");
    let c = check(&idp, InResponseTo::Unsolicited, NOW);
    let a = verify_response(&b64(&xml), &c).unwrap();
    assert_eq!(a.name_id, "alice@example.com");
    // The prefix list put `xs` under the signature: redeclaring it changes the digest.
    let moved = xml.replacen(
        "xmlns:xs=\"http://www.w3.org/2001/XMLSchema\"",
        "xmlns:xs=\"urn:example:not-xml-schema\"",
        1,
    );
    assert_eq!(
        verify_response(&b64(&moved), &c),
        Err(SamlError::DigestMismatch)
    );
}

#[test]
fn the_request_a_response_answers_can_be_peeked_before_verifying() {
    let xml = b64(&fixture("response-assertion-signed.xml"));
    assert_eq!(
        gatehouse_saml::peek_in_response_to(&xml)
            .unwrap()
            .as_deref(),
        Some(REQUEST_ID)
    );
    let xml = b64(&fixture("response-unsolicited.xml"));
    assert_eq!(gatehouse_saml::peek_in_response_to(&xml).unwrap(), None);
    assert!(gatehouse_saml::peek_in_response_to(&b64("<x/>")).is_err());
}
