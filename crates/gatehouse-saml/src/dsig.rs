//! XML-DSig enveloped signatures (verification) and the HTTP-Redirect binding's query
//! signatures (signing and verification), over aws-lc-rs. The key always comes from the
//! identity provider's metadata; a KeyInfo in a message is never read.

use aws_lc_rs::{digest, signature};
use base64::Engine as _;
use roxmltree::Node;

use crate::c14n::{self, Comments};
use crate::cert::{KeyKind, PublicKey};
use crate::error::{SamlError, excerpt};
use crate::xml::{self, NS_DS};

const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const EXC_C14N_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

pub(crate) const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// A signature algorithm Gatehouse accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigAlg {
    RsaSha256,
    RsaSha384,
    RsaSha512,
    EcdsaSha256,
    EcdsaSha384,
}

impl SigAlg {
    pub(crate) fn from_uri(uri: &str) -> Result<Self, SamlError> {
        Ok(match uri {
            RSA_SHA256 => Self::RsaSha256,
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => Self::RsaSha384,
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => Self::RsaSha512,
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => Self::EcdsaSha256,
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => Self::EcdsaSha384,
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
            | "http://www.w3.org/2000/09/xmldsig#dsa-sha1"
            | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1" => {
                return Err(SamlError::Sha1Refused);
            }
            other => return Err(SamlError::UnsupportedAlgorithm(excerpt(other))),
        })
    }

    /// The aws-lc-rs algorithm for this key, if the key's kind fits. `Encoding::Fixed` is
    /// XML-DSig's r‖s form of ECDSA; the redirect binding's signatures are ASN.1.
    fn verifier(
        self,
        kind: KeyKind,
        ec: EcEncoding,
    ) -> Option<&'static dyn signature::VerificationAlgorithm> {
        use signature as s;
        Some(match (self, kind, ec) {
            (Self::RsaSha256, KeyKind::Rsa, _) => &s::RSA_PKCS1_2048_8192_SHA256,
            (Self::RsaSha384, KeyKind::Rsa, _) => &s::RSA_PKCS1_2048_8192_SHA384,
            (Self::RsaSha512, KeyKind::Rsa, _) => &s::RSA_PKCS1_2048_8192_SHA512,
            (Self::EcdsaSha256, KeyKind::EcP256, EcEncoding::Fixed) => &s::ECDSA_P256_SHA256_FIXED,
            (Self::EcdsaSha384, KeyKind::EcP384, EcEncoding::Fixed) => &s::ECDSA_P384_SHA384_FIXED,
            (Self::EcdsaSha256, KeyKind::EcP256, EcEncoding::Asn1) => &s::ECDSA_P256_SHA256_ASN1,
            (Self::EcdsaSha384, KeyKind::EcP384, EcEncoding::Asn1) => &s::ECDSA_P384_SHA384_ASN1,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EcEncoding {
    Fixed,
    Asn1,
}

fn digest_alg(uri: &str) -> Result<&'static digest::Algorithm, SamlError> {
    Ok(match uri {
        "http://www.w3.org/2001/04/xmlenc#sha256" => &digest::SHA256,
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => &digest::SHA384,
        "http://www.w3.org/2001/04/xmlenc#sha512" => &digest::SHA512,
        "http://www.w3.org/2000/09/xmldsig#sha1" => return Err(SamlError::Sha1Refused),
        other => return Err(SamlError::UnsupportedAlgorithm(excerpt(other))),
    })
}

/// Verifies `signature` against any of `keys`.
pub(crate) fn verify_with_keys(
    keys: &[PublicKey],
    alg: SigAlg,
    ec: EcEncoding,
    message: &[u8],
    sig: &[u8],
) -> Result<(), SamlError> {
    if keys.is_empty() {
        return Err(SamlError::NoSigningKey);
    }
    let ok = keys.iter().any(|key| {
        alg.verifier(key.kind, ec).is_some_and(|v| {
            signature::UnparsedPublicKey::new(v, &key.spki)
                .verify(message, sig)
                .is_ok()
        })
    });
    if ok {
        Ok(())
    } else {
        Err(SamlError::BadSignature)
    }
}

fn algorithm_attr<'a>(node: Node<'a, '_>) -> Result<&'a str, SamlError> {
    node.attribute("Algorithm")
        .ok_or(SamlError::Missing("Algorithm"))
}

/// The PrefixList of an exclusive canonicalization's InclusiveNamespaces, if any.
fn inclusive_prefixes(method: Node<'_, '_>) -> Result<Vec<String>, SamlError> {
    let Some(inc) = xml::child(method, EXC_C14N, "InclusiveNamespaces")? else {
        return Ok(Vec::new());
    };
    Ok(inc
        .attribute("PrefixList")
        .unwrap_or("")
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect())
}

/// The enveloped `signature` (a ds:Signature child of `element`) verifies with one of `keys`
/// and its one Reference names `element` by its `ID`, so the bytes it covers are exactly
/// `element` less the signature.
pub(crate) fn verify_enveloped(
    element: Node<'_, '_>,
    signature_node: Node<'_, '_>,
    keys: &[PublicKey],
) -> Result<(), SamlError> {
    if signature_node.parent_element().map(|p| p.id()) != Some(element.id()) {
        return Err(SamlError::ReferenceMismatch);
    }
    let signed_info = xml::required_child(signature_node, NS_DS, "SignedInfo")?;
    let c14n_method = xml::required_child(signed_info, NS_DS, "CanonicalizationMethod")?;
    let si_comments = match algorithm_attr(c14n_method)? {
        EXC_C14N => Comments::Omit,
        EXC_C14N_COMMENTS => Comments::Keep,
        other => return Err(SamlError::UnsupportedAlgorithm(excerpt(other))),
    };
    let si_prefixes = inclusive_prefixes(c14n_method)?;
    let alg = SigAlg::from_uri(algorithm_attr(xml::required_child(
        signed_info,
        NS_DS,
        "SignatureMethod",
    )?)?)?;

    // Exactly one Reference, naming the enclosing element by its ID.
    let reference = xml::required_child(signed_info, NS_DS, "Reference")?;
    let id = element.attribute("ID").filter(|id| !id.is_empty());
    let uri = reference.attribute("URI").unwrap_or("");
    match (id, uri.strip_prefix('#')) {
        (Some(id), Some(named)) if id == named => {}
        _ => return Err(SamlError::ReferenceMismatch),
    }

    let mut enveloped = false;
    let mut c14n_prefixes = None;
    if let Some(transforms) = xml::child(reference, NS_DS, "Transforms")? {
        for t in transforms.children().filter(|c| c.is_element()) {
            if !xml::is(t, NS_DS, "Transform") {
                return Err(SamlError::Structure("Transforms"));
            }
            match algorithm_attr(t)? {
                ENVELOPED if !enveloped => enveloped = true,
                // A bare-name reference (`#id`) drops comments before canonicalization, so
                // the `#WithComments` variant canonicalizes as the plain one does here.
                EXC_C14N | EXC_C14N_COMMENTS if c14n_prefixes.is_none() => {
                    c14n_prefixes = Some(inclusive_prefixes(t)?);
                }
                other => return Err(SamlError::UnsupportedAlgorithm(excerpt(other))),
            }
        }
    }
    if !enveloped {
        return Err(SamlError::Structure(
            "an enveloped signature needs its transform",
        ));
    }
    // Without an explicit canonicalization the default would be inclusive C14N 1.0.
    let prefixes = c14n_prefixes
        .ok_or_else(|| SamlError::UnsupportedAlgorithm("inclusive canonicalization".to_owned()))?;

    let dalg = digest_alg(algorithm_attr(xml::required_child(
        reference,
        NS_DS,
        "DigestMethod",
    )?)?)?;
    let expected = decode_b64(&xml::text(xml::required_child(
        reference,
        NS_DS,
        "DigestValue",
    )?)?)?;
    let canonical = c14n::canonicalize(
        element,
        Some(signature_node.id()),
        Comments::Omit,
        &prefixes,
    )?;
    if digest::digest(dalg, &canonical).as_ref() != expected.as_slice() {
        return Err(SamlError::DigestMismatch);
    }

    let sig = decode_b64(&xml::text(xml::required_child(
        signature_node,
        NS_DS,
        "SignatureValue",
    )?)?)?;
    let signed = c14n::canonicalize(signed_info, None, si_comments, &si_prefixes)?;
    verify_with_keys(keys, alg, EcEncoding::Fixed, &signed, &sig)
}

fn decode_b64(text: &str) -> Result<Vec<u8>, SamlError> {
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| SamlError::Base64)
}

/// Signs `message` with the SP's RSA key, PKCS#1 v1.5 with SHA-256.
pub(crate) fn sign_rsa_sha256(
    key: &signature::RsaKeyPair,
    message: &[u8],
) -> Result<Vec<u8>, SamlError> {
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        message,
        &mut sig,
    )
    .map_err(|_| SamlError::Key("signing failed"))?;
    Ok(sig)
}
