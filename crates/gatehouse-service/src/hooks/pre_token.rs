//! Pre Token Generation: the pool's hook sees each issuance (Cognito's V2 event for a user's
//! tokens, V3's `TokenGeneration_ClientCredentials` for a client's) and may add or change
//! claims of the access and ID tokens, and drop claims and scopes. It can never touch the
//! protected claims (`gatehouse_domain::hooks::PROTECTED_CLAIMS`: identity, audience,
//! lifetime, session, actor, grants); an attempt is ignored and audited as
//! `hook.claim_refused`. Scopes can be dropped, never added: a scope is a grant.

use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::hooks::{Trigger, is_protected_claim};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::user::User;
use serde_json::{Map, Value, json};

use super::{envelope, hook_failed, user_attributes};
use crate::audit::EventExt;
use crate::error::ServiceResult;
use crate::{Gatehouse, RequestMeta};

/// ID-token claims that take only simple values (Cognito's rule).
const SIMPLE_ID_CLAIMS: [&str; 4] = [
    "phone_number_verified",
    "email_verified",
    "updated_at",
    "address",
];

/// What a pre-token hook changes in one issuance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenOverrides {
    pub access_claims: Map<String, Value>,
    pub access_suppress: Vec<String>,
    pub scopes_suppress: Vec<String>,
    pub id_claims: Map<String, Value>,
    pub id_suppress: Vec<String>,
}

impl TokenOverrides {
    /// The claims the access token gains.
    pub fn access_extra(&self) -> Map<String, Value> {
        self.access_claims
            .iter()
            .filter(|(k, _)| !self.access_suppress.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// `scope` without the scopes the hook dropped.
    pub fn scope(&self, scope: Option<String>) -> Option<String> {
        scope.map(|s| {
            s.split(' ')
                .filter(|x| !x.is_empty() && !self.scopes_suppress.iter().any(|d| d == x))
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    /// Applies the ID-token part to an ID token's profile claims.
    pub fn apply_to_id(&self, profile: &mut Map<String, Value>) {
        for (k, v) in &self.id_claims {
            profile.insert(k.clone(), v.clone());
        }
        for k in &self.id_suppress {
            profile.remove(k);
        }
    }
}

/// Why tokens are minted, as a pre-token hook's `triggerSource` names it, and the request.
#[derive(Clone, Copy)]
pub(crate) struct TokenSource<'a> {
    pub trigger_source: &'static str,
    pub meta: &'a RequestMeta,
}

/// Who the tokens are for.
pub(crate) enum PreTokenSubject<'a> {
    User {
        user: &'a User,
        groups: &'a [String],
    },
    Client,
}

/// A hook's answer read into overrides, and the names it was refused.
fn read_overrides(response: &Map<String, Value>) -> Result<(TokenOverrides, Vec<String>), String> {
    let mut out = TokenOverrides::default();
    let mut refused = Vec::new();
    let object = |v: Option<&Value>, what: &str| -> Result<Map<String, Value>, String> {
        match v {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(_) => Err(format!("{what} must be an object")),
        }
    };
    let strings = |v: Option<&Value>, what: &str| -> Result<Vec<String>, String> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("{what} must list strings"))
                })
                .collect(),
            Some(_) => Err(format!("{what} must be an array")),
        }
    };
    let claims = |from: Map<String, Value>, id: bool, refused: &mut Vec<String>| {
        let mut kept = Map::new();
        for (k, v) in from {
            let complex = matches!(v, Value::Object(_) | Value::Array(_) | Value::Null);
            if is_protected_claim(&k) || (id && complex && SIMPLE_ID_CLAIMS.contains(&k.as_str())) {
                refused.push(k);
            } else {
                kept.insert(k, v);
            }
        }
        kept
    };
    let suppress = |from: Vec<String>, refused: &mut Vec<String>| -> Vec<String> {
        from.into_iter()
            .filter(|k| {
                let protected = is_protected_claim(k);
                if protected {
                    refused.push(k.clone());
                }
                !protected
            })
            .collect()
    };
    let details = object(
        response.get("claimsAndScopeOverrideDetails"),
        "claimsAndScopeOverrideDetails",
    )?;
    let id = object(details.get("idTokenGeneration"), "idTokenGeneration")?;
    let access = object(
        details.get("accessTokenGeneration"),
        "accessTokenGeneration",
    )?;
    out.id_claims = claims(
        object(id.get("claimsToAddOrOverride"), "claimsToAddOrOverride")?,
        true,
        &mut refused,
    );
    out.id_suppress = suppress(
        strings(id.get("claimsToSuppress"), "claimsToSuppress")?,
        &mut refused,
    );
    out.access_claims = claims(
        object(access.get("claimsToAddOrOverride"), "claimsToAddOrOverride")?,
        false,
        &mut refused,
    );
    out.access_suppress = suppress(
        strings(access.get("claimsToSuppress"), "claimsToSuppress")?,
        &mut refused,
    );
    out.scopes_suppress = strings(access.get("scopesToSuppress"), "scopesToSuppress")?;
    if !strings(access.get("scopesToAdd"), "scopesToAdd")?.is_empty() {
        refused.push("scope".to_owned());
    }
    if details
        .get("groupOverrideDetails")
        .is_some_and(|g| !g.is_null())
    {
        refused.push("groups".to_owned());
    }
    // V1's shape: claims of the ID token only.
    let v1 = object(
        response.get("claimsOverrideDetails"),
        "claimsOverrideDetails",
    )?;
    let v1_claims = claims(
        object(v1.get("claimsToAddOrOverride"), "claimsToAddOrOverride")?,
        true,
        &mut refused,
    );
    out.id_claims.extend(v1_claims);
    out.id_suppress.extend(suppress(
        strings(v1.get("claimsToSuppress"), "claimsToSuppress")?,
        &mut refused,
    ));
    if v1.get("groupOverrideDetails").is_some_and(|g| !g.is_null()) {
        refused.push("groups".to_owned());
    }
    refused.sort();
    refused.dedup();
    Ok((out, refused))
}

impl Gatehouse {
    /// Runs the pool's pre-token hook, if it has one, for tokens about to be minted.
    pub(crate) async fn pre_token(
        &self,
        pool: &Pool,
        trigger_source: &str,
        subject: PreTokenSubject<'_>,
        client_id: &str,
        scopes: &[String],
        meta: &RequestMeta,
    ) -> ServiceResult<Option<TokenOverrides>> {
        if !self.has_hook(pool, Trigger::PreTokenGeneration).await? {
            return Ok(None);
        }
        let (version, username, request) = match subject {
            PreTokenSubject::User { user, groups } => (
                "2",
                Some(user.username.to_string()),
                json!({
                    "userAttributes": user_attributes(user),
                    "groupConfiguration": {
                        "groupsToOverride": groups,
                        "iamRolesToOverride": [],
                        "preferredRole": null,
                    },
                    "scopes": scopes,
                    "clientMetadata": {},
                }),
            ),
            PreTokenSubject::Client => ("3", None, json!({"scopes": scopes, "clientMetadata": {}})),
        };
        let event = envelope(
            version,
            trigger_source,
            pool,
            username.as_deref(),
            Some(client_id),
            request,
        );
        let Some(response) = self
            .run_hook(pool, Trigger::PreTokenGeneration, &event, meta)
            .await?
        else {
            return Ok(None);
        };
        let (overrides, refused) = match read_overrides(&response) {
            Ok(read) => read,
            Err(detail) => {
                let event = self
                    .event(pool, AuditAction::HookFailed, None, meta)
                    .subject(Trigger::PreTokenGeneration.as_str())
                    .detail("reason", "bad_output")
                    .detail("detail", detail.as_str())
                    .denied();
                self.store.append_audit(&event).await?;
                return Err(hook_failed(Trigger::PreTokenGeneration, "bad_output"));
            }
        };
        if !refused.is_empty() {
            let mut event = self
                .event(pool, AuditAction::HookClaimRefused, None, meta)
                .subject(username.as_deref().unwrap_or(client_id))
                .detail("trigger", Trigger::PreTokenGeneration.as_str())
                .detail("claims", refused.join(" "))
                .denied();
            event.client_id = gatehouse_domain::ids::ClientId::parse(client_id).ok();
            self.store.append_audit(&event).await?;
        }
        Ok(Some(overrides))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(v: Value) -> (TokenOverrides, Vec<String>) {
        read_overrides(v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn protected_claims_are_refused_and_the_rest_kept() {
        let (o, refused) = read(json!({"claimsAndScopeOverrideDetails": {
            "accessTokenGeneration": {
                "claimsToAddOrOverride": {"tenant_tier": "gold", "sub": "someone-else",
                                          "act": {"sub": "x"}, "n": 3},
                "claimsToSuppress": ["tenant_tier", "iss"],
                "scopesToAdd": ["admin"],
                "scopesToSuppress": ["email"],
            },
            "idTokenGeneration": {
                "claimsToAddOrOverride": {"email_verified": {"x": 1}, "plan": ["a", "b"]},
                "claimsToSuppress": ["name", "aud"],
            },
            "groupOverrideDetails": {"groupsToOverride": ["admins"]},
        }}));
        assert_eq!(
            refused,
            [
                "act",
                "aud",
                "email_verified",
                "groups",
                "iss",
                "scope",
                "sub"
            ]
        );
        assert_eq!(
            o.access_extra(),
            json!({"n": 3}).as_object().unwrap().clone()
        );
        assert_eq!(
            o.scope(Some("openid email profile".into())).as_deref(),
            Some("openid profile")
        );
        let mut profile = json!({"name": "Ada", "email": "a@x"})
            .as_object()
            .unwrap()
            .clone();
        o.apply_to_id(&mut profile);
        assert_eq!(
            profile,
            json!({"email": "a@x", "plan": ["a", "b"]})
                .as_object()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn an_empty_answer_changes_nothing_and_nonsense_is_an_error() {
        let (o, refused) = read(json!({}));
        assert_eq!(o, TokenOverrides::default());
        assert!(refused.is_empty());
        let (o, _) = read(json!({"claimsAndScopeOverrideDetails": null}));
        assert_eq!(o, TokenOverrides::default());
        for bad in [
            json!({"claimsAndScopeOverrideDetails": "yes"}),
            json!({"claimsAndScopeOverrideDetails": {"accessTokenGeneration": []}}),
            json!({"claimsAndScopeOverrideDetails": {"accessTokenGeneration": {"claimsToSuppress": "sub"}}}),
            json!({"claimsAndScopeOverrideDetails": {"idTokenGeneration": {"claimsToSuppress": [1]}}}),
        ] {
            assert!(read_overrides(bad.as_object().unwrap()).is_err(), "{bad}");
        }
    }
}
