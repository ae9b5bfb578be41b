//! Signing keys: generation, sealing at rest under the master key, loading, and their public
//! JWKs. A pool's keys are stored sealed with AES-256-GCM; the additional data binds each
//! sealed key to its pool and key id, so a sealed key moved to another row does not open.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use gatehouse_domain::ids::PoolId;
use gatehouse_domain::pool::SigningAlg;
use serde::{Deserialize, Serialize};

use crate::CryptoError;
use crate::secret::{b64url, random_bytes, sha256};

/// The 256-bit key that seals private keys at rest.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        Self(random_bytes::<32>())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    pub fn to_b64(&self) -> String {
        b64url(&self.0)
    }

    /// A name for the key that reveals nothing of it: the first 8 bytes of
    /// HMAC-SHA-256(key, a fixed label), in hex. Databases record it to recognise their key.
    pub fn fingerprint(&self) -> String {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.0);
        let tag = aws_lc_rs::hmac::sign(&key, b"gatehouse master key fingerprint");
        tag.as_ref()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn key(&self) -> Result<LessSafeKey, CryptoError> {
        UnboundKey::new(&AES_256_GCM, &self.0)
            .map(LessSafeKey::new)
            .map_err(|_| CryptoError::BadKey)
    }

    fn aad(pool: PoolId, kid: &str) -> Vec<u8> {
        let mut aad = pool.0.as_bytes().to_vec();
        aad.extend_from_slice(kid.as_bytes());
        aad
    }

    /// Seals `plaintext` as nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, pool: PoolId, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut buf = plaintext.to_vec();
        self.key()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(Self::aad(pool, kid)),
                &mut buf,
            )
            .map_err(|_| CryptoError::Signing)?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    pub fn open(&self, pool: PoolId, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Unseal);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Unseal)?;
        let mut buf = ct.to_vec();
        let plain = self
            .key()?
            .open_in_place(nonce, Aad::from(Self::aad(pool, kid)), &mut buf)
            .map_err(|_| CryptoError::Unseal)?;
        Ok(plain.to_vec())
    }
}

/// A public JSON Web Key (RFC 7517) as published in a JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// A newly generated key: its PKCS#8 document (to seal) and its public JWK.
pub struct GeneratedKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub pkcs8: Vec<u8>,
    pub jwk: PublicJwk,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

enum Signer {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rs256(RsaKeyPair),
}

/// A private key ready to sign.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    signer: Signer,
    jwk: PublicJwk,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Generates a key pair for `alg` with a key id derived from its public key (RFC 7638-style
/// thumbprint, truncated).
pub fn generate(alg: SigningAlg) -> Result<GeneratedKey, CryptoError> {
    let rng = SystemRandom::new();
    let pkcs8 = match alg {
        SigningAlg::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| CryptoError::KeyGeneration)?
            .as_ref()
            .to_vec(),
        SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| CryptoError::KeyGeneration)?
            .as_ref()
            .to_vec(),
        SigningAlg::RS256 => {
            let kp = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048)
                .map_err(|_| CryptoError::KeyGeneration)?;
            let der = kp.as_der().map_err(|_| CryptoError::KeyGeneration)?;
            der.as_ref().to_vec()
        }
    };
    let key = SigningKey::from_pkcs8_with_kid(alg, &pkcs8, None)?;
    Ok(GeneratedKey {
        kid: key.kid.clone(),
        alg,
        jwk: key.jwk.clone(),
        pkcs8,
    })
}

fn public_jwk(alg: SigningAlg, signer: &Signer) -> PublicJwk {
    let mut jwk = PublicJwk {
        kty: String::new(),
        kid: String::new(),
        alg: alg.as_str().to_owned(),
        use_: "sig".to_owned(),
        crv: None,
        x: None,
        y: None,
        n: None,
        e: None,
    };
    match signer {
        Signer::Es256(kp) => {
            // Uncompressed point: 0x04 ‖ X ‖ Y.
            let p = kp.public_key().as_ref();
            jwk.kty = "EC".into();
            jwk.crv = Some("P-256".into());
            jwk.x = p.get(1..33).map(b64url);
            jwk.y = p.get(33..65).map(b64url);
        }
        Signer::Ed25519(kp) => {
            jwk.kty = "OKP".into();
            jwk.crv = Some("Ed25519".into());
            jwk.x = Some(b64url(kp.public_key().as_ref()));
        }
        Signer::Rs256(kp) => {
            let pk = kp.public_key();
            jwk.kty = "RSA".into();
            jwk.n = Some(b64url(pk.modulus().big_endian_without_leading_zero()));
            jwk.e = Some(b64url(pk.exponent().big_endian_without_leading_zero()));
        }
    }
    jwk
}

fn thumbprint_kid(jwk: &PublicJwk) -> String {
    // RFC 7638 members in lexicographic order.
    let canonical = match jwk.kty.as_str() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk.crv.as_deref().unwrap_or_default(),
            jwk.x.as_deref().unwrap_or_default(),
            jwk.y.as_deref().unwrap_or_default()
        ),
        "OKP" => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            jwk.crv.as_deref().unwrap_or_default(),
            jwk.x.as_deref().unwrap_or_default()
        ),
        _ => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            jwk.e.as_deref().unwrap_or_default(),
            jwk.n.as_deref().unwrap_or_default()
        ),
    };
    b64url(&sha256(canonical.as_bytes()))
}

impl SigningKey {
    /// Loads a key from its PKCS#8 document. `kid` is the stored id; `None` derives it.
    pub fn from_pkcs8_with_kid(
        alg: SigningAlg,
        pkcs8: &[u8],
        kid: Option<&str>,
    ) -> Result<Self, CryptoError> {
        let signer = match alg {
            SigningAlg::ES256 => Signer::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|_| CryptoError::BadKey)?,
            ),
            SigningAlg::EdDSA => Signer::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                    .map_err(|_| CryptoError::BadKey)?,
            ),
            SigningAlg::RS256 => {
                Signer::Rs256(RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| CryptoError::BadKey)?)
            }
        };
        let mut jwk = public_jwk(alg, &signer);
        let kid = kid.map_or_else(|| thumbprint_kid(&jwk), str::to_owned);
        jwk.kid.clone_from(&kid);
        Ok(Self {
            kid,
            alg,
            signer,
            jwk,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    pub fn public_jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// Signs `message` with the JWS algorithm of this key.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Es256(kp) => kp
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| CryptoError::Signing),
            Signer::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            Signer::Rs256(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| CryptoError::Signing)?;
                Ok(sig)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_name_a_key_without_revealing_it() {
        let key = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let fp = key.fingerprint();
        assert_eq!(fp.len(), 16);
        assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(fp, MasterKey::from_bytes(&[7u8; 32]).unwrap().fingerprint());
        assert_ne!(fp, MasterKey::generate().fingerprint());
        // Not a prefix of the key itself in any encoding we print.
        assert!(!key.to_b64().contains(&fp));
        assert!(!fp.starts_with("0707"));
    }
}
