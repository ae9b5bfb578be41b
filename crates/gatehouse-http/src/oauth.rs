//! The OAuth endpoints: token (client credentials, token exchange), introspection (RFC 7662),
//! revocation (RFC 7009) and userinfo. Errors follow RFC 6749 §5.2 and are never cached.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_crypto::secret::Secret;
use gatehouse_domain::client::GrantType;
use gatehouse_domain::pool::Pool;
use gatehouse_service::grants::authorization_code::CodeGrant;
use gatehouse_service::grants::client_credentials::ScopeRequest;
use gatehouse_service::grants::token_exchange::{TOKEN_TYPE_ACCESS_TOKEN, TokenExchange};
use gatehouse_service::tokens::{AccessClaims, ClientAuthMethod, ClientCredentials};
use gatehouse_service::{OAuthError, OAuthErrorCode, RequestMeta};
use serde::Serialize;

use crate::AppState;
use crate::error::{ApiError, OAuthResponseError, no_store};
use crate::extract::{Authenticated, Meta, PoolCtx, basic_credentials};

/// The form of every OAuth request; unknown parameters are ignored (RFC 6749 §3.2).
#[derive(Debug, Default)]
pub struct OAuthForm {
    grant_type: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    token: Option<String>,
    actor_token: Option<String>,
    actor_token_type: Option<String>,
    subject_token: Option<String>,
    subject_token_type: Option<String>,
    requested_token_type: Option<String>,
    /// Gatehouse extension for token exchange: why the impersonation is needed.
    reason: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    /// RFC 8707 resource indicators, the one parameter that may repeat.
    resources: Vec<String>,
}

/// An `application/x-www-form-urlencoded` body parsed into [`OAuthForm`], with OAuth errors.
pub struct Form(OAuthForm);

impl FromRequest<AppState> for Form {
    type Rejection = OAuthResponseError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, OAuthResponseError> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(OAuthResponseError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(|_| OAuthResponseError::invalid_request("the body could not be read"))?;
        // One pass over the pairs. Repeated parameters are an error (RFC 6749 §3.2), except
        // `resource` (RFC 8707 §2); unknown ones are ignored.
        let mut form = OAuthForm::default();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in form_urlencoded::parse(&bytes) {
            if k == "resource" {
                form.resources.push(v.into_owned());
                continue;
            }
            if !seen.insert(k.clone()) {
                return Err(OAuthResponseError::invalid_request(format!(
                    "the parameter {k} is repeated"
                )));
            }
            if let Some(slot) = form.slot(&k) {
                *slot = Some(v.into_owned());
            }
        }
        Ok(Form(form))
    }
}

impl OAuthForm {
    /// Where the value of the parameter `name` goes, if it is one of ours.
    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "grant_type" => &mut self.grant_type,
            "scope" => &mut self.scope,
            "client_id" => &mut self.client_id,
            "client_secret" => &mut self.client_secret,
            "token" => &mut self.token,
            "actor_token" => &mut self.actor_token,
            "actor_token_type" => &mut self.actor_token_type,
            "subject_token" => &mut self.subject_token,
            "subject_token_type" => &mut self.subject_token_type,
            "requested_token_type" => &mut self.requested_token_type,
            "reason" => &mut self.reason,
            "code" => &mut self.code,
            "redirect_uri" => &mut self.redirect_uri,
            "code_verifier" => &mut self.code_verifier,
            "refresh_token" => &mut self.refresh_token,
            _ => return None,
        })
    }
}

fn form_decode(s: &str) -> Option<String> {
    form_urlencoded::parse(format!("v={s}").as_bytes())
        .last()
        .map(|(_, v)| v.into_owned())
}

/// Client credentials from HTTP Basic or the body. RFC 6749 §2.3.1 has Basic credentials
/// form-encoded first; many clients skip that, so the value as sent is kept as well.
fn client_credentials(
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<ClientCredentials, OAuthResponseError> {
    let basic = basic_credentials(headers);
    match (basic, &form.client_secret) {
        (Some(_), Some(_)) => Err(OAuthResponseError::invalid_request(
            "use one client authentication method, not two",
        )),
        (Some(b64), None) => {
            let invalid = || OAuthResponseError {
                error: OAuthError::new(
                    OAuthErrorCode::InvalidClient,
                    "malformed Basic credentials",
                ),
                retry_after_secs: None,
                basic_challenge: true,
                internal: false,
            };
            let raw = STANDARD.decode(b64.as_bytes()).map_err(|_| invalid())?;
            let raw = String::from_utf8(raw).map_err(|_| invalid())?;
            let (raw_id, raw_secret) = raw.split_once(':').ok_or_else(invalid)?;
            let decoded = form_decode(raw_id).zip(form_decode(raw_secret));
            let as_sent = match &decoded {
                Some((id, secret)) if id == raw_id && secret == raw_secret => None,
                _ => Some((raw_id.to_owned(), Secret::new(raw_secret))),
            };
            // Not form-encoded after all (a lone `%`): the value as sent is the only reading.
            let (id, secret) =
                decoded.unwrap_or_else(|| (raw_id.to_owned(), raw_secret.to_owned()));
            if form
                .client_id
                .as_deref()
                .is_some_and(|f| f != id && f != raw_id)
            {
                return Err(OAuthResponseError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            Ok(ClientCredentials {
                client_id: id,
                secret: Some(Secret::new(secret)),
                method: ClientAuthMethod::Basic,
                as_sent,
            })
        }
        (None, secret) => {
            let id = form.client_id.clone().ok_or_else(|| OAuthResponseError {
                error: OAuthError::new(
                    OAuthErrorCode::InvalidClient,
                    "client authentication is required",
                ),
                retry_after_secs: None,
                basic_challenge: false,
                internal: false,
            })?;
            Ok(ClientCredentials {
                client_id: id,
                secret: secret.clone().map(Secret::new),
                method: ClientAuthMethod::Post,
                as_sent: None,
            })
        }
    }
}

/// Marks an `invalid_client` answer to a Basic attempt so it carries the Basic challenge.
fn with_method(e: impl Into<OAuthResponseError>, creds: &ClientCredentials) -> OAuthResponseError {
    let mut e = e.into();
    e.basic_challenge = creds.method == ClientAuthMethod::Basic;
    e
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    impersonation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

fn oauth_json<T: Serialize>(body: T) -> Response {
    let mut res = Json(body).into_response();
    no_store(&mut res);
    res
}

pub async fn token(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    headers: HeaderMap,
    Form(form): Form,
) -> Result<Response, OAuthResponseError> {
    let grant = form
        .grant_type
        .as_deref()
        .ok_or_else(|| OAuthResponseError::invalid_request("grant_type is required"))?;
    let creds = client_credentials(&headers, &form)?;
    match GrantType::parse(grant) {
        Ok(GrantType::ClientCredentials) => {
            let request = ScopeRequest {
                scope: form.scope.as_deref(),
                resources: &form.resources,
            };
            let (issued, grant) = state
                .gh
                .client_credentials_grant(&pool, &creds, request, &meta)
                .await
                .map_err(|e| with_method(e, &creds))?;
            Ok(oauth_json(TokenResponse {
                access_token: issued.token.expose().to_owned(),
                token_type: "Bearer",
                expires_in: issued.expires_in,
                scope: Some(
                    grant
                        .scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                issued_token_type: None,
                impersonation_id: None,
                refresh_token: None,
                id_token: None,
            }))
        }
        Ok(GrantType::TokenExchange) => token_exchange(&state, &pool, &creds, form, &meta).await,
        Ok(GrantType::AuthorizationCode) => {
            let code = form
                .code
                .as_deref()
                .ok_or_else(|| OAuthResponseError::invalid_request("code is required"))?;
            let grant = state
                .gh
                .exchange_code(
                    &pool,
                    &creds,
                    code,
                    form.redirect_uri.as_deref(),
                    form.code_verifier.as_deref(),
                    &meta,
                )
                .await
                .map_err(|e| with_method(e, &creds))?;
            Ok(code_grant_response(grant))
        }
        Ok(GrantType::RefreshToken) => {
            let token = form
                .refresh_token
                .as_deref()
                .ok_or_else(|| OAuthResponseError::invalid_request("refresh_token is required"))?;
            let grant = state
                .gh
                .refresh_grant(&pool, &creds, token, &meta)
                .await
                .map_err(|e| with_method(e, &creds))?;
            Ok(code_grant_response(grant))
        }
        Err(_) => Err(OAuthError::new(
            OAuthErrorCode::UnsupportedGrantType,
            format!("unknown grant_type '{grant}'"),
        )
        .into()),
    }
}

fn code_grant_response(grant: CodeGrant) -> Response {
    oauth_json(TokenResponse {
        access_token: grant.access.token.expose().to_owned(),
        token_type: "Bearer",
        expires_in: grant.access.expires_in,
        scope: Some(grant.scopes.join(" ")),
        issued_token_type: None,
        impersonation_id: None,
        refresh_token: grant.refresh.map(|r| r.expose().to_owned()),
        id_token: grant.id_token.map(|t| t.expose().to_owned()),
    })
}

/// RFC 8693 token exchange, run by the service: the handler only hands over the parameters.
async fn token_exchange(
    state: &AppState,
    pool: &Arc<Pool>,
    creds: &ClientCredentials,
    form: OAuthForm,
    meta: &RequestMeta,
) -> Result<Response, OAuthResponseError> {
    let request = TokenExchange {
        actor_token: form.actor_token.map(Secret::new),
        actor_token_type: form.actor_token_type,
        subject_token: form.subject_token,
        subject_token_type: form.subject_token_type,
        requested_token_type: form.requested_token_type,
        reason: form.reason,
    };
    let grant = state
        .gh
        .exchange_token(pool, creds, request, meta)
        .await
        .map_err(|e| with_method(e, creds))?;
    Ok(oauth_json(TokenResponse {
        access_token: grant.token.expose().to_owned(),
        token_type: "Bearer",
        expires_in: grant.expires_in,
        scope: None,
        issued_token_type: Some(TOKEN_TYPE_ACCESS_TOKEN),
        impersonation_id: Some(grant.impersonation_id.to_string()),
        refresh_token: None,
        id_token: None,
    }))
}

#[derive(Serialize)]
struct Introspection {
    active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    claims: Option<AccessClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
}

pub async fn introspect(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    headers: HeaderMap,
    Form(form): Form,
) -> Result<Response, OAuthResponseError> {
    let creds = client_credentials(&headers, &form)?;
    let token = form
        .token
        .as_deref()
        .ok_or_else(|| OAuthResponseError::invalid_request("token is required"))?;
    let claims = state
        .gh
        .introspect(&pool, &creds, token)
        .await
        .map_err(|e| with_method(e, &creds))?;
    Ok(oauth_json(Introspection {
        active: claims.is_some(),
        token_type: claims.as_ref().map(|_| "Bearer"),
        claims,
    }))
}

pub async fn revoke(
    State(state): State<AppState>,
    PoolCtx(pool): PoolCtx,
    Meta(meta): Meta,
    headers: HeaderMap,
    Form(form): Form,
) -> Result<Response, OAuthResponseError> {
    let creds = client_credentials(&headers, &form)?;
    let token = form
        .token
        .as_deref()
        .ok_or_else(|| OAuthResponseError::invalid_request("token is required"))?;
    state
        .gh
        .revoke(&pool, &creds, token, &meta)
        .await
        .map_err(|e| with_method(e, &creds))?;
    let mut res = ().into_response();
    no_store(&mut res);
    Ok(res)
}

/// OIDC userinfo: `sub` and the claims the token's scopes release. An ordinary API, so
/// impersonated tokens work here as the user's own.
pub async fn userinfo(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Response, ApiError> {
    Ok(oauth_json(state.gh.userinfo(&principal).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(raw));
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn basic_credentials_are_read_form_decoded_and_as_sent() {
        // RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
        let c = client_credentials(&basic("my%20client:a%2Bb+c"), &OAuthForm::default()).unwrap();
        assert_eq!(c.client_id, "my client");
        assert_eq!(c.secret.as_ref().unwrap().expose(), "a+b c");
        let (id, secret) = c.as_sent.unwrap();
        assert_eq!((id.as_str(), secret.expose()), ("my%20client", "a%2Bb+c"));

        // A client that skips the encoding still gets its secret read as sent.
        let c = client_credentials(&basic("id:s3cr+t/=="), &OAuthForm::default()).unwrap();
        assert_eq!(c.as_sent.unwrap().1.expose(), "s3cr+t/==");

        // Nothing to decode: one reading only.
        let c = client_credentials(&basic("id:plain-secret_1"), &OAuthForm::default()).unwrap();
        assert_eq!(c.secret.unwrap().expose(), "plain-secret_1");
        assert!(c.as_sent.is_none());

        // A form client_id may match either reading, and nothing else.
        let form = OAuthForm {
            client_id: Some("my%20client".to_owned()),
            ..OAuthForm::default()
        };
        assert!(client_credentials(&basic("my%20client:x"), &form).is_ok());
        let form = OAuthForm {
            client_id: Some("other".to_owned()),
            ..OAuthForm::default()
        };
        assert!(client_credentials(&basic("my%20client:x"), &form).is_err());
        assert!(client_credentials(&basic("no-colon"), &OAuthForm::default()).is_err());
    }
}
