//! OpenID Connect ID tokens (Core §2): their claims, and the claims the standard scopes
//! release in them and at userinfo (§5.4); signed with the pool's ID-token key (a family of
//! its own, RS256, published in the pool's JWKS beside the access-token keys), `typ: JWT`.

use gatehouse_crypto::jws::{self, TYP_JWT};
use gatehouse_crypto::secret::{Secret, sha256};
use gatehouse_domain::client::AppClient;
use gatehouse_domain::ids::SessionId;
use gatehouse_domain::pool::{Pool, SigningAlg};
use gatehouse_domain::store::ID_TOKEN_SIGNING_ALG;
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::user::User;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::Gatehouse;
use crate::error::ServiceResult;
use crate::tokens::IssuedToken;

impl Gatehouse {
    /// The algorithm of every pool's ID tokens, for discovery
    /// (`id_token_signing_alg_values_supported`).
    pub fn id_token_alg(&self) -> SigningAlg {
        ID_TOKEN_SIGNING_ALG
    }

    /// Signs `claims` as an ID token of `pool`: header `{alg: RS256, typ: JWT, kid}` with the
    /// pool's current ID-token key. The caller makes the claims (`iss`, `sub`, `aud`, `exp`,
    /// `iat`, `nonce`, ...); access tokens never come from here, and no access-token check
    /// accepts what this key signs.
    pub async fn sign_id_token<T: Serialize>(
        &self,
        pool: &Pool,
        claims: &T,
    ) -> ServiceResult<Secret> {
        let keys = self.pool_keys(pool).await?;
        Ok(Secret::new(jws::sign(
            &keys.id_token_signing,
            TYP_JWT,
            claims,
        )?))
    }
}

/// What an ID token states beyond the user and the client.
#[derive(Debug, Clone)]
pub struct IdTokenFacts {
    pub nonce: Option<String>,
    pub auth_time: Timestamp,
    /// The browser session (OIDC `sid`): logout names it.
    pub browser_session: SessionId,
}

#[derive(Debug, Serialize)]
struct IdTokenClaims {
    iss: String,
    sub: String,
    aud: String,
    azp: String,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    sid: String,
    at_hash: String,
    amr: [&'static str; 1],
    token_use: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    identities: Option<Vec<crate::tokens::IdentityClaim>>,
    #[serde(flatten)]
    profile: Map<String, Value>,
}

/// The claims the granted scopes release about `user` (OIDC Core §5.4), and always
/// `preferred_username` and `username` (the pool's username, as Cognito's tokens carry it).
pub fn scope_claims(user: &User, scopes: &[String]) -> Map<String, Value> {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let a = &user.attributes;
    let mut claims = Map::new();
    claims.insert("username".into(), json!(user.username.as_str()));
    claims.insert(
        "preferred_username".into(),
        json!(
            a.preferred_username
                .as_deref()
                .unwrap_or(user.username.as_str())
        ),
    );
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            claims.insert(k.to_owned(), v);
        }
    };
    if has("profile") {
        put("name", Some(json!(a.name)));
        put("given_name", a.given_name.as_ref().map(|v| json!(v)));
        put("family_name", a.family_name.as_ref().map(|v| json!(v)));
        put("middle_name", a.middle_name.as_ref().map(|v| json!(v)));
        put("nickname", a.nickname.as_ref().map(|v| json!(v)));
        put("updated_at", Some(json!(user.updated_at.as_secs())));
    }
    if has("email") {
        put("email", Some(json!(a.email)));
        put(
            "email_verified",
            Some(json!(a.email_verified.unwrap_or(false))),
        );
    }
    if has("phone") {
        put("phone_number", a.phone.as_ref().map(|v| json!(v)));
        if a.phone.is_some() {
            put(
                "phone_number_verified",
                Some(json!(a.phone_verified.unwrap_or(false))),
            );
        }
    }
    claims
}

/// `at_hash` (OIDC Core §3.1.3.6): the left half of the SHA-256 of the access token, for the
/// RS256 and ES256 families alike.
fn at_hash(access_token: &str) -> String {
    use base64::Engine;
    let digest = sha256(access_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// What a verified `id_token_hint` says (RP-initiated logout): whose it is and in which
/// browser session it was issued. Expired hints are accepted, as the specification allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenHint {
    pub client_id: String,
    pub sid: Option<String>,
}

impl Gatehouse {
    /// Verifies an ID token this pool issued (signature and issuer; not its expiry).
    pub async fn id_token_hint(
        &self,
        pool: &Pool,
        token: &str,
    ) -> ServiceResult<Option<IdTokenHint>> {
        #[derive(serde::Deserialize)]
        struct Hint {
            aud: String,
            #[serde(default)]
            sid: Option<String>,
        }
        let keys = self.pool_keys(pool).await?;
        let issuer = self.issuer(pool);
        let hint: Option<Hint> = gatehouse_crypto::jws::verify(
            token,
            |kid| keys.id_token_verifying_key(kid),
            &gatehouse_crypto::jws::Expect {
                typ: gatehouse_crypto::jws::TYP_JWT,
                issuer: &issuer,
                audience: None,
            },
        )
        .ok();
        Ok(hint.map(|h| IdTokenHint {
            client_id: h.aud,
            sid: h.sid,
        }))
    }

    pub(crate) async fn mint_id_token(
        &self,
        pool: &Pool,
        client: &AppClient,
        user: &User,
        scopes: &[String],
        access: &IssuedToken,
        facts: IdTokenFacts,
    ) -> ServiceResult<Secret> {
        let now = self.now();
        let mut profile = scope_claims(user, scopes);
        if let Some(o) = &access.overrides {
            o.apply_to_id(&mut profile);
        }
        let claims = IdTokenClaims {
            iss: self.issuer(pool),
            sub: user.id.to_string(),
            aud: client.client_id.to_string(),
            azp: client.client_id.to_string(),
            exp: now
                .plus_secs(i64::from(pool.settings.access_token_ttl_secs))
                .as_secs(),
            iat: now.as_secs(),
            auth_time: facts.auth_time.as_secs(),
            nonce: facts.nonce,
            sid: facts.browser_session.to_string(),
            at_hash: at_hash(access.token.expose()),
            amr: ["pwd"],
            token_use: "id",
            identities: access.claims.identities.clone(),
            profile,
        };
        self.sign_id_token(pool, &claims).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_is_the_left_half_of_the_sha256_base64url() {
        // OIDC Core §A.3's access token and at_hash use RS256, whose hash is SHA-256.
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
