//! The public key of an X.509 certificate, read with a minimal DER walk: the certificate's
//! SubjectPublicKeyInfo is handed to aws-lc-rs as it is (it accepts RFC 5280 keys). Nothing
//! else of the certificate is trusted or checked: the key is trusted because the metadata
//! that carries it is.

use crate::error::SamlError;

/// The kind of a signing key, which decides the algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
}

/// A metadata certificate's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicKey {
    pub(crate) kind: KeyKind,
    /// The SubjectPublicKeyInfo, DER.
    pub(crate) spki: Vec<u8>,
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

/// One DER element: its tag, its content, the whole element, and what follows it.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
    rest: &'a [u8],
}

fn read(input: &[u8]) -> Result<Tlv<'_>, SamlError> {
    let bad = SamlError::Invalid("certificate");
    let (&tag, after_tag) = input.split_first().ok_or(bad.clone())?;
    let (&first, mut after_len) = after_tag.split_first().ok_or(bad.clone())?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || after_len.len() < n {
            return Err(bad);
        }
        let mut len = 0usize;
        for &b in &after_len[..n] {
            len = (len << 8) | usize::from(b);
        }
        after_len = &after_len[n..];
        len
    };
    if after_len.len() < len {
        return Err(bad);
    }
    let header = input.len() - after_len.len();
    Ok(Tlv {
        tag,
        content: &after_len[..len],
        whole: &input[..header + len],
        rest: &after_len[len..],
    })
}

fn expect(input: &[u8], tag: u8) -> Result<Tlv<'_>, SamlError> {
    let tlv = read(input)?;
    if tlv.tag != tag {
        return Err(SamlError::Invalid("certificate"));
    }
    Ok(tlv)
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;

/// Reads the public key of a DER X.509 certificate.
pub(crate) fn public_key(cert_der: &[u8]) -> Result<PublicKey, SamlError> {
    let cert = expect(cert_der, SEQUENCE)?;
    let tbs = expect(cert.content, SEQUENCE)?;
    let mut fields = tbs.content;
    // version [0] EXPLICIT, optional
    let first = read(fields)?;
    if first.tag == 0xa0 {
        fields = first.rest;
    }
    // serialNumber, signature, issuer, validity, subject
    for _ in 0..5 {
        fields = read(fields)?.rest;
    }
    let spki = expect(fields, SEQUENCE)?;
    let alg = expect(spki.content, SEQUENCE)?;
    let oid = expect(alg.content, OID)?;
    let kind = if oid.content == OID_RSA {
        KeyKind::Rsa
    } else if oid.content == OID_EC {
        let curve = expect(oid.rest, OID)?;
        match curve.content {
            c if c == OID_P256 => KeyKind::EcP256,
            c if c == OID_P384 => KeyKind::EcP384,
            _ => return Err(SamlError::UnsupportedAlgorithm("elliptic curve".to_owned())),
        }
    } else {
        return Err(SamlError::UnsupportedAlgorithm(
            "public key type".to_owned(),
        ));
    };
    Ok(PublicKey {
        kind,
        spki: spki.whole.to_vec(),
    })
}
