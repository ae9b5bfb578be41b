//! Security Event Tokens from the feed: verified (RS256 only, `typ: secevent+jwt`, the pool as
//! `iss`, the feed as `aud`, the signature against the pool's JWKS) before they are read, and
//! read into the one [`Effect`] each has on tokens.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::keys::{Alg, KeySet};
use crate::revocations::Effect;

/// `typ` of a Security Event Token (RFC 8417, SSF 1.0 §4.1.1).
pub const TYP_SECEVENT: &str = "secevent+jwt";

const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";
const TOKEN_REVOKED: &str = "urn:gatehouse:secevent:event-type:token-revoked";

/// Why a SET was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetRejection {
    /// Its `kid` is not in the JWKS (a refetch may help).
    UnknownKey,
    /// Anything else: bad shape, header, signature, issuer, audience or subject.
    Invalid(&'static str),
}

#[derive(Deserialize)]
struct SetClaims {
    iss: String,
    iat: i64,
    #[allow(dead_code)]
    jti: String,
    sub_id: Value,
    events: HashMap<String, Value>,
    #[serde(default)]
    sub: Option<Value>,
    #[serde(default)]
    exp: Option<Value>,
}

/// Verifies `set` for a pool whose issuer is `issuer` and whose feed is `audience`, and reads
/// its effect.
pub fn verify(
    set: &str,
    keys: &KeySet,
    issuer: &str,
    audience: &str,
) -> Result<Effect, SetRejection> {
    let header =
        jsonwebtoken::decode_header(set).map_err(|_| SetRejection::Invalid("malformed header"))?;
    if header.typ.as_deref() != Some(TYP_SECEVENT) {
        return Err(SetRejection::Invalid("typ is not secevent+jwt"));
    }
    if header.alg != Algorithm::RS256 {
        return Err(SetRejection::Invalid("alg is not RS256"));
    }
    let kid = header.kid.ok_or(SetRejection::Invalid("no kid"))?;
    let key = keys.get(&kid).ok_or(SetRejection::UnknownKey)?;
    if key.alg != Alg::RS256 {
        return Err(SetRejection::Invalid("the key is not an RSA key"));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["iss", "aud"]);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    let claims = jsonwebtoken::decode::<SetClaims>(set, &key.key, &validation)
        .map_err(|_| SetRejection::Invalid("signature or claims"))?
        .claims;
    if claims.iss != issuer {
        return Err(SetRejection::Invalid("iss"));
    }
    if claims.sub.is_some() || claims.exp.is_some() {
        return Err(SetRejection::Invalid("a SET carries neither sub nor exp"));
    }
    let mut events = claims.events.into_iter();
    let (Some((uri, payload)), None) = (events.next(), events.next()) else {
        return Err(SetRejection::Invalid("not exactly one event"));
    };
    let at = payload
        .get("event_timestamp")
        .and_then(Value::as_i64)
        .unwrap_or(claims.iat);
    effect(&uri, &claims.sub_id, issuer, at)
}

/// The effect of event `uri` about `subject` at `at`.
fn effect(uri: &str, subject: &Value, issuer: &str, at: i64) -> Result<Effect, SetRejection> {
    let kind = uri
        .strip_prefix(CAEP)
        .or_else(|| uri.strip_prefix(RISC))
        .unwrap_or(uri);
    let member = |name: &str, field: &str| -> Option<String> {
        subject.get(name)?.get(field)?.as_str().map(str::to_owned)
    };
    let complex = subject.get("format").and_then(Value::as_str) == Some("complex");
    let user = || -> Result<Option<String>, SetRejection> {
        match subject.get("user") {
            None => Ok(None),
            Some(u) if u.get("iss").and_then(Value::as_str) == Some(issuer) => {
                member("user", "sub")
                    .map(Some)
                    .ok_or(SetRejection::Invalid("user subject without sub"))
            }
            Some(_) => Err(SetRejection::Invalid("user subject of another issuer")),
        }
    };
    match kind {
        "session-revoked" | "account-disabled" | "account-purged" | "token-claims-change"
            if complex =>
        {
            if kind == "session-revoked"
                && let Some(sid) = member("session", "id")
            {
                return Ok(Effect::Session { sid, at });
            }
            if let Some(sub) = user()? {
                return Ok(Effect::User { sub, at });
            }
            if kind == "token-claims-change"
                && let Some(name) = member("group", "id")
            {
                return Ok(Effect::Group { name, at });
            }
            if kind == "session-revoked" && subject.get("tenant").is_some() {
                return Ok(Effect::Pool { at });
            }
            Err(SetRejection::Invalid("a subject this event cannot have"))
        }
        TOKEN_REVOKED => {
            if subject.get("format").and_then(Value::as_str) != Some("jwt_id")
                || subject.get("iss").and_then(Value::as_str) != Some(issuer)
            {
                return Err(SetRejection::Invalid(
                    "token-revoked needs a jwt_id subject",
                ));
            }
            let jti = subject
                .get("jti")
                .and_then(Value::as_str)
                .ok_or(SetRejection::Invalid("jwt_id subject without jti"))?;
            Ok(Effect::Token {
                jti: jti.to_owned(),
                at,
            })
        }
        "session-revoked" | "account-disabled" | "account-purged" | "token-claims-change" => {
            Err(SetRejection::Invalid("a subject this event cannot have"))
        }
        // account-enabled, credential-change and types unknown here refuse nothing.
        _ => Ok(Effect::Nothing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://gh.example/pools/acme";

    fn user() -> Value {
        json!({"format":"iss_sub","iss":ISS,"sub":"u1"})
    }
    fn tenant() -> Value {
        json!({"format":"opaque","id":"acme"})
    }

    #[test]
    fn each_event_means_what_the_contract_says() {
        let session = json!({"format":"complex","session":{"format":"opaque","id":"s1"},"user":user(),"tenant":tenant()});
        let only_user = json!({"format":"complex","user":user(),"tenant":tenant()});
        let only_tenant = json!({"format":"complex","tenant":tenant()});
        let group =
            json!({"format":"complex","group":{"format":"opaque","id":"staff"},"tenant":tenant()});
        let jwt = json!({"format":"jwt_id","iss":ISS,"jti":"j1"});
        let c = |t: &str| format!("{CAEP}{t}");
        let r = |t: &str| format!("{RISC}{t}");
        let cases = [
            (
                c("session-revoked"),
                &session,
                Effect::Session {
                    sid: "s1".into(),
                    at: 7,
                },
            ),
            (
                c("session-revoked"),
                &only_user,
                Effect::User {
                    sub: "u1".into(),
                    at: 7,
                },
            ),
            (c("session-revoked"), &only_tenant, Effect::Pool { at: 7 }),
            (
                r("account-disabled"),
                &only_user,
                Effect::User {
                    sub: "u1".into(),
                    at: 7,
                },
            ),
            (
                r("account-purged"),
                &only_user,
                Effect::User {
                    sub: "u1".into(),
                    at: 7,
                },
            ),
            (r("account-enabled"), &only_user, Effect::Nothing),
            (c("credential-change"), &only_user, Effect::Nothing),
            (
                c("token-claims-change"),
                &only_user,
                Effect::User {
                    sub: "u1".into(),
                    at: 7,
                },
            ),
            (
                c("token-claims-change"),
                &group,
                Effect::Group {
                    name: "staff".into(),
                    at: 7,
                },
            ),
            (
                TOKEN_REVOKED.to_owned(),
                &jwt,
                Effect::Token {
                    jti: "j1".into(),
                    at: 7,
                },
            ),
            ("urn:example:unknown".to_owned(), &jwt, Effect::Nothing),
        ];
        for (uri, subject, expected) in cases {
            assert_eq!(effect(&uri, subject, ISS, 7), Ok(expected), "{uri}");
        }
        // A disable without a user, a user of another issuer, a token of another issuer.
        assert!(effect(&r("account-disabled"), &only_tenant, ISS, 7).is_err());
        let foreign =
            json!({"format":"complex","user":{"format":"iss_sub","iss":"https://evil","sub":"u1"}});
        assert!(effect(&c("session-revoked"), &foreign, ISS, 7).is_err());
        let foreign_jwt = json!({"format":"jwt_id","iss":"https://evil","jti":"j1"});
        assert!(effect(TOKEN_REVOKED, &foreign_jwt, ISS, 7).is_err());
    }
}
