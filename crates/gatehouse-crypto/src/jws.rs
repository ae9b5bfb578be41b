//! Compact JWS: signing with our keys, and verification through `jsonwebtoken` with the
//! algorithm taken from the key (never from the token), so `alg: none`, HMAC-with-a-public-key
//! and algorithm substitution are refused before any signature is checked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_domain::pool::SigningAlg;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::CryptoError;
use crate::keys::{PublicJwk, SigningKey};

/// `typ` of access tokens (RFC 9068).
pub const TYP_ACCESS_TOKEN: &str = "at+jwt";
/// `typ` of ID tokens.
pub const TYP_JWT: &str = "JWT";

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Signs `claims` as a compact JWS with header `{alg, typ, kid}`.
pub fn sign<C: Serialize>(key: &SigningKey, typ: &str, claims: &C) -> Result<String, CryptoError> {
    let header = serde_json::to_vec(&Header {
        alg: key.alg().as_str(),
        typ,
        kid: key.kid(),
    })
    .map_err(|_| CryptoError::Signing)?;
    let payload = serde_json::to_vec(claims).map_err(|_| CryptoError::Signing)?;
    let mut out = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 100);
    URL_SAFE_NO_PAD.encode_string(&header, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
    let signature = key.sign(out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut out);
    Ok(out)
}

/// A public key to verify with, made from a published JWK.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    alg: SigningAlg,
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

fn jwt_alg(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
    }
}

impl VerifyingKey {
    pub fn from_jwk(jwk: &PublicJwk) -> Result<Self, CryptoError> {
        let alg = SigningAlg::parse(&jwk.alg).map_err(|_| CryptoError::BadKey)?;
        let part = |v: &Option<String>| v.clone().ok_or(CryptoError::BadKey);
        let key = match (alg, jwk.kty.as_str(), jwk.crv.as_deref()) {
            (SigningAlg::ES256, "EC", Some("P-256")) => {
                DecodingKey::from_ec_components(&part(&jwk.x)?, &part(&jwk.y)?)
            }
            (SigningAlg::EdDSA, "OKP", Some("Ed25519")) => {
                DecodingKey::from_ed_components(&part(&jwk.x)?)
            }
            (SigningAlg::RS256, "RSA", None) => {
                DecodingKey::from_rsa_components(&part(&jwk.n)?, &part(&jwk.e)?)
            }
            _ => return Err(CryptoError::BadKey),
        }
        .map_err(|_| CryptoError::BadKey)?;
        Ok(Self {
            kid: jwk.kid.clone(),
            alg,
            key,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("the token is not a well-formed JWS")]
    Malformed,
    #[error("the token's algorithm is not allowed")]
    AlgorithmNotAllowed,
    #[error("the token's type is not {0}")]
    WrongType(&'static str),
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token's signature or claims are invalid: {0}")]
    Invalid(String),
}

/// What a token must be to be accepted. Expiry is left to the caller, who reads a `Clock`.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub typ: &'static str,
    pub issuer: &'a str,
    /// `None` accepts any audience (introspection); services name theirs.
    pub audience: Option<&'a str>,
}

/// Reads the unverified `iss` of a token: only to choose whose keys to verify it with.
pub fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

/// Verifies a compact JWS and deserializes its claims.
pub fn verify<'k, T: DeserializeOwned>(
    token: &str,
    keys: impl Fn(&str) -> Option<&'k VerifyingKey>,
    expect: &Expect<'_>,
) -> Result<T, JwsError> {
    if token.len() > 16 * 1024 || token.split('.').count() != 3 {
        return Err(JwsError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwsError::Malformed)?;
    if !matches!(
        header.alg,
        Algorithm::ES256 | Algorithm::RS256 | Algorithm::EdDSA
    ) {
        return Err(JwsError::AlgorithmNotAllowed);
    }
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t == expect.typ.to_ascii_lowercase()
            || t == format!("application/{}", expect.typ.to_ascii_lowercase())
    });
    if !typ_ok {
        return Err(JwsError::WrongType(expect.typ));
    }
    let kid = header.kid.as_deref().ok_or(JwsError::UnknownKey)?;
    let key = keys(kid).ok_or(JwsError::UnknownKey)?;
    let alg = jwt_alg(key.alg);
    if header.alg != alg {
        return Err(JwsError::AlgorithmNotAllowed);
    }
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.set_issuer(&[expect.issuer]);
    match expect.audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    jsonwebtoken::decode::<T>(token, &key.key, &validation)
        .map(|d| d.claims)
        .map_err(|e| JwsError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Claims {
        iss: String,
        sub: String,
        aud: String,
        exp: i64,
    }

    fn claims() -> Claims {
        Claims {
            iss: "https://id.example/pools/acme".into(),
            sub: "u1".into(),
            aud: "https://id.example/pools/acme".into(),
            exp: 4_000_000_000,
        }
    }

    fn expect() -> Expect<'static> {
        Expect {
            typ: TYP_ACCESS_TOKEN,
            issuer: "https://id.example/pools/acme",
            audience: None,
        }
    }

    fn roundtrip(alg: SigningAlg) -> (String, VerifyingKey) {
        let g = generate(alg).unwrap();
        let sk = SigningKey::from_pkcs8_with_kid(alg, &g.pkcs8, Some(&g.kid)).unwrap();
        let vk = VerifyingKey::from_jwk(&g.jwk).unwrap();
        let token = sign(&sk, TYP_ACCESS_TOKEN, &claims()).unwrap();
        (token, vk)
    }

    #[test]
    fn every_algorithm_signs_and_verifies() {
        for alg in [SigningAlg::ES256, SigningAlg::RS256, SigningAlg::EdDSA] {
            let (token, vk) = roundtrip(alg);
            let got: Claims = verify(&token, |_| Some(&vk), &expect()).unwrap();
            assert_eq!(got, claims(), "{alg:?}");
        }
    }

    #[test]
    fn tampered_payload_is_refused() {
        let (token, vk) = roundtrip(SigningAlg::ES256);
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                sub: "admin".into(),
                ..claims()
            })
            .unwrap(),
        );
        parts[1] = &forged;
        let forged = parts.join(".");
        assert!(matches!(
            verify::<Claims>(&forged, |_| Some(&vk), &expect()),
            Err(JwsError::Invalid(_))
        ));
    }

    #[test]
    fn alg_none_and_hmac_are_refused() {
        let (token, vk) = roundtrip(SigningAlg::ES256);
        let payload = token.split('.').nth(1).unwrap();
        for alg in ["none", "HS256"] {
            let header = URL_SAFE_NO_PAD.encode(format!(
                r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{}"}}"#,
                vk.kid()
            ));
            let forged = format!("{header}.{payload}.");
            let err = verify::<Claims>(&forged, |_| Some(&vk), &expect()).unwrap_err();
            assert!(
                matches!(err, JwsError::AlgorithmNotAllowed | JwsError::Malformed),
                "{alg}: {err:?}"
            );
        }
    }

    #[test]
    fn algorithm_substitution_between_asymmetric_keys_is_refused() {
        // An RS256 token presented with the kid of an ES256 key.
        let (es_token, es_key) = roundtrip(SigningAlg::ES256);
        let (rs_token, _) = roundtrip(SigningAlg::RS256);
        let _ = es_token;
        let err = verify::<Claims>(&rs_token, |_| Some(&es_key), &expect()).unwrap_err();
        assert_eq!(err, JwsError::AlgorithmNotAllowed);
    }

    #[test]
    fn wrong_issuer_type_and_key_are_refused() {
        let (token, vk) = roundtrip(SigningAlg::EdDSA);
        let other = Expect {
            issuer: "https://id.example/pools/other",
            ..expect()
        };
        assert!(verify::<Claims>(&token, |_| Some(&vk), &other).is_err());
        let id = Expect {
            typ: TYP_JWT,
            ..expect()
        };
        assert_eq!(
            verify::<Claims>(&token, |_| Some(&vk), &id).unwrap_err(),
            JwsError::WrongType(TYP_JWT)
        );
        assert_eq!(
            verify::<Claims>(&token, |_| None, &expect()).unwrap_err(),
            JwsError::UnknownKey
        );
    }

    #[test]
    fn sealed_keys_open_only_for_their_row() {
        use crate::keys::MasterKey;
        use gatehouse_domain::ids::PoolId;
        let mk = MasterKey::generate();
        let pool = PoolId::new_random();
        let sealed = mk.seal(pool, "k1", b"secret key").unwrap();
        assert_eq!(mk.open(pool, "k1", &sealed).unwrap(), b"secret key");
        assert!(mk.open(pool, "k2", &sealed).is_err());
        assert!(mk.open(PoolId::new_random(), "k1", &sealed).is_err());
        assert!(MasterKey::generate().open(pool, "k1", &sealed).is_err());
    }
}
