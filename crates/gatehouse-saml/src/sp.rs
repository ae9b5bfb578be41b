//! The service provider: its configuration and its signing key with a certificate for it.

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
use base64::Engine as _;

use crate::error::SamlError;

/// One pool's service provider.
#[derive(Debug)]
pub struct SpConfig {
    /// The SP's entity ID: by Gatehouse's convention the URL of its metadata,
    /// `{base}/saml2/metadata`.
    pub entity_id: String,
    /// The assertion consumer service (HTTP-POST), `{base}/saml2/idpresponse`.
    pub acs_url: String,
    /// The single logout service (HTTP-Redirect), if the SP offers one.
    pub slo_url: Option<String>,
    /// The key that signs AuthnRequests and logout messages.
    pub key: SpKey,
}

/// The SP's RSA-2048 signing key and a self-signed certificate for it.
///
/// The certificate is a function of the key alone (fixed subject and validity, serial from the
/// public key, deterministic PKCS#1 v1.5 signature), so storing the PKCS#8 document is enough:
/// [`SpKey::from_pkcs8`] makes the same certificate again and the SP metadata does not change.
pub struct SpKey {
    pkcs8: Vec<u8>,
    key_pair: RsaKeyPair,
    cert_der: Vec<u8>,
}

impl std::fmt::Debug for SpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpKey")
            .field("pkcs8", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl SpKey {
    /// A new RSA-2048 key.
    pub fn generate() -> Result<Self, SamlError> {
        let key = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| SamlError::Key("key generation failed"))?;
        let pkcs8 = key
            .as_der()
            .map_err(|_| SamlError::Key("key encoding failed"))?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// Loads a key from its PKCS#8 DER document (as [`SpKey::pkcs8_der`] gave it).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, SamlError> {
        let key_pair =
            RsaKeyPair::from_pkcs8(der).map_err(|_| SamlError::Key("not an RSA PKCS#8 key"))?;
        if key_pair.public_modulus_len() < 256 {
            return Err(SamlError::Key("RSA keys must have at least 2048 bits"));
        }
        let cert_der = self_signed(der)?;
        Ok(Self {
            pkcs8: der.to_vec(),
            key_pair,
            cert_der,
        })
    }

    /// The private key, PKCS#8 DER: for the caller to store (sealed) and load again.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The self-signed certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The public key as the RSAPublicKey DER (PKCS#1) aws-lc-rs verifies with.
    pub fn public_key_der(&self) -> &[u8] {
        self.key_pair.public_key().as_ref()
    }

    pub(crate) fn key_pair(&self) -> &RsaKeyPair {
        &self.key_pair
    }

    pub(crate) fn certificate_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.cert_der)
    }
}

fn self_signed(pkcs8: &[u8]) -> Result<Vec<u8>, SamlError> {
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8);
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)
        .map_err(|_| SamlError::Key("certificate key"))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Gatehouse SAML service provider");
    let cert = params
        .self_signed(&key)
        .map_err(|_| SamlError::Key("certificate signing"))?;
    Ok(cert.der().to_vec())
}
