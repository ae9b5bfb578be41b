//! The HTTP-Redirect binding (SAML Bindings §3.4): DEFLATE, base64, and a signature over the
//! query string's exact bytes `SAMLRequest=…&RelayState=…&SigAlg=…`.

use std::io::{Read as _, Write as _};

use base64::Engine as _;
use url::Url;
use url::form_urlencoded;

use crate::dsig::{self, EcEncoding, SigAlg};
use crate::error::SamlError;
use crate::metadata::IdpMetadata;
use crate::sp::SpKey;
use crate::xml::MAX_XML_BYTES;

/// Which parameter carries the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param {
    Request,
    Response,
}

impl Param {
    fn name(self) -> &'static str {
        match self {
            Self::Request => "SAMLRequest",
            Self::Response => "SAMLResponse",
        }
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The signed URL that carries `xml` to `destination`.
pub(crate) fn encode(
    key: &SpKey,
    destination: &Url,
    param: Param,
    xml: &str,
    relay_state: Option<&str>,
) -> Result<Url, SamlError> {
    let mut deflater =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflater
        .write_all(xml.as_bytes())
        .and_then(|()| deflater.try_finish())
        .map_err(|_| SamlError::Deflate)?;
    let deflated = deflater.get_ref();
    let message = base64::engine::general_purpose::STANDARD.encode(deflated);

    let mut query = format!("{}={}", param.name(), enc(&message));
    if let Some(rs) = relay_state {
        query.push_str("&RelayState=");
        query.push_str(&enc(rs));
    }
    query.push_str("&SigAlg=");
    query.push_str(&enc(dsig::RSA_SHA256));
    let sig = dsig::sign_rsa_sha256(key.key_pair(), query.as_bytes())?;
    query.push_str("&Signature=");
    query.push_str(&enc(&base64::engine::general_purpose::STANDARD.encode(sig)));

    let mut url = destination.as_str().to_owned();
    url.push(if destination.query().is_some() {
        '&'
    } else {
        '?'
    });
    url.push_str(&query);
    Url::parse(&url).map_err(|_| SamlError::Invalid("destination URL"))
}

/// A message received by the HTTP-Redirect binding whose signature verified.
pub(crate) struct Received {
    pub(crate) xml: String,
    pub(crate) relay_state: Option<String>,
}

/// Verifies the signature of a redirect-bound message with the IdP's keys, then inflates it.
/// `raw_query` is the request's query string exactly as received (still percent-encoded).
pub(crate) fn decode_verified(
    raw_query: &str,
    param: Param,
    idp: &IdpMetadata,
) -> Result<Received, SamlError> {
    // The message, deflated and encoded, is well under the XML cap.
    if raw_query.len() > MAX_XML_BYTES {
        return Err(SamlError::TooLarge {
            limit: MAX_XML_BYTES,
        });
    }
    let mut message = None;
    let mut relay_state = None;
    let mut sig_alg = None;
    let mut signature = None;
    for pair in raw_query.split('&') {
        let (name, _) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            n if n == param.name() => &mut message,
            "RelayState" => &mut relay_state,
            "SigAlg" => &mut sig_alg,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(pair).is_some() {
            return Err(SamlError::Structure("repeated query parameter"));
        }
    }
    let message = message.ok_or(SamlError::Missing("SAML message parameter"))?;
    let (Some(sig_alg), Some(signature)) = (sig_alg, signature) else {
        return Err(SamlError::Unsigned);
    };

    let mut signed = String::with_capacity(raw_query.len());
    signed.push_str(message);
    if let Some(rs) = relay_state {
        signed.push('&');
        signed.push_str(rs);
    }
    signed.push('&');
    signed.push_str(sig_alg);

    let value = |pair: &str| -> String {
        form_urlencoded::parse(pair.as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let alg = SigAlg::from_uri(&value(sig_alg))?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(value(signature).trim())
        .map_err(|_| SamlError::Base64)?;
    dsig::verify_with_keys(idp.keys(), alg, EcEncoding::Asn1, signed.as_bytes(), &sig)?;

    let deflated = crate::xml::decode_base64_capped(&value(message), MAX_XML_BYTES)?;
    let mut xml = Vec::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .take(MAX_XML_BYTES as u64 + 1)
        .read_to_end(&mut xml)
        .map_err(|_| SamlError::Deflate)?;
    if xml.len() > MAX_XML_BYTES {
        return Err(SamlError::TooLarge {
            limit: MAX_XML_BYTES,
        });
    }
    Ok(Received {
        xml: String::from_utf8(xml).map_err(|_| SamlError::Utf8)?,
        relay_state: relay_state.map(value),
    })
}
