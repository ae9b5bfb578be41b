//! An upstream's ID token, checked as OpenID Connect Core §3.1.3.7 says: the signature first
//! (a key of the issuer's JWKS, an allowed asymmetric algorithm that fits the key), then the
//! claims: `iss` exactly, `aud` naming the client (and `azp` the client when present or when
//! there are several audiences), `exp`, `iat` and `nbf` with a small leeway, `nonce` (constant
//! time), `at_hash` when present.

use gatehouse_crypto::jws::JwsError;
use gatehouse_crypto::secret::{b64url, constant_time_eq};
use gatehouse_crypto::upstream::{UnverifiedJws, UpstreamKey};
use serde_json::{Map, Value};
use url::Url;

use super::{IdTokenError, UpstreamClient, UpstreamError};

/// The clock skew tolerated between Gatehouse and the provider, in seconds.
pub(super) const LEEWAY: i64 = 60;

/// The claims that only served the check and are not passed on.
const PROTOCOL_CLAIMS: [&str; 10] = [
    "iss", "aud", "exp", "iat", "nbf", "nonce", "azp", "jti", "at_hash", "c_hash",
];

#[derive(Clone, Copy)]
pub(super) struct Expect<'a> {
    pub issuer: &'a str,
    /// Another spelling of the issuer the provider documents (Google's bare host name).
    pub also_issuer: Option<&'a str>,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub access_token: &'a str,
    pub now: i64,
}

impl UpstreamClient {
    /// The claims of a valid ID token, less the protocol claims.
    pub(super) async fn check_id_token(
        &self,
        jwks_uri: &Url,
        token: &str,
        expect: &Expect<'_>,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let jws = UnverifiedJws::parse(token).map_err(|e| match e {
            JwsError::AlgorithmNotAllowed => IdTokenError::AlgorithmNotAllowed,
            _ => IdTokenError::Malformed,
        })?;
        if let Some(typ) = jws.typ()
            && !typ.eq_ignore_ascii_case("JWT")
            && !typ.eq_ignore_ascii_case("application/jwt")
        {
            return Err(IdTokenError::WrongType.into());
        }
        let (keys, fresh) = self.keys(jwks_uri, false).await?;
        let claims = match pick(&keys, &jws) {
            Some(key) => jws.verify(key),
            None if fresh => return Err(IdTokenError::UnknownKey.into()),
            None => {
                // Perhaps the provider rotated its keys: read the set again, at most once.
                let (keys, _) = self.keys(jwks_uri, true).await?;
                match pick(&keys, &jws) {
                    Some(key) => jws.verify(key),
                    None => return Err(IdTokenError::UnknownKey.into()),
                }
            }
        };
        let claims = claims.map_err(|e| match e {
            JwsError::AlgorithmNotAllowed => IdTokenError::AlgorithmNotAllowed,
            JwsError::Malformed => IdTokenError::Malformed,
            _ => IdTokenError::BadSignature,
        })?;
        check_claims(claims, &jws, expect).map_err(Into::into)
    }
}

/// The key a token names: by `kid`; without one, the set's only key fit for its algorithm
/// (Core §10.1 requires a `kid` when there are several). A key named by `kid` that does not
/// fit the algorithm is still returned, so that verifying refuses the algorithm.
fn pick<'k>(keys: &'k [UpstreamKey], jws: &UnverifiedJws<'_>) -> Option<&'k UpstreamKey> {
    match jws.kid() {
        Some(kid) => {
            let mut named = keys.iter().filter(|k| k.kid() == Some(kid));
            let first = named.clone().next();
            named.find(|k| k.accepts(jws.alg())).or(first)
        }
        None => {
            let mut fit = keys.iter().filter(|k| k.accepts(jws.alg()));
            match (fit.next(), fit.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    }
}

fn check_claims(
    mut claims: Map<String, Value>,
    jws: &UnverifiedJws<'_>,
    expect: &Expect<'_>,
) -> Result<Map<String, Value>, IdTokenError> {
    match claims.get("iss") {
        Some(Value::String(iss))
            if iss == expect.issuer || Some(iss.as_str()) == expect.also_issuer => {}
        Some(Value::String(_)) => return Err(IdTokenError::Issuer),
        _ => return Err(IdTokenError::MissingClaim("iss")),
    }
    match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() && sub.len() <= 255 => {}
        _ => return Err(IdTokenError::MissingClaim("sub")),
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| a.as_str().ok_or(IdTokenError::MissingClaim("aud")))
            .collect::<Result<_, _>>()?,
        _ => return Err(IdTokenError::MissingClaim("aud")),
    };
    if !audiences.contains(&expect.client_id) {
        return Err(IdTokenError::Audience);
    }
    match claims.get("azp") {
        None if audiences.len() == 1 => {}
        Some(Value::String(azp)) if azp == expect.client_id => {}
        _ => return Err(IdTokenError::AuthorizedParty),
    }
    let time = |name: &'static str| match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(IdTokenError::MissingClaim(name)),
    };
    let exp = time("exp")?.ok_or(IdTokenError::MissingClaim("exp"))?;
    let iat = time("iat")?.ok_or(IdTokenError::MissingClaim("iat"))?;
    if expect.now.saturating_sub(LEEWAY) >= exp {
        return Err(IdTokenError::Expired);
    }
    if iat > expect.now.saturating_add(LEEWAY) {
        return Err(IdTokenError::NotYetValid);
    }
    if let Some(nbf) = time("nbf")?
        && nbf > expect.now.saturating_add(LEEWAY)
    {
        return Err(IdTokenError::NotYetValid);
    }
    match claims.get("nonce") {
        Some(Value::String(nonce))
            if constant_time_eq(nonce.as_bytes(), expect.nonce.as_bytes()) => {}
        _ => return Err(IdTokenError::Nonce),
    }
    match claims.get("at_hash") {
        None => {}
        Some(Value::String(at_hash)) => {
            let hash = jws.alg().token_hash(expect.access_token.as_bytes());
            let want = b64url(&hash[..hash.len() / 2]);
            if !constant_time_eq(at_hash.as_bytes(), want.as_bytes()) {
                return Err(IdTokenError::AccessTokenHash);
            }
        }
        Some(_) => return Err(IdTokenError::MissingClaim("at_hash")),
    }
    for name in PROTOCOL_CLAIMS {
        claims.remove(name);
    }
    Ok(claims)
}
