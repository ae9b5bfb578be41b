//! The pool's signing keys as its JWKS publishes them: each key usable for exactly one
//! asymmetric algorithm, named by its `kty` and `crv` (and its `alg`, when it names one).

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

/// The asymmetric algorithms a verifier can accept. HMAC and `none` are not among them: a
/// token naming one is refused before any key is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    ES256,
    RS256,
    EdDSA,
}

impl Alg {
    /// The algorithm a JOSE header names, if it is one of these.
    pub(crate) fn named(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::ES256),
            "RS256" => Some(Self::RS256),
            "EdDSA" => Some(Self::EdDSA),
            _ => None,
        }
    }

    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            Self::ES256 => Algorithm::ES256,
            Self::RS256 => Algorithm::RS256,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::EdDSA => "EdDSA",
        }
    }
}

/// One published key: the only algorithm it verifies, and the key itself.
pub(crate) struct Key {
    pub alg: Alg,
    pub key: DecodingKey,
}

/// The keys of one JWKS by `kid`.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, Arc<Key>>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl KeySet {
    /// The usable keys of a JWKS document, at most `max_keys` of them. Keys without a `kid`,
    /// for encryption, of an unknown type, or whose `alg` contradicts their type are skipped.
    pub fn parse(body: &[u8], max_keys: usize) -> Result<Self, serde_json::Error> {
        let jwks: Jwks = serde_json::from_slice(body)?;
        let mut keys = HashMap::new();
        for value in jwks.keys {
            if keys.len() >= max_keys {
                break;
            }
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            if let Some((kid, key)) = jwk.into_key() {
                keys.insert(kid, Arc::new(key));
            }
        }
        Ok(Self { keys })
    }

    pub fn get(&self, kid: &str) -> Option<Arc<Key>> {
        self.keys.get(kid).cloned()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

impl Jwk {
    fn into_key(self) -> Option<(String, Key)> {
        let kid = self.kid?;
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        let (alg, key) = match (self.kty.as_str(), self.crv.as_deref()) {
            ("EC", Some("P-256")) => (
                Alg::ES256,
                DecodingKey::from_ec_components(self.x.as_deref()?, self.y.as_deref()?).ok()?,
            ),
            ("OKP", Some("Ed25519")) => (
                Alg::EdDSA,
                DecodingKey::from_ed_components(self.x.as_deref()?).ok()?,
            ),
            ("RSA", None) => (
                Alg::RS256,
                DecodingKey::from_rsa_components(self.n.as_deref()?, self.e.as_deref()?).ok()?,
            ),
            _ => return None,
        };
        if self.alg.as_deref().is_some_and(|a| a != alg.name()) {
            return None;
        }
        Some((kid, Key { alg, key }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bound_to_one_algorithm_and_bounded_in_number() {
        let ec = serde_json::json!({"kty":"EC","crv":"P-256","kid":"a","alg":"ES256","use":"sig",
            "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let mut lying = ec.clone();
        lying["alg"] = "RS256".into();
        lying["kid"] = "b".into();
        let mut hmac = serde_json::json!({"kty":"oct","kid":"c","k":"c2VjcmV0"});
        hmac["alg"] = "HS256".into();
        let mut enc = ec.clone();
        enc["use"] = "enc".into();
        enc["kid"] = "d".into();
        let doc = serde_json::json!({"keys":[ec, lying, hmac, enc]});
        let set = KeySet::parse(doc.to_string().as_bytes(), 10).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.get("a").unwrap().alg, Alg::ES256);

        let many: Vec<_> = (0..50)
            .map(|i| {
                let mut k = doc["keys"][0].clone();
                k["kid"] = format!("k{i}").into();
                k
            })
            .collect();
        let doc = serde_json::json!({ "keys": many });
        assert_eq!(
            KeySet::parse(doc.to_string().as_bytes(), 8).unwrap().len(),
            8
        );
    }
}
