//! The client-credentials grant (RFC 6749 §4.4), with the pool's API as an RFC 8707 resource.
//!
//! Clients ask for scopes they hold (others are dropped, as the reference says) and may name
//! the pool's API, either as a scope (BriteCore's SDK asks for `https://{host}/api`, the way
//! Cognito names resource servers) or as a `resource` parameter. Naming it grants the client's
//! API permissions and makes the token's audience that identifier.

use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::client::GrantType;
use gatehouse_domain::permission::Scope;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::session::{Actor, ActorKind};

use crate::audit::EventExt;
use crate::error::{OAuthError, OAuthErrorCode, ServiceResult};
use crate::tokens::{ClientCredentials, IssuedToken, TokenSubject};
use crate::{Gatehouse, RequestMeta};

/// What a client-credentials request asks for: its `scope` parameter and its RFC 8707
/// `resource` parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScopeRequest<'a> {
    pub scope: Option<&'a str>,
    pub resources: &'a [String],
}

/// What a request is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub scopes: Vec<Scope>,
    /// The API identifier the client named, which becomes the token's `aud`.
    pub audience: Option<String>,
}

/// Decides what a client is granted. `api_resource` maps a requested identifier to the pool
/// API's canonical identifier, or `None` when it names no resource of the pool.
///
/// - No scope and no resource: every scope the client holds.
/// - A named resource: the client's API permissions, plus any other requested scope it holds.
/// - Otherwise the requested scopes the client holds; none of them is `invalid_scope`.
/// - A `resource` the pool does not serve, or two different resources, is `invalid_target`.
pub fn decide(
    client_scopes: &[Scope],
    request: ScopeRequest<'_>,
    api_resource: impl Fn(&str) -> Option<String>,
) -> Result<Grant, OAuthError> {
    let mut named: Vec<String> = Vec::new();
    for r in request.resources {
        let id = api_resource(r).ok_or_else(|| {
            OAuthError::new(
                OAuthErrorCode::InvalidTarget,
                format!("'{r}' is not a resource of this pool"),
            )
        })?;
        named.push(id);
    }
    let words: Vec<&str> = request
        .scope
        .unwrap_or_default()
        .split_ascii_whitespace()
        .collect();
    let mut wanted: Vec<&str> = Vec::new();
    for w in &words {
        match api_resource(w) {
            Some(id) => named.push(id),
            None => wanted.push(w),
        }
    }
    named.sort();
    named.dedup();
    if named.len() > 1 {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidTarget,
            "a token names one resource; these name several",
        ));
    }
    let audience = named.pop();
    let scopes: Vec<Scope> = client_scopes
        .iter()
        .filter(|s| {
            wanted.contains(&s.as_str())
                || (audience.is_some() && s.permission().is_some())
                || (audience.is_none() && words.is_empty())
        })
        .cloned()
        .collect();
    if scopes.is_empty() && audience.is_none() && !words.is_empty() {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidScope,
            "none of the requested scopes is known to this client",
        ));
    }
    Ok(Grant { scopes, audience })
}

impl Gatehouse {
    /// The client-credentials grant: authenticates the client, decides the scopes and the
    /// audience, and mints the token. Its `token.issued` event is written behind.
    pub async fn client_credentials_grant(
        &self,
        pool: &Pool,
        creds: &ClientCredentials,
        request: ScopeRequest<'_>,
        meta: &RequestMeta,
    ) -> ServiceResult<(IssuedToken, Grant)> {
        let client = self.authenticate_client(pool, creds).await?;
        if !client.grant_types.contains(&GrantType::ClientCredentials) {
            return Err(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                "the client may not use the client_credentials grant",
            )
            .into());
        }
        let grant = decide(&client.scopes, request, |r| self.api_resource(pool, r))?;
        let scopes: Vec<String> = grant.scopes.iter().map(|s| s.as_str().to_owned()).collect();
        let overrides = self
            .pre_token(
                pool,
                "TokenGeneration_ClientCredentials",
                crate::hooks::PreTokenSubject::Client,
                client.client_id.as_str(),
                &scopes,
                meta,
            )
            .await?;
        let issued = self
            .mint_access_token_with(
                pool,
                TokenSubject::Client {
                    client: &client,
                    scopes: &grant.scopes,
                    audience: grant.audience.as_deref(),
                },
                pool.settings.access_token_ttl_secs,
                overrides,
            )
            .await?;
        let mut event = self
            .event(pool, AuditAction::TokenIssued, None, meta)
            .subject(&client.client_id)
            .detail("grant_type", "client_credentials")
            .detail("jti", &issued.claims.jti)
            .actor(Actor {
                kind: ActorKind::Client,
                id: client.client_id.to_string(),
                username: None,
                pool: pool.slug.clone(),
                client_id: Some(client.client_id.clone()),
            });
        if let Some(aud) = &grant.audience {
            event = event.detail("resource", aud);
        }
        event.client_id = Some(client.client_id.clone());
        self.audit_sink.record(event).await;
        Ok((issued, grant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const API: &str = "https://acme.test/api";

    fn scopes(names: &[&str]) -> Vec<Scope> {
        names.iter().map(|s| Scope::parse(s).unwrap()).collect()
    }

    fn resolve(r: &str) -> Option<String> {
        match r {
            "https://acme.test/api" | "HTTPS://ACME.TEST/api" => Some(API.to_owned()),
            "http://acme.test/api" => Some("http://acme.test/api".to_owned()),
            _ => None,
        }
    }

    fn decide_for(scope: Option<&str>, resources: &[&str]) -> Result<Grant, OAuthError> {
        let held = scopes(&["user:Impersonate", "user:GetUser", "openid"]);
        let resources: Vec<String> = resources.iter().map(|r| (*r).to_owned()).collect();
        decide(
            &held,
            ScopeRequest {
                scope,
                resources: &resources,
            },
            resolve,
        )
    }

    #[test]
    fn nothing_asked_grants_every_held_scope() {
        let g = decide_for(None, &[]).unwrap();
        assert_eq!(g.scopes.len(), 3);
        assert_eq!(g.audience, None);
        assert_eq!(decide_for(Some("  "), &[]).unwrap().scopes.len(), 3);
    }

    #[test]
    fn the_api_as_a_scope_grants_the_api_permissions_and_names_the_audience() {
        let g = decide_for(Some(API), &[]).unwrap();
        assert_eq!(g.scopes, scopes(&["user:Impersonate", "user:GetUser"]));
        assert_eq!(g.audience.as_deref(), Some(API));
        // Canonical form, and other held scopes alongside.
        let g = decide_for(Some("HTTPS://ACME.TEST/api openid unknown"), &[]).unwrap();
        assert_eq!(
            g.scopes,
            scopes(&["user:Impersonate", "user:GetUser", "openid"])
        );
        assert_eq!(g.audience.as_deref(), Some(API));
    }

    #[test]
    fn the_api_as_a_resource_parameter_grants_the_same() {
        let g = decide_for(None, &[API]).unwrap();
        assert_eq!(g.scopes, scopes(&["user:Impersonate", "user:GetUser"]));
        assert_eq!(g.audience.as_deref(), Some(API));
        let g = decide_for(Some(API), &[API]).unwrap();
        assert_eq!(g.audience.as_deref(), Some(API));
    }

    #[test]
    fn unknown_scopes_are_dropped_but_all_unknown_is_invalid_scope() {
        let g = decide_for(Some("user:GetUser user:DeleteUser"), &[]).unwrap();
        assert_eq!(g.scopes, scopes(&["user:GetUser"]));
        let e = decide_for(Some("https://other.test/api user:DeleteUser"), &[]).unwrap_err();
        assert_eq!(e.code, OAuthErrorCode::InvalidScope);
    }

    #[test]
    fn foreign_or_several_resources_are_invalid_target() {
        let e = decide_for(None, &["https://other.test/api"]).unwrap_err();
        assert_eq!(e.code, OAuthErrorCode::InvalidTarget);
        let e = decide_for(Some(API), &["http://acme.test/api"]).unwrap_err();
        assert_eq!(e.code, OAuthErrorCode::InvalidTarget);
    }

    #[test]
    fn a_client_without_api_permissions_gets_an_empty_token_for_the_api() {
        let resources = [API.to_owned()];
        let g = decide(
            &scopes(&["openid"]),
            ScopeRequest {
                scope: None,
                resources: &resources,
            },
            resolve,
        )
        .unwrap();
        assert!(g.scopes.is_empty());
        assert_eq!(g.audience.as_deref(), Some(API));
    }
}
