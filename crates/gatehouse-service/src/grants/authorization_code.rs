//! The authorization code grant (RFC 6749 §4.1) with PKCE (RFC 7636), and the refresh token
//! grant that continues it (§6): the authorization request's checks, the code, its exchange
//! for tokens, and refresh tokens that rotate on every use.
//!
//! A code is exchanged once: the exchange takes it by one compare-and-set and starts an
//! authorization (a session of kind `Authorized`, a child of the browser session), whose
//! access tokens name it and whose refresh tokens are its family. Presenting the code again
//! ends that authorization, and presenting a used refresh token ends its family: a stolen
//! copy, used before or after the real client, gets the real client's tokens refused too.

use std::sync::Arc;

use gatehouse_crypto::secret::{Secret, constant_time_eq, random_token, sha256};
use gatehouse_domain::audit::AuditAction;
pub use gatehouse_domain::authorization::AuthorizationRequest;
use gatehouse_domain::authorization::{
    AuthorizationCode, CODE_TTL_SECS, CodeTaken, RefreshTaken, RefreshToken,
};
use gatehouse_domain::client::{AppClient, GrantType};
use gatehouse_domain::consent::Consent;
use gatehouse_domain::ids::{ClientId, SessionId};
use gatehouse_domain::permission::Scope;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::session::{Session, SessionKind};
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::txn::{PoolWrite, SessionsToEnd};
use gatehouse_domain::user::User;

use crate::audit::EventExt;
use crate::browser::BrowserSession;
use crate::error::{OAuthError, OAuthErrorCode, ServiceError, ServiceResult};
use crate::hooks::TokenSource;
use crate::id_tokens::IdTokenFacts;
use crate::tokens::{ClientCredentials, IssuedToken};
use crate::{Gatehouse, RequestMeta};

/// How long an authorization and its refresh tokens last (Cognito's default).
pub const REFRESH_TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;

/// The parameters of an authorization request, as received.
#[derive(Debug, Clone, Default)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub response_mode: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

/// An error answered to the client at its redirect URI (RFC 6749 §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectError {
    pub redirect_uri: String,
    pub error: &'static str,
    pub description: String,
    pub state: Option<String>,
}

/// Why an authorization request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeRefusal {
    /// The client or its redirect URI is unknown: said on a page, never redirected to.
    Page(String),
    /// The client and redirect URI are known: answered there.
    Redirect(RedirectError),
}

/// What to do with a checked request, given the browser's session.
#[derive(Debug)]
pub enum Decision {
    /// The user is signed in enough: issue the code.
    Issue,
    /// Show the sign-in page.
    SignIn,
    /// `prompt=none` but the user must sign in.
    LoginRequired,
}

/// What the user answered on the consent page, when it was shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentAnswer {
    /// The page was not shown (yet): issue only if a remembered consent covers the request.
    NotAsked,
    /// The user pressed **Allow** for this request's scopes.
    Allowed,
}

/// What [`Gatehouse::issue_code`] did.
#[derive(Debug)]
pub enum CodeIssue {
    /// The code, for the client's redirect URI.
    Code(Secret),
    /// Nothing: the user must allow the client first.
    ConsentRequired(ConsentPrompt),
}

/// What the consent page asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentPrompt {
    pub client_name: String,
    /// The scopes of the request, all of which the user allows or denies at once.
    pub scopes: Vec<String>,
}

/// Tokens from an exchanged code or a refresh token.
#[derive(Debug)]
pub struct CodeGrant {
    pub access: IssuedToken,
    pub refresh: Option<Secret>,
    pub id_token: Option<Secret>,
    pub scopes: Vec<String>,
}

fn redirect(
    req: (&str, &Option<String>),
    error: &'static str,
    description: impl Into<String>,
) -> AuthorizeRefusal {
    AuthorizeRefusal::Redirect(RedirectError {
        redirect_uri: req.0.to_owned(),
        error,
        description: description.into(),
        state: req.1.clone(),
    })
}

fn invalid_grant(description: &str) -> ServiceError {
    ServiceError::OAuth(OAuthError::new(OAuthErrorCode::InvalidGrant, description))
}

/// A PKCE code challenge or verifier: 43 to 128 unreserved characters (RFC 7636 §4.1).
fn is_pkce_value(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of a verifier: BASE64URL(SHA-256(verifier)).
pub fn s256(verifier: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()))
}

impl Gatehouse {
    /// Checks an authorization request against the client it names (RFC 6749 §4.1.1, OIDC
    /// Core §3.1.2.1, RFC 7636): exact redirect URI, the code flow, PKCE S256 (required of
    /// public clients), scopes the client may have, `prompt` and `max_age`.
    pub async fn check_authorization_request(
        &self,
        pool: &Pool,
        p: &AuthorizeParams,
    ) -> Result<(AuthorizationRequest, Arc<AppClient>), AuthorizeRefusal> {
        let page = |m: &str| AuthorizeRefusal::Page(m.to_owned());
        let client_id = p
            .client_id
            .as_deref()
            .ok_or_else(|| page("The request names no application (client_id)."))?;
        let client = match ClientId::parse(client_id) {
            Ok(id) => self.client(pool.id, &id).await.ok().flatten(),
            Err(_) => None,
        }
        .ok_or_else(|| page("The application that sent you here is not known to this pool."))?;
        let redirect_uri = p
            .redirect_uri
            .as_deref()
            .ok_or_else(|| page("The request names no redirect_uri."))?;
        // Exact string comparison: no prefix, no normalisation (SPEC §9).
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            return Err(page(
                "The redirect_uri is not registered for this application.",
            ));
        }
        let at = (redirect_uri, &p.state);
        if p.request.is_some() {
            return Err(redirect(
                at,
                "request_not_supported",
                "request objects are not supported",
            ));
        }
        if p.request_uri.is_some() {
            return Err(redirect(
                at,
                "request_uri_not_supported",
                "request_uri is not supported",
            ));
        }
        if p.response_mode.as_deref().is_some_and(|m| m != "query") {
            return Err(redirect(
                at,
                "invalid_request",
                "only response_mode=query is supported",
            ));
        }
        if p.response_type.as_deref() != Some("code") {
            return Err(redirect(
                at,
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        if !client.grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(redirect(
                at,
                "unauthorized_client",
                "this application may not use the authorization code flow",
            ));
        }
        let public = client.secret_sha256.is_none();
        let code_challenge = match (&p.code_challenge, p.code_challenge_method.as_deref()) {
            (None, None) if public => {
                return Err(redirect(
                    at,
                    "invalid_request",
                    "PKCE is required: send code_challenge with code_challenge_method=S256",
                ));
            }
            (None, None) => None,
            (None, Some(_)) => {
                return Err(redirect(at, "invalid_request", "code_challenge is missing"));
            }
            // Only S256: `plain` (or none named, which means plain) would let a code be
            // exchanged by whoever saw the request.
            (Some(_), m) if m != Some("S256") => {
                return Err(redirect(
                    at,
                    "invalid_request",
                    "code_challenge_method must be S256",
                ));
            }
            (Some(c), _) if !is_pkce_value(c) => {
                return Err(redirect(
                    at,
                    "invalid_request",
                    "code_challenge is malformed",
                ));
            }
            (Some(c), _) => Some(c.clone()),
        };
        let mut scopes = Vec::new();
        let requested: Vec<&str> = p
            .scope
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .collect();
        for s in &requested {
            // The standard OpenID scopes go to every client of the code flow; others only
            // when the client holds them. Others are dropped, not refused (SPEC §5).
            let allowed = Scope::OIDC.contains(s) || client.scopes.iter().any(|c| c.as_str() == *s);
            if allowed && !scopes.iter().any(|g: &String| g == s) {
                scopes.push((*s).to_owned());
            }
        }
        if !requested.is_empty() && scopes.is_empty() {
            return Err(redirect(
                at,
                "invalid_scope",
                "no requested scope is available",
            ));
        }
        let prompt: Vec<String> = p
            .prompt
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = prompt
            .iter()
            .find(|x| !matches!(x.as_str(), "none" | "login" | "consent" | "select_account"))
        {
            return Err(redirect(
                at,
                "invalid_request",
                format!("unknown prompt value '{bad}'"),
            ));
        }
        if prompt.iter().any(|x| x == "none") && prompt.len() > 1 {
            return Err(redirect(
                at,
                "invalid_request",
                "prompt=none cannot be combined with other values",
            ));
        }
        let max_age = match p.max_age.as_deref() {
            None => None,
            Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                redirect(
                    at,
                    "invalid_request",
                    "max_age must be a non-negative integer",
                )
            })?),
        };
        for (name, value) in [
            ("state", &p.state),
            ("nonce", &p.nonce),
            ("login_hint", &p.login_hint),
        ] {
            if value.as_ref().is_some_and(|v| v.len() > 2048) {
                return Err(redirect(
                    at,
                    "invalid_request",
                    format!("{name} is longer than 2048 characters"),
                ));
            }
        }
        Ok((
            AuthorizationRequest {
                client_id: client.client_id.to_string(),
                redirect_uri: redirect_uri.to_owned(),
                scopes,
                state: p.state.clone(),
                nonce: p.nonce.clone(),
                code_challenge,
                prompt,
                max_age,
                login_hint: p.login_hint.clone(),
            },
            client,
        ))
    }

    /// Whether the browser's session answers the request, or the user must sign in.
    pub fn decide(&self, req: &AuthorizationRequest, browser: Option<&BrowserSession>) -> Decision {
        let fresh_enough = |b: &BrowserSession| {
            req.max_age
                .is_none_or(|max| self.now().as_secs() - b.auth_time().as_secs() <= max)
        };
        match browser {
            Some(b) if !req.prompts("login") && fresh_enough(b) => Decision::Issue,
            _ if req.prompts("none") => Decision::LoginRequired,
            _ => Decision::SignIn,
        }
    }

    /// Issues a code for a checked request in a browser session, unless the client is a
    /// third party the user has not allowed the requested scopes (or `prompt=consent` asks
    /// again): then the user must be asked first. The client and the user's consent are read
    /// in the transaction that stores the code, so a client deleted or changed while the user
    /// signed in gets nothing, and a consent revoked meanwhile is not used. `Allowed` records
    /// the consent, with the scopes allowed before, in that same transaction.
    pub async fn issue_code(
        &self,
        pool: &Pool,
        req: &AuthorizationRequest,
        browser: &BrowserSession,
        answer: ConsentAnswer,
        meta: &RequestMeta,
    ) -> ServiceResult<CodeIssue> {
        let client_id = ClientId::parse(&req.client_id)?;
        let now = self.now();
        let mut w = self.store.write(pool.id).await?;
        let client = w
            .client(&client_id)
            .await?
            .filter(|c| c.redirect_uris.contains(&req.redirect_uri))
            .ok_or(ServiceError::NotFound("app client"))?;
        if client.third_party {
            let given = w.consent(browser.user.id, &client.client_id).await?;
            match answer {
                ConsentAnswer::NotAsked => {
                    let covered = given.as_ref().is_some_and(|c| c.covers(&req.scopes));
                    if !covered || req.prompts("consent") {
                        return Ok(CodeIssue::ConsentRequired(ConsentPrompt {
                            client_name: client.name.clone(),
                            scopes: req.scopes.clone(),
                        }));
                    }
                }
                ConsentAnswer::Allowed => {
                    let mut consent = given.unwrap_or_else(|| Consent {
                        pool: pool.id,
                        user_id: browser.user.id,
                        client_id: client.client_id.clone(),
                        scopes: Vec::new(),
                        granted_at: now,
                        updated_at: now,
                    });
                    consent.allow(&req.scopes, now);
                    w.put_consent(&consent).await?;
                    let mut event = self
                        .event(pool, AuditAction::ConsentGranted, None, meta)
                        .actor(crate::browser::user_actor(pool, &browser.user))
                        .subject(&browser.user.username)
                        .detail("scopes", consent.scopes.join(" "));
                    event.client_id = Some(client.client_id.clone());
                    w.audit(&event).await?;
                }
            }
        }
        let code = random_token();
        let record = AuthorizationCode {
            pool: pool.id,
            code_sha256: sha256(code.expose().as_bytes()),
            client_id: client.client_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            user_id: browser.user.id,
            browser_session: browser.session.id,
            scopes: req.scopes.clone(),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            auth_time: browser.auth_time(),
            created_at: now,
            expires_at: now.plus_secs(CODE_TTL_SECS),
        };
        w.put_authorization_code(&record).await?;
        w.commit().await?;
        Ok(CodeIssue::Code(code))
    }

    /// The client at the token endpoint: a confidential one by its secret, a public one by
    /// its id alone (token endpoint authentication method `none`).
    async fn code_flow_client(
        &self,
        pool: &Pool,
        creds: &ClientCredentials,
    ) -> ServiceResult<Arc<AppClient>> {
        let client = if creds.secret.is_some() {
            self.authenticate_client(pool, creds).await?
        } else {
            let public = match ClientId::parse(&creds.client_id) {
                Ok(id) => self.client(pool.id, &id).await?,
                Err(_) => None,
            };
            public
                .filter(|c| c.secret_sha256.is_none())
                .ok_or_else(|| {
                    ServiceError::OAuth(OAuthError::new(
                        OAuthErrorCode::InvalidClient,
                        "client authentication failed",
                    ))
                })?
        };
        Ok(client)
    }

    /// Exchanges an authorization code (RFC 6749 §4.1.3) for an access token, an ID token
    /// when `openid` was granted, and a refresh token when the client holds that grant.
    pub async fn exchange_code(
        &self,
        pool: &Pool,
        creds: &ClientCredentials,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        meta: &RequestMeta,
    ) -> ServiceResult<CodeGrant> {
        let client = self.code_flow_client(pool, creds).await?;
        if !client.grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(ServiceError::OAuth(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                "this client may not use the authorization code grant",
            )));
        }
        let now = self.now();
        let code_sha256 = sha256(code.as_bytes());
        let mut w = self.store.write(pool.id).await?;
        let code = match w.take_authorization_code(&code_sha256, now).await? {
            CodeTaken::Fresh(code) => code,
            CodeTaken::Unknown => return Err(invalid_grant("invalid authorization code")),
            CodeTaken::Replayed { issued } => {
                // A second exchange: whoever holds the code is not alone. End what the first
                // exchange started, then refuse.
                if let Some(issued) = issued {
                    self.end_family(
                        w.as_mut(),
                        pool,
                        issued,
                        "authorization code replayed",
                        meta,
                    )
                    .await?;
                }
                w.commit().await?;
                return Err(invalid_grant("the authorization code was already used"));
            }
        };
        if code.expires_at <= now
            || code.client_id != client.client_id
            || redirect_uri != Some(code.redirect_uri.as_str())
        {
            // Used up all the same (committed): a code is presented once.
            w.commit().await?;
            return Err(invalid_grant(
                "the authorization code is expired, or was issued to another client or redirect_uri",
            ));
        }
        let pkce_ok = match (&code.code_challenge, code_verifier) {
            (Some(challenge), Some(v)) => {
                is_pkce_value(v) && constant_time_eq(s256(v).as_bytes(), challenge.as_bytes())
            }
            (Some(_), None) => false,
            // A verifier for a code issued without a challenge is a downgrade attempt.
            (None, Some(_)) => false,
            (None, None) => true,
        };
        if !pkce_ok {
            w.commit().await?;
            return Err(invalid_grant("the PKCE code_verifier does not match"));
        }
        let browser = w
            .session(code.browser_session)
            .await?
            .filter(|s| s.is_active_at(now));
        let user = w
            .user_by_id(code.user_id)
            .await?
            .filter(|u| u.enabled.is_enabled());
        let (Some(browser), Some(user)) = (browser, user) else {
            w.commit().await?;
            return Err(invalid_grant("the sign-in that issued this code has ended"));
        };
        let with_refresh = client.grant_types.contains(&GrantType::RefreshToken);
        let ttl = pool.settings.access_token_ttl_secs;
        let session = Session {
            id: SessionId::new_ordered(),
            pool: pool.id,
            user_id: user.id,
            username: user.username.clone(),
            client_id: Some(client.client_id.clone()),
            kind: SessionKind::Authorized {
                browser: code.browser_session,
                staff: browser.staff().cloned(),
            },
            created_at: now,
            expires_at: now.plus_secs(if with_refresh {
                REFRESH_TOKEN_TTL_SECS
            } else {
                i64::from(ttl)
            }),
            revoked_at: None,
        };
        w.create_session(&session).await?;
        w.set_code_issued_session(&code_sha256, session.id).await?;
        let refresh = if with_refresh {
            Some(
                self.put_refresh(w.as_mut(), pool, &session, &code.scopes, code.auth_time)
                    .await?,
            )
        } else {
            None
        };
        let event = self
            .event(pool, AuditAction::TokenIssued, None, meta)
            .subject(&user.username)
            .detail("grant", "authorization_code")
            .detail("session_id", session.id);
        let mut event = event;
        event.client_id = Some(client.client_id.clone());
        w.audit(&event).await?;
        self.finish_grant(
            w,
            pool,
            &client,
            &user,
            &session,
            code.scopes,
            refresh,
            IdTokenFacts {
                nonce: code.nonce,
                auth_time: code.auth_time,
                browser_session: code.browser_session,
            },
            TokenSource {
                trigger_source: "TokenGeneration_HostedAuth",
                meta,
            },
        )
        .await
    }

    /// Exchanges a refresh token (RFC 6749 §6) for new tokens and the family's next refresh
    /// token. A used one ends its family.
    pub async fn refresh_grant(
        &self,
        pool: &Pool,
        creds: &ClientCredentials,
        token: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<CodeGrant> {
        let client = self.code_flow_client(pool, creds).await?;
        self.refresh_for_client(pool, &client, token, meta).await
    }

    /// The refresh of an authenticated client, shared by the token endpoint and the API's
    /// `REFRESH_TOKEN` flow. The family is an authorization of the code flow or an API
    /// sign-in's session; the token is taken by one compare-and-set, a used one ends its
    /// family, and one of another client is refused without touching anything.
    pub(crate) async fn refresh_for_client(
        &self,
        pool: &Pool,
        client: &AppClient,
        token: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<CodeGrant> {
        if !client.grant_types.contains(&GrantType::RefreshToken) {
            return Err(ServiceError::OAuth(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                "this client may not use refresh tokens",
            )));
        }
        let now = self.now();
        let mut w = self.store.write(pool.id).await?;
        let taken = match w.take_refresh_token(&sha256(token.as_bytes()), now).await? {
            RefreshTaken::Fresh(t) => t,
            RefreshTaken::Unknown => return Err(invalid_grant("invalid refresh token")),
            RefreshTaken::Reused(t) => {
                if t.client_id == client.client_id {
                    self.end_family(w.as_mut(), pool, t.session, "refresh token reused", meta)
                        .await?;
                    w.commit().await?;
                }
                return Err(invalid_grant(
                    "the refresh token was already used; its authorization has ended",
                ));
            }
        };
        if taken.client_id != client.client_id {
            return Err(invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        let session = w
            .session(taken.session)
            .await?
            .filter(|s| s.is_active_at(now) && taken.expires_at > now);
        let user = w
            .user_by_id(taken.user_id)
            .await?
            .filter(|u| u.enabled.is_enabled());
        let (Some(session), Some(user)) = (session, user) else {
            w.commit().await?;
            return Err(invalid_grant("the authorization has ended"));
        };
        // The `sid` of an ID token: the browser session of a code flow's authorization, the
        // session itself for an API sign-in.
        let sid = match session.kind {
            SessionKind::Authorized { browser, .. } => browser,
            SessionKind::SignIn => session.id,
            _ => return Err(invalid_grant("invalid refresh token")),
        };
        let refresh = self
            .put_refresh(w.as_mut(), pool, &session, &taken.scopes, taken.auth_time)
            .await?;
        self.finish_grant(
            w,
            pool,
            client,
            &user,
            &session,
            taken.scopes,
            Some(refresh),
            IdTokenFacts {
                nonce: None,
                auth_time: taken.auth_time,
                browser_session: sid,
            },
            TokenSource {
                trigger_source: "TokenGeneration_RefreshTokens",
                meta,
            },
        )
        .await
    }

    /// Adds the next refresh token of `session`'s family, valid while the session lasts.
    pub(crate) async fn put_refresh(
        &self,
        w: &mut dyn PoolWrite,
        pool: &Pool,
        session: &Session,
        scopes: &[String],
        auth_time: Timestamp,
    ) -> ServiceResult<Secret> {
        let secret = random_token();
        let now = self.now();
        w.put_refresh_token(&RefreshToken {
            pool: pool.id,
            token_sha256: sha256(secret.expose().as_bytes()),
            session: session.id,
            client_id: session
                .client_id
                .clone()
                .ok_or_else(|| ServiceError::internal("an authorization without its client"))?,
            user_id: session.user_id,
            scopes: scopes.to_vec(),
            auth_time,
            created_at: now,
            expires_at: session.expires_at,
        })
        .await?;
        Ok(secret)
    }

    /// Ends an authorization (and so its tokens and refresh tokens), with its audit event.
    pub(crate) async fn end_family(
        &self,
        w: &mut dyn PoolWrite,
        pool: &Pool,
        session: SessionId,
        why: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        let cause = crate::security_events::Cause::new(
            gatehouse_domain::security_event::InitiatingEntity::Policy,
            why,
        );
        for ended in self
            .end_sessions_and_tell(w, &SessionsToEnd::One(session), &cause)
            .await?
        {
            let mut event = self
                .event(pool, AuditAction::SessionRevoked, None, meta)
                .subject(&ended.username)
                .detail("session_id", ended.id)
                .detail("via", why)
                .denied();
            event.client_id = ended.client_id.clone();
            w.audit(&event).await?;
        }
        Ok(())
    }

    /// Commits the grant's transaction, then mints its tokens.
    #[allow(clippy::too_many_arguments)]
    async fn finish_grant(
        &self,
        w: Box<dyn PoolWrite>,
        pool: &Pool,
        client: &AppClient,
        user: &User,
        session: &Session,
        scopes: Vec<String>,
        refresh: Option<Secret>,
        id: IdTokenFacts,
        source: TokenSource<'_>,
    ) -> ServiceResult<CodeGrant> {
        let access = self
            .commit_and_mint(
                w,
                pool,
                &client.client_id,
                user,
                session,
                // An API sign-in's family grants no scope, and its tokens name none.
                (!scopes.is_empty()).then(|| scopes.join(" ")),
                pool.settings.access_token_ttl_secs,
                source,
            )
            .await?;
        let id_token = if scopes.iter().any(|s| s == "openid") {
            Some(
                self.mint_id_token(pool, client, user, &scopes, &access, id)
                    .await?,
            )
        } else {
            None
        };
        Ok(CodeGrant {
            access,
            refresh,
            id_token,
            scopes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn pkce_values_are_43_to_128_unreserved_characters() {
        assert!(is_pkce_value(&"a".repeat(43)));
        assert!(is_pkce_value(&"A-._~9".repeat(20)));
        assert!(!is_pkce_value(&"a".repeat(42)));
        assert!(!is_pkce_value(&"a".repeat(129)));
        assert!(!is_pkce_value(&format!("{}+", "a".repeat(43))));
    }
}
