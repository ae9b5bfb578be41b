//! Tokens signed by upstream identity providers: keys read from their published JWKS and
//! compact JWS verified with them. Unlike our own tokens ([`crate::jws`]), an upstream may sign
//! with any of the asymmetric algorithms OpenID providers use, so the algorithm is read from
//! the token's header, but only from an allow-list of asymmetric ones (`none` and HMAC cannot
//! be named), and only with a key whose type and curve fit it (and whose own `alg`, when the
//! JWK states one, is that algorithm). The payload of a token is reachable only through
//! [`UnverifiedJws::verify`], so no claim is read before its signature is checked.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::CryptoError;
use crate::jws::JwsError;
use crate::secret::b64url_decode;

/// The largest token accepted: ID tokens are a few kilobytes.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The signature algorithms accepted from upstream providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamAlg {
    RS256,
    RS384,
    RS512,
    PS256,
    ES256,
    ES384,
    EdDSA,
}

impl UpstreamAlg {
    /// The algorithm a JOSE `alg` names, if it is one we accept. `none`, `HS*` and anything
    /// else give `None`.
    pub fn parse(alg: &str) -> Option<Self> {
        Some(match alg {
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "EdDSA" => Self::EdDSA,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    /// The hash OpenID Connect pairs with the algorithm for `at_hash` and `c_hash` (SHA-512
    /// for EdDSA over Ed25519).
    pub fn token_hash(self, data: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            Self::RS256 | Self::PS256 | Self::ES256 => &digest::SHA256,
            Self::RS384 | Self::ES384 => &digest::SHA384,
            Self::RS512 | Self::EdDSA => &digest::SHA512,
        };
        digest::digest(algorithm, data).as_ref().to_vec()
    }
}

/// A JWK as an upstream publishes it; only public members are read.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    #[serde(default)]
    pub key_ops: Option<Vec<String>>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    /// A private member: a JWKS that publishes one is broken, and its key is not used.
    #[serde(default)]
    pub d: Option<Value>,
}

#[derive(Clone)]
enum PublicKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// A public key of an upstream, able to verify the algorithms its type allows.
#[derive(Clone)]
pub struct UpstreamKey {
    kid: Option<String>,
    /// The JWK's own `alg`, when it states one: then the only algorithm it verifies.
    alg: Option<UpstreamAlg>,
    key: PublicKey,
}

impl std::fmt::Debug for UpstreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kty = match self.key {
            PublicKey::Rsa { .. } => "RSA",
            PublicKey::P256(_) => "EC P-256",
            PublicKey::P384(_) => "EC P-384",
            PublicKey::Ed25519(_) => "OKP Ed25519",
        };
        f.debug_struct("UpstreamKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kty", &kty)
            .finish()
    }
}

impl UpstreamKey {
    /// A verifying key from a JWK: RSA (2048 bits or more, checked when verifying), EC P-256
    /// or P-384, or OKP Ed25519. Symmetric keys, encryption keys, keys whose `alg` is not one
    /// we accept or does not fit their type, and JWKs carrying private members are refused.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, CryptoError> {
        if jwk.d.is_some() {
            return Err(CryptoError::BadKey);
        }
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(CryptoError::BadKey);
        }
        if let Some(ops) = &jwk.key_ops
            && !ops.iter().any(|op| op == "verify")
        {
            return Err(CryptoError::BadKey);
        }
        let alg = match jwk.alg.as_deref() {
            None => None,
            Some(a) => Some(UpstreamAlg::parse(a).ok_or(CryptoError::BadKey)?),
        };
        let member = |v: &Option<String>| {
            v.as_deref()
                .and_then(b64url_decode)
                .ok_or(CryptoError::BadKey)
        };
        let key = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("RSA", _) => {
                let n = member(&jwk.n)?;
                let e = member(&jwk.e)?;
                if n.is_empty() || e.is_empty() || e.len() > 8 {
                    return Err(CryptoError::BadKey);
                }
                PublicKey::Rsa { n, e }
            }
            ("EC", Some(crv @ ("P-256" | "P-384"))) => {
                let size = if crv == "P-256" { 32 } else { 48 };
                let x = member(&jwk.x)?;
                let y = member(&jwk.y)?;
                if x.len() != size || y.len() != size {
                    return Err(CryptoError::BadKey);
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                if size == 32 {
                    PublicKey::P256(point)
                } else {
                    PublicKey::P384(point)
                }
            }
            ("OKP", Some("Ed25519")) => {
                let x = member(&jwk.x)?;
                if x.len() != 32 {
                    return Err(CryptoError::BadKey);
                }
                PublicKey::Ed25519(x)
            }
            _ => return Err(CryptoError::BadKey),
        };
        let key = Self {
            kid: jwk.kid.clone(),
            alg,
            key,
        };
        if let Some(alg) = alg
            && !key.fits(alg)
        {
            return Err(CryptoError::BadKey);
        }
        Ok(key)
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether the key's type (and its own `alg`, if stated) allows `alg`.
    pub fn accepts(&self, alg: UpstreamAlg) -> bool {
        self.alg.is_none_or(|own| own == alg) && self.fits(alg)
    }

    fn fits(&self, alg: UpstreamAlg) -> bool {
        use UpstreamAlg::*;
        matches!(
            (&self.key, alg),
            (PublicKey::Rsa { .. }, RS256 | RS384 | RS512 | PS256)
                | (PublicKey::P256(_), ES256)
                | (PublicKey::P384(_), ES384)
                | (PublicKey::Ed25519(_), EdDSA)
        )
    }

    fn verify_signature(&self, alg: UpstreamAlg, message: &[u8], sig: &[u8]) -> bool {
        use UpstreamAlg::*;
        if !self.accepts(alg) {
            return false;
        }
        match &self.key {
            PublicKey::Rsa { n, e } => {
                let params = match alg {
                    RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    _ => return false,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            PublicKey::P256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            PublicKey::P384(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            PublicKey::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
        }
    }
}

/// A compact JWS whose header is read and whose signature is not yet checked.
#[derive(Debug)]
pub struct UnverifiedJws<'t> {
    alg: UpstreamAlg,
    kid: Option<String>,
    typ: Option<String>,
    signing_input: &'t str,
    payload: &'t str,
    signature: Vec<u8>,
}

impl<'t> UnverifiedJws<'t> {
    /// Reads a compact JWS's header: three base64url parts, a JSON object header whose `alg`
    /// is on the allow-list, and no `crit` (no extension is understood). Encrypted tokens (five
    /// parts) are refused.
    pub fn parse(token: &'t str) -> Result<Self, JwsError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwsError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Malformed);
        };
        let header: Map<String, Value> = b64url_decode(header)
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or(JwsError::Malformed)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(JwsError::Malformed)?;
        let alg = UpstreamAlg::parse(alg).ok_or(JwsError::AlgorithmNotAllowed)?;
        if header.contains_key("crit") {
            return Err(JwsError::Malformed);
        }
        let text = |name: &str| match header.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(JwsError::Malformed),
        };
        let kid = text("kid")?;
        let typ = text("typ")?;
        let signature = b64url_decode(signature).ok_or(JwsError::Malformed)?;
        let signing_input = &token[..header_len(token, payload)];
        Ok(Self {
            alg,
            kid,
            typ,
            signing_input,
            payload,
            signature,
        })
    }

    pub fn alg(&self) -> UpstreamAlg {
        self.alg
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }

    /// Checks the signature with `key` and only then reads the payload, a JSON object.
    pub fn verify(&self, key: &UpstreamKey) -> Result<Map<String, Value>, JwsError> {
        if !key.accepts(self.alg) {
            return Err(JwsError::AlgorithmNotAllowed);
        }
        if !key.verify_signature(self.alg, self.signing_input.as_bytes(), &self.signature) {
            return Err(JwsError::Invalid(
                "the signature does not verify".to_owned(),
            ));
        }
        b64url_decode(self.payload)
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or(JwsError::Malformed)
    }
}

/// The length of `header.payload` in `token`, whose second part is `payload`.
fn header_len(token: &str, payload: &str) -> usize {
    token.find('.').map_or(0, |dot| dot + 1 + payload.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::{TYP_JWT, sign};
    use crate::keys::{PublicJwk, SigningKey, generate};
    use crate::secret::b64url;
    use gatehouse_domain::pool::SigningAlg;

    fn jwk(public: &PublicJwk) -> Jwk {
        serde_json::from_value(serde_json::to_value(public).unwrap()).unwrap()
    }

    fn signed(alg: SigningAlg) -> (String, Jwk) {
        let g = generate(alg).unwrap();
        let sk = SigningKey::from_pkcs8_with_kid(alg, &g.pkcs8, Some(&g.kid)).unwrap();
        let token = sign(&sk, TYP_JWT, &serde_json::json!({"sub": "u1"})).unwrap();
        (token, jwk(&g.jwk))
    }

    #[test]
    fn tokens_of_each_key_type_verify_with_their_key_only() {
        for alg in [SigningAlg::ES256, SigningAlg::RS256, SigningAlg::EdDSA] {
            let (token, key) = signed(alg);
            let key = UpstreamKey::from_jwk(&key).unwrap();
            let jws = UnverifiedJws::parse(&token).unwrap();
            assert_eq!(jws.kid(), key.kid());
            assert_eq!(jws.verify(&key).unwrap()["sub"], "u1", "{alg:?}");
            let (_, other) = signed(alg);
            let other = UpstreamKey::from_jwk(&other).unwrap();
            assert!(jws.verify(&other).is_err(), "{alg:?}");
        }
    }

    #[test]
    fn a_tampered_payload_does_not_verify() {
        let (token, key) = signed(SigningAlg::ES256);
        let key = UpstreamKey::from_jwk(&key).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64url(br#"{"sub":"admin"}"#),
            parts[2]
        );
        assert!(matches!(
            UnverifiedJws::parse(&forged).unwrap().verify(&key),
            Err(JwsError::Invalid(_))
        ));
    }

    #[test]
    fn none_hmac_and_unknown_algorithms_cannot_be_named() {
        for alg in ["none", "HS256", "HS512", "ES512", "RS1", "", "rs256"] {
            let header = b64url(format!(r#"{{"alg":"{alg}","kid":"k"}}"#).as_bytes());
            let token = format!("{header}.{}.", b64url(b"{}"));
            assert_eq!(
                UnverifiedJws::parse(&token).unwrap_err(),
                JwsError::AlgorithmNotAllowed,
                "{alg}"
            );
        }
    }

    #[test]
    fn a_key_verifies_only_the_algorithms_its_type_allows() {
        // An RSA key named for ES256 by the token: refused before any signature check.
        let (rs_token, rs_key) = signed(SigningAlg::RS256);
        let (_, es_key) = signed(SigningAlg::ES256);
        let es_key = UpstreamKey::from_jwk(&es_key).unwrap();
        assert_eq!(
            UnverifiedJws::parse(&rs_token)
                .unwrap()
                .verify(&es_key)
                .unwrap_err(),
            JwsError::AlgorithmNotAllowed
        );
        // An RSA key whose JWK says RS256 does not verify PS256.
        let rsa = UpstreamKey::from_jwk(&rs_key).unwrap();
        assert!(rsa.accepts(UpstreamAlg::RS256));
        assert!(!rsa.accepts(UpstreamAlg::PS256));
        let mut unnamed = rs_key.clone();
        unnamed.alg = None;
        assert!(
            UpstreamKey::from_jwk(&unnamed)
                .unwrap()
                .accepts(UpstreamAlg::PS256)
        );
    }

    #[test]
    fn unusable_jwks_are_refused() {
        let (_, es) = signed(SigningAlg::ES256);
        let (_, rs) = signed(SigningAlg::RS256);
        let mut cases = Vec::new();
        let mut k = es.clone();
        k.use_ = Some("enc".into());
        cases.push(("encryption key", k));
        let mut k = es.clone();
        k.d = Some(Value::String("private".into()));
        cases.push(("private member", k));
        let mut k = es.clone();
        k.alg = Some("RS256".into());
        cases.push(("alg does not fit the type", k));
        let mut k = es.clone();
        k.alg = Some("HS256".into());
        cases.push(("HMAC alg", k));
        let mut k = es.clone();
        k.crv = Some("P-521".into());
        cases.push(("unsupported curve", k));
        let mut k = es.clone();
        k.x = Some(b64url(&[1u8; 31]));
        cases.push(("short coordinate", k));
        let mut k = rs.clone();
        k.kty = "oct".into();
        cases.push(("symmetric key", k));
        let mut k = rs.clone();
        k.key_ops = Some(vec!["encrypt".into()]);
        cases.push(("key_ops without verify", k));
        let mut k = rs;
        k.n = Some("!!".into());
        cases.push(("not base64url", k));
        for (what, jwk) in cases {
            assert!(UpstreamKey::from_jwk(&jwk).is_err(), "{what}");
        }
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let (token, _) = signed(SigningAlg::ES256);
        let parts: Vec<&str> = token.split('.').collect();
        let crit = b64url(br#"{"alg":"ES256","crit":["exp"],"exp":1}"#);
        for bad in [
            String::new(),
            "a.b".to_owned(),
            format!("{token}.x.y"),
            format!("{}.{}.{}", b64url(b"[1]"), parts[1], parts[2]),
            format!("{crit}.{}.{}", parts[1], parts[2]),
            format!("{}.{}.%%", parts[0], parts[1]),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(UnverifiedJws::parse(&bad).is_err(), "{bad:.40}");
        }
    }

    #[test]
    fn token_hashes_follow_the_algorithm() {
        assert_eq!(UpstreamAlg::RS256.token_hash(b"x").len(), 32);
        assert_eq!(UpstreamAlg::ES384.token_hash(b"x").len(), 48);
        assert_eq!(UpstreamAlg::EdDSA.token_hash(b"x").len(), 64);
    }
}
