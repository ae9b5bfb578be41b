//! The relying-party side of federation: signing a user in through an upstream OpenID Connect
//! provider (any issuer, or the Google preset) or an OAuth 2.0 social provider (the Facebook
//! and Login with Amazon presets, whose profile APIs say who the user is). This module knows
//! the protocol only: no pool, no storage. The caller keeps what a sign-in must remember
//! between the redirect and the callback ([`SignInSecrets`]), and turns the
//! [`UpstreamIdentity`] it gets into a user.
//!
//! One sign-in: [`UpstreamClient::endpoints`] (discovery, cached), [`authorization_url`]
//! (code flow, PKCE S256 always, `nonce` for OpenID kinds), the user's browser goes there and
//! comes back to `{base}/oauth2/idpresponse`, [`read_callback`] checks its `state` (and the
//! RFC 9207 `iss`) and gives the code, and [`UpstreamClient::complete`] exchanges the code and
//! proves who signed in: the ID token checked against the issuer's JWKS, or the profile API.
//! Every call goes through [`Outbound`]: timeouts, no redirect followed, no loopback, private
//! or link-local address unless `outbound.allow` lists it.

mod cache;
mod error;
mod id_token;
mod social;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_crypto::secret::{Secret, b64url, constant_time_eq, random_token, sha256};
use serde_json::{Map, Value};
use url::Url;

pub use error::{IdTokenError, Step, UpstreamError};

use crate::outbound::{Outbound, OutboundError, OutboundReply};

/// The largest answer read from an upstream (discovery, JWKS, token, userinfo, profile).
const ANSWER_LIMIT: usize = 256 * 1024;

/// Google's issuer; its ID tokens may also say it without the scheme.
const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const GOOGLE_ISSUER_BARE: &str = "accounts.google.com";
const FACEBOOK_AUTHORIZATION: &str = "https://www.facebook.com/v19.0/dialog/oauth";
const FACEBOOK_TOKEN: &str = "https://graph.facebook.com/v19.0/oauth/access_token";
const FACEBOOK_PROFILE: &str =
    "https://graph.facebook.com/v19.0/me?fields=id,name,email,first_name,last_name";
const AMAZON_AUTHORIZATION: &str = "https://www.amazon.com/ap/oa";
const AMAZON_TOKEN: &str = "https://api.amazon.com/auth/o2/token";
const AMAZON_PROFILE: &str = "https://api.amazon.com/user/profile";

/// What kind of provider an upstream is: any OpenID Connect issuer (found by discovery),
/// Google (OpenID Connect, issuer `https://accounts.google.com`), Facebook Login (OAuth 2.0
/// and the Graph API's `/me`), Login with Amazon (OAuth 2.0 and `/user/profile`).
pub use gatehouse_domain::federation::OAuthKind as UpstreamKind;

/// Endpoints that replace what discovery (or a preset) says: a provider that publishes no
/// discovery document, or a test that points a preset at a local server. For Facebook and
/// Amazon, `userinfo` is their profile API.
pub use gatehouse_domain::federation::EndpointOverrides;

/// One upstream provider as configured for a pool.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub kind: UpstreamKind,
    /// The issuer, for OpenID kinds (Google's is preset).
    pub issuer: Option<String>,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    pub endpoints: EndpointOverrides,
}

impl UpstreamConfig {
    /// An OpenID Connect issuer, with the default scopes.
    pub fn oidc(issuer: impl Into<String>, client_id: impl Into<String>, secret: Secret) -> Self {
        Self {
            issuer: Some(issuer.into()),
            ..Self::preset(UpstreamKind::Oidc, client_id, secret)
        }
    }

    /// A preset (Google, Facebook, Amazon) with its issuer and default scopes; for
    /// [`UpstreamKind::Oidc`] the issuer is still to be set.
    pub fn preset(kind: UpstreamKind, client_id: impl Into<String>, secret: Secret) -> Self {
        Self {
            kind,
            issuer: (kind == UpstreamKind::Google).then(|| GOOGLE_ISSUER.to_owned()),
            client_id: client_id.into(),
            client_secret: secret,
            scopes: kind
                .default_scopes()
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            endpoints: EndpointOverrides::default(),
        }
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic, id and secret form-encoded first (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form.
    ClientSecretPost,
}

/// Where a provider's endpoints are, discovered or preset, overrides applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The issuer (OpenID kinds).
    pub issuer: Option<String>,
    pub authorization: Url,
    pub token: Url,
    /// Userinfo (OpenID), or the profile API (Facebook, Amazon).
    pub userinfo: Option<Url>,
    pub jwks_uri: Option<Url>,
    pub end_session: Option<Url>,
    pub client_auth: ClientAuth,
    /// The provider sends `iss` with its authorization responses (RFC 9207), so a response
    /// without it is refused.
    pub response_iss: bool,
}

/// Who signed in upstream. `Debug` leaves the ID token out.
#[derive(Clone, PartialEq)]
pub struct UpstreamIdentity {
    /// The provider's identifier of the user: the ID token's `sub`, Facebook's `id`,
    /// Amazon's `user_id`.
    pub subject: String,
    /// What the provider says of the user: the ID token's claims (those about the user and the
    /// authentication; not `iss`, `aud`, `exp`, `iat`, `nbf`, `nonce`, `azp`, `jti`,
    /// `at_hash`, `c_hash`) with userinfo's beneath them, or the profile API's answer.
    pub claims: Map<String, Value>,
    /// The ID token, kept as the `id_token_hint` of upstream logout.
    pub id_token: Option<String>,
}

impl std::fmt::Debug for UpstreamIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamIdentity")
            .field("subject", &self.subject)
            .field("claims", &self.claims)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// What one sign-in must remember from the redirect to the callback: kept by the caller (in
/// the sealed state it carries, or its storage), never shown to anyone but the provider.
#[derive(Debug, Clone)]
pub struct SignInSecrets {
    pub state: Secret,
    pub nonce: Secret,
    pub code_verifier: Secret,
}

impl SignInSecrets {
    /// Fresh 256-bit random values.
    pub fn generate() -> Self {
        Self {
            state: random_token(),
            nonce: random_token(),
            code_verifier: random_token(),
        }
    }

    /// The PKCE S256 challenge of the verifier.
    pub fn code_challenge(&self) -> String {
        pkce_s256(self.code_verifier.expose())
    }
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_s256(verifier: &str) -> String {
    b64url(&sha256(verifier.as_bytes()))
}

/// The URL the browser is sent to: the authorization request of the code flow with PKCE S256,
/// and a `nonce` for OpenID kinds.
pub fn authorization_url(
    endpoints: &Endpoints,
    config: &UpstreamConfig,
    redirect_uri: &str,
    state: &str,
    nonce: &str,
    code_challenge_s256: &str,
) -> Url {
    let mut url = endpoints.authorization.clone();
    let scope = scope_of(config);
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scope)
            .append_pair("state", state)
            .append_pair("code_challenge", code_challenge_s256)
            .append_pair("code_challenge_method", "S256");
        if config.kind.is_openid() {
            query.append_pair("nonce", nonce);
        }
    }
    url
}

fn scope_of(config: &UpstreamConfig) -> String {
    let mut scopes: Vec<&str> = Vec::new();
    if config.kind.is_openid() {
        scopes.push("openid");
    }
    let configured: Vec<&str> = if config.scopes.is_empty() {
        config.kind.default_scopes().to_vec()
    } else {
        config.scopes.iter().map(String::as_str).collect()
    };
    for scope in configured {
        if !scope.is_empty() && !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes.join(" ")
}

/// Reads the provider's answer at the redirect URI (the query's pairs): the `state` first
/// (compared in constant time), then the RFC 9207 `iss` when the provider sends one or says it
/// does, then an error the provider reports, then the code.
pub fn read_callback<'a>(
    endpoints: &Endpoints,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    expected_state: &str,
) -> Result<String, UpstreamError> {
    let (mut state, mut code, mut iss, mut error) = (None, None, None, None);
    for (name, value) in params {
        let slot = match name {
            "state" => &mut state,
            "code" => &mut code,
            "iss" => &mut iss,
            "error" => &mut error,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(UpstreamError::Callback("a parameter is repeated"));
        }
    }
    match state {
        Some(state) if constant_time_eq(state.as_bytes(), expected_state.as_bytes()) => {}
        _ => return Err(UpstreamError::StateMismatch),
    }
    match (iss, endpoints.issuer.as_deref()) {
        (Some(got), Some(issuer)) if got != issuer => {
            return Err(UpstreamError::WrongResponseIssuer);
        }
        (None, Some(_)) if endpoints.response_iss => {
            return Err(UpstreamError::WrongResponseIssuer);
        }
        _ => {}
    }
    if let Some(error) = error {
        return Err(UpstreamError::Denied(
            error::error_code(error).unwrap_or_else(|| "an unreadable error".to_owned()),
        ));
    }
    match code {
        Some(code) if !code.is_empty() => Ok(code.to_owned()),
        _ => Err(UpstreamError::Callback("it carries no code")),
    }
}

/// Where to send the browser to end the upstream session too (OpenID Connect RP-initiated
/// logout), when the provider offers it.
pub fn end_session_url(
    endpoints: &Endpoints,
    id_token_hint: Option<&str>,
    post_logout_redirect_uri: Option<&str>,
    state: Option<&str>,
) -> Option<Url> {
    let mut url = endpoints.end_session.clone()?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(hint) = id_token_hint {
            query.append_pair("id_token_hint", hint);
        }
        if let Some(uri) = post_logout_redirect_uri {
            query.append_pair("post_logout_redirect_uri", uri);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    Some(url)
}

/// The client every upstream sign-in goes through; cheap to clone (its caches are shared).
#[derive(Clone)]
pub struct UpstreamClient {
    outbound: Outbound,
    caches: Arc<cache::Caches>,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient").finish_non_exhaustive()
    }
}

impl UpstreamClient {
    pub fn new(outbound: Outbound) -> Self {
        Self {
            outbound,
            caches: Arc::new(cache::Caches::default()),
        }
    }

    /// The provider's endpoints: the preset's for Facebook and Amazon; for OpenID kinds,
    /// discovery (`{issuer}/.well-known/openid-configuration`, whose `issuer` must be the
    /// configured one exactly; cached per issuer for a few minutes), skipped when the
    /// overrides name the authorization, token and JWKS endpoints. Overrides win.
    pub async fn endpoints(&self, config: &UpstreamConfig) -> Result<Endpoints, UpstreamError> {
        let o = &config.endpoints;
        let browser = |v: &str| browser_url(&self.outbound, v);
        let called = |step: Step, v: &str| called_url(&self.outbound, step, v);
        let opt = |v: &Option<String>, f: &dyn Fn(&str) -> Result<Url, UpstreamError>| {
            v.as_deref().map(f).transpose()
        };
        let profile_step = if config.kind.is_openid() {
            Step::Userinfo
        } else {
            Step::Profile
        };
        match config.kind {
            UpstreamKind::Facebook | UpstreamKind::Amazon => {
                let (authorization, token, profile) = if config.kind == UpstreamKind::Facebook {
                    (FACEBOOK_AUTHORIZATION, FACEBOOK_TOKEN, FACEBOOK_PROFILE)
                } else {
                    (AMAZON_AUTHORIZATION, AMAZON_TOKEN, AMAZON_PROFILE)
                };
                Ok(Endpoints {
                    issuer: None,
                    authorization: browser(o.authorization.as_deref().unwrap_or(authorization))?,
                    token: called(Step::Token, o.token.as_deref().unwrap_or(token))?,
                    userinfo: Some(called(
                        profile_step,
                        o.userinfo.as_deref().unwrap_or(profile),
                    )?),
                    jwks_uri: None,
                    end_session: opt(&o.end_session, &browser)?,
                    client_auth: ClientAuth::ClientSecretPost,
                    response_iss: false,
                })
            }
            UpstreamKind::Oidc | UpstreamKind::Google => {
                let issuer = config
                    .issuer
                    .clone()
                    .ok_or_else(|| UpstreamError::Config("no issuer is set".to_owned()))?;
                if let (Some(a), Some(t), Some(j)) = (&o.authorization, &o.token, &o.jwks_uri) {
                    return Ok(Endpoints {
                        issuer: Some(issuer),
                        authorization: browser(a)?,
                        token: called(Step::Token, t)?,
                        userinfo: opt(&o.userinfo, &|u| called(profile_step, u))?,
                        jwks_uri: Some(called(Step::Jwks, j)?),
                        end_session: opt(&o.end_session, &browser)?,
                        client_auth: ClientAuth::ClientSecretBasic,
                        response_iss: false,
                    });
                }
                let found = self.discover(&issuer).await?;
                Ok(Endpoints {
                    issuer: Some(issuer),
                    authorization: match &o.authorization {
                        Some(a) => browser(a)?,
                        None => found.authorization.clone(),
                    },
                    token: match &o.token {
                        Some(t) => called(Step::Token, t)?,
                        None => found.token.clone(),
                    },
                    userinfo: match &o.userinfo {
                        Some(u) => Some(called(profile_step, u)?),
                        None => found.userinfo.clone(),
                    },
                    jwks_uri: Some(match &o.jwks_uri {
                        Some(j) => called(Step::Jwks, j)?,
                        None => found.jwks_uri.clone(),
                    }),
                    end_session: match &o.end_session {
                        Some(e) => Some(browser(e)?),
                        None => found.end_session.clone(),
                    },
                    client_auth: found.client_auth,
                    response_iss: found.response_iss,
                })
            }
        }
    }

    /// Exchanges the code and proves who signed in: for OpenID kinds the ID token (signature
    /// against the issuer's JWKS, `iss`, `aud`/`azp`, `exp`/`iat`/`nbf`, `nonce`, `at_hash`)
    /// and then userinfo beneath its claims when both name the same `sub`; for Facebook and
    /// Amazon their profile API. `now` is the current time in Unix seconds.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(skip_all, fields(kind = config.kind.as_str()))]
    pub async fn complete(
        &self,
        endpoints: &Endpoints,
        config: &UpstreamConfig,
        redirect_uri: &str,
        code: &str,
        code_verifier: &str,
        expected_nonce: &str,
        now: i64,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        let tokens = self
            .token_request(endpoints, config, redirect_uri, code, code_verifier)
            .await?;
        match config.kind {
            UpstreamKind::Facebook => {
                social::facebook_profile(self, endpoints, config, &tokens.access_token).await
            }
            UpstreamKind::Amazon => {
                social::amazon_profile(self, endpoints, &tokens.access_token).await
            }
            UpstreamKind::Oidc | UpstreamKind::Google => {
                let id_token = tokens.id_token.ok_or(UpstreamError::Malformed {
                    step: Step::Token,
                    reason: "the answer carries no id_token",
                })?;
                let issuer = endpoints
                    .issuer
                    .as_deref()
                    .ok_or_else(|| UpstreamError::Config("no issuer is set".to_owned()))?;
                let jwks_uri = endpoints.jwks_uri.as_ref().ok_or_else(|| {
                    UpstreamError::Config("the provider publishes no JWKS".to_owned())
                })?;
                let expect = id_token::Expect {
                    issuer,
                    also_issuer: (config.kind == UpstreamKind::Google && issuer == GOOGLE_ISSUER)
                        .then_some(GOOGLE_ISSUER_BARE),
                    client_id: &config.client_id,
                    nonce: expected_nonce,
                    access_token: &tokens.access_token,
                    now,
                };
                let mut claims = self.check_id_token(jwks_uri, &id_token, &expect).await?;
                let subject = match claims.get("sub") {
                    Some(Value::String(s)) => s.clone(),
                    _ => return Err(IdTokenError::MissingClaim("sub").into()),
                };
                if let Some(userinfo) = &endpoints.userinfo {
                    let authorization = bearer(&tokens.access_token);
                    let info = self
                        .get_json(
                            Step::Userinfo,
                            userinfo.as_str(),
                            &[("authorization", &authorization)],
                        )
                        .await?;
                    match info.get("sub") {
                        Some(Value::String(sub)) if *sub == subject => {
                            for (name, value) in info {
                                claims.entry(name).or_insert(value);
                            }
                        }
                        _ => tracing::warn!(
                            "userinfo names another subject than the ID token; its claims are \
                             not used"
                        ),
                    }
                }
                Ok(UpstreamIdentity {
                    subject,
                    claims,
                    id_token: Some(id_token),
                })
            }
        }
    }

    async fn token_request(
        &self,
        endpoints: &Endpoints,
        config: &UpstreamConfig,
        redirect_uri: &str,
        code: &str,
        code_verifier: &str,
    ) -> Result<TokenAnswer, UpstreamError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ];
        let basic;
        let mut headers = vec![("accept", "application/json")];
        match endpoints.client_auth {
            ClientAuth::ClientSecretBasic => {
                let encode = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                basic = format!(
                    "Basic {}",
                    STANDARD.encode(format!(
                        "{}:{}",
                        encode(&config.client_id),
                        encode(config.client_secret.expose())
                    ))
                );
                headers.push(("authorization", basic.as_str()));
            }
            ClientAuth::ClientSecretPost => {
                form.push(("client_id", &config.client_id));
                form.push(("client_secret", config.client_secret.expose()));
            }
        }
        let reply = self
            .outbound
            .post_form(endpoints.token.as_str(), &headers, &form, ANSWER_LIMIT)
            .await
            .map_err(|e| outbound_error(Step::Token, e))?;
        let answer = json_answer(Step::Token, reply)?;
        let malformed = |reason| UpstreamError::Malformed {
            step: Step::Token,
            reason,
        };
        let access_token = match answer.get("access_token") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            _ => return Err(malformed("the answer carries no access_token")),
        };
        match answer.get("token_type") {
            Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
            _ => return Err(malformed("the token type is not Bearer")),
        }
        let id_token = match answer.get("id_token") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t.clone()),
            Some(_) => return Err(malformed("the id_token is not a string")),
        };
        Ok(TokenAnswer {
            access_token,
            id_token,
        })
    }

    /// GETs a JSON object.
    async fn get_json(
        &self,
        step: Step,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Map<String, Value>, UpstreamError> {
        let mut all = vec![("accept", "application/json")];
        all.extend_from_slice(headers);
        let reply = self
            .outbound
            .get(url, &all, ANSWER_LIMIT)
            .await
            .map_err(|e| outbound_error(step, e))?;
        json_answer(step, reply)
    }
}

struct TokenAnswer {
    access_token: String,
    id_token: Option<String>,
}

fn bearer(access_token: &str) -> String {
    format!("Bearer {access_token}")
}

fn outbound_error(step: Step, error: OutboundError) -> UpstreamError {
    match error {
        OutboundError::Refused(reason) => UpstreamError::Refused { step, reason },
        OutboundError::Transport(reason) => UpstreamError::Unreachable { step, reason },
    }
}

/// A 2xx answer's JSON object; a redirect or an error status is an error (naming the OAuth
/// error code the body gives, if any).
fn json_answer(step: Step, reply: OutboundReply) -> Result<Map<String, Value>, UpstreamError> {
    let parsed = serde_json::from_slice::<Map<String, Value>>(&reply.body);
    match reply.status {
        200..=299 => {}
        status @ 300..=399 => return Err(UpstreamError::Redirected { step, status }),
        status => {
            let error = parsed
                .ok()
                .and_then(|body| body.get("error").and_then(Value::as_str).map(str::to_owned))
                .and_then(|code| error::error_code(&code));
            return Err(UpstreamError::Status {
                step,
                status,
                error,
            });
        }
    }
    if reply
        .content_type
        .as_deref()
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/jwt"))
    {
        return Err(UpstreamError::Malformed {
            step,
            reason: "signed (JWT) answers are not supported",
        });
    }
    parsed.map_err(|_| UpstreamError::Malformed {
        step,
        reason: "the answer is not a JSON object",
    })
}

/// An endpoint the browser is sent to: absolute https (http while Gatehouse is on http), no
/// user information, no fragment.
fn browser_url(outbound: &Outbound, value: &str) -> Result<Url, UpstreamError> {
    let url = Url::parse(value)
        .map_err(|_| UpstreamError::Config(format!("'{value}' is not an absolute URL")))?;
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => outbound.allows_plain_http(),
        _ => false,
    };
    if !scheme_ok
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.fragment().is_some()
    {
        return Err(UpstreamError::Config(format!(
            "'{value}' is not an https URL without user information or fragment"
        )));
    }
    Ok(url)
}

/// An endpoint Gatehouse calls: as the outbound policy allows (checked again at each call).
fn called_url(outbound: &Outbound, step: Step, value: &str) -> Result<Url, UpstreamError> {
    outbound
        .check_target(value)
        .map_err(|e| outbound_error(step, e))
}

#[cfg(test)]
mod tests;
