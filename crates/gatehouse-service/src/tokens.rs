//! Access tokens: the claims, the one minting path, client authentication, bearer
//! authentication, introspection (RFC 7662) and revocation (RFC 7009). The grants that mint
//! them live in [`crate::grants`].

use gatehouse_crypto::jws::{self, Expect, JwsError, TYP_ACCESS_TOKEN};
use gatehouse_crypto::secret::{Secret, constant_time_eq, random_token, sha256};
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::client::AppClient;
use gatehouse_domain::group::Group;
use gatehouse_domain::ids::{ClientId, PoolSlug, SessionId, UserId, Username};
use gatehouse_domain::permission::{PermissionSet, Scope};
use gatehouse_domain::pool::{Pool, StaffAccess};
use gatehouse_domain::session::{Actor, ActorKind, RevokedToken};
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::txn::SessionsToEnd;
use gatehouse_domain::user::User;
use serde::{Deserialize, Serialize};

use crate::audit::EventExt;
use crate::error::{OAuthError, OAuthErrorCode, ServiceError, ServiceResult};
use crate::principal::{Subject, TokenFacts};
use crate::{Gatehouse, Principal, RequestMeta};

/// The `act` claim (RFC 8693 §4.1): who really acts behind an impersonated token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActClaim {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub pool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl ActClaim {
    pub fn to_actor(&self) -> Actor {
        let kind = if self.username.is_some() {
            ActorKind::User
        } else {
            ActorKind::Client
        };
        Actor {
            kind,
            id: self.sub.clone(),
            username: self.username.clone(),
            pool: PoolSlug::parse(&self.pool).unwrap_or_else(|_| PoolSlug::staff()),
            client_id: self
                .client_id
                .as_deref()
                .and_then(|c| ClientId::parse(c).ok()),
        }
    }
}

/// One upstream identity the user signed in with, in the shape of Cognito's `identities`
/// claim. For a staff member signed in with the staff account: provider `staff`, the staff
/// pool's issuer, and the staff user's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityClaim {
    pub user_id: String,
    pub provider_name: String,
    pub provider_type: String,
    #[serde(default)]
    pub issuer: Option<String>,
    /// `"true"`: Cognito writes booleans here as strings.
    pub primary: String,
    /// When the identity was linked, in milliseconds since the epoch, as a string (Cognito's
    /// shape); absent for the staff identity, which is not a stored link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_created: Option<String>,
}

/// The provider name of the staff pool among a client pool's upstream identities.
pub const STAFF_PROVIDER: &str = "staff";

impl IdentityClaim {
    /// The staff member `actor` of the staff pool with this issuer.
    pub fn staff(actor: &Actor, staff_issuer: String) -> Self {
        Self {
            user_id: actor.id.clone(),
            provider_name: STAFF_PROVIDER.to_owned(),
            provider_type: "Staff".to_owned(),
            issuer: Some(staff_issuer),
            primary: "true".to_owned(),
            date_created: None,
        }
    }

    pub fn is_staff(&self) -> bool {
        self.provider_name == STAFF_PROVIDER
    }
}

/// Claims of a Gatehouse access token (RFC 9068 plus Gatehouse's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    pub token_use: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<ActClaim>,
    /// The upstream identities of the user: the staff member of a staff sign-in, and the
    /// identities linked to the user (Cognito's `identities`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identities: Option<Vec<IdentityClaim>>,
}

/// What a minted token is for; everything else in the claims follows from it.
#[derive(Debug, Clone)]
pub enum TokenSubject<'a> {
    Client {
        client: &'a AppClient,
        scopes: &'a [Scope],
        /// The resource the token is for; the pool's issuer when none was named.
        audience: Option<&'a str>,
    },
    User {
        user: &'a User,
        groups: Vec<String>,
        sid: SessionId,
        client_id: Option<ClientId>,
        act: Option<ActClaim>,
        /// The scopes granted, for a token of an authorization (the code flow).
        scope: Option<String>,
        /// The staff member who signed in with the staff account, for a session started so.
        staff: Option<&'a Actor>,
        /// The upstream identities linked to the user.
        linked: Vec<IdentityClaim>,
    },
}

/// A minted access token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: Secret,
    pub claims: AccessClaims,
    pub expires_in: u32,
    /// What the pool's pre-token hook changed in this issuance: the access token carries it
    /// already; an ID token minted beside it applies its ID-token part.
    pub overrides: Option<std::sync::Arc<crate::hooks::TokenOverrides>>,
}

/// How a client authenticated at an OAuth endpoint.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<Secret>,
    pub method: ClientAuthMethod,
    /// Basic credentials exactly as sent, when form-decoding them (RFC 6749 §2.3.1) changed
    /// them: some clients, BriteCore's SDK among them, do not form-encode first.
    pub as_sent: Option<(String, Secret)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    Basic,
    Post,
}

/// A verified, unexpired, unrevoked access token of a pool.
#[derive(Debug, Clone)]
pub struct ValidToken {
    pub claims: AccessClaims,
    /// The pool that issued it (the called pool, or `staff`).
    pub issuer_pool: std::sync::Arc<Pool>,
}

/// Why a token is not valid. Shown to clients only as "invalid token" with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    #[error("the token is malformed or its signature is invalid")]
    Signature,
    #[error("the token was not issued by this pool")]
    ForeignIssuer,
    #[error("the token has expired")]
    Expired,
    #[error("the token has been revoked")]
    Revoked,
    #[error("the token's user no longer exists or is disabled")]
    UserGone,
    #[error("the token's client no longer exists")]
    ClientGone,
}

pub fn hash_client_secret(secret: &Secret) -> [u8; 32] {
    sha256(secret.expose().as_bytes())
}

impl Gatehouse {
    /// The one minting path: every access token Gatehouse issues is made here.
    pub async fn mint_access_token(
        &self,
        pool: &Pool,
        subject: TokenSubject<'_>,
        lifetime_secs: u32,
    ) -> ServiceResult<IssuedToken> {
        self.mint_access_token_with(pool, subject, lifetime_secs, None)
            .await
    }

    /// [`Gatehouse::mint_access_token`] with what a pre-token hook changed: claims added
    /// (never a protected one: they were refused when the answer was read) and scopes
    /// dropped.
    pub(crate) async fn mint_access_token_with(
        &self,
        pool: &Pool,
        subject: TokenSubject<'_>,
        lifetime_secs: u32,
        overrides: Option<crate::hooks::TokenOverrides>,
    ) -> ServiceResult<IssuedToken> {
        let keys = self.pool_keys(pool).await?;
        let now = self.now();
        let issuer = self.issuer(pool);
        let base = AccessClaims {
            aud: issuer.clone(),
            iss: issuer,
            sub: String::new(),
            exp: now.plus_secs(i64::from(lifetime_secs)).as_secs(),
            iat: now.as_secs(),
            jti: random_token().expose().to_owned(),
            client_id: None,
            scope: None,
            sid: None,
            username: None,
            groups: None,
            roles: None,
            token_use: "access".to_owned(),
            act: None,
            identities: None,
        };
        let claims = match subject {
            TokenSubject::Client {
                client,
                scopes,
                audience,
            } => AccessClaims {
                aud: audience.map_or(base.aud.clone(), str::to_owned),
                sub: client.client_id.to_string(),
                client_id: Some(client.client_id.to_string()),
                scope: Some(
                    scopes
                        .iter()
                        .map(Scope::as_str)
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                ..base
            },
            TokenSubject::User {
                user,
                groups,
                sid,
                client_id,
                act,
                scope,
                staff,
                linked,
            } => AccessClaims {
                sub: user.id.to_string(),
                scope,
                client_id: client_id.map(|c| c.to_string()),
                sid: Some(sid.to_string()),
                username: Some(user.username.to_string()),
                groups: Some(groups),
                roles: Some(
                    user.attributes
                        .roles
                        .iter()
                        .map(|r| r.as_str().to_owned())
                        .collect(),
                ),
                act,
                identities: {
                    let mut all = Vec::with_capacity(linked.len() + 1);
                    if let Some(actor) = staff {
                        all.push(IdentityClaim::staff(
                            actor,
                            self.issuer(self.pool(&PoolSlug::staff()).await?.as_ref()),
                        ));
                    }
                    all.extend(linked);
                    (!all.is_empty()).then_some(all)
                },
                ..base
            },
        };
        let (token, claims) = match overrides {
            None => (jws::sign(&keys.signing, TYP_ACCESS_TOKEN, &claims)?, claims),
            Some(o) => {
                let claims = AccessClaims {
                    scope: o.scope(claims.scope),
                    ..claims
                };
                /// The claims, and beside them what the hook added.
                #[derive(Serialize)]
                struct Extended<'a> {
                    #[serde(flatten)]
                    claims: &'a AccessClaims,
                    #[serde(flatten)]
                    extra: serde_json::Map<String, serde_json::Value>,
                }
                let token = jws::sign(
                    &keys.signing,
                    TYP_ACCESS_TOKEN,
                    &Extended {
                        claims: &claims,
                        extra: o.access_extra(),
                    },
                )?;
                return Ok(IssuedToken {
                    token: Secret::new(token),
                    claims,
                    expires_in: lifetime_secs,
                    overrides: Some(std::sync::Arc::new(o)),
                });
            }
        };
        Ok(IssuedToken {
            token: Secret::new(token),
            claims,
            expires_in: lifetime_secs,
            overrides: None,
        })
    }

    /// Authenticates a client at an OAuth endpoint (client_secret_basic or client_secret_post).
    pub async fn authenticate_client(
        &self,
        pool: &Pool,
        creds: &ClientCredentials,
    ) -> ServiceResult<std::sync::Arc<AppClient>> {
        if let Some(client) = self
            .client_with_secret(pool, &creds.client_id, creds.secret.as_ref())
            .await?
        {
            return Ok(client);
        }
        if let Some((id, secret)) = &creds.as_sent
            && let Some(client) = self.client_with_secret(pool, id, Some(secret)).await?
        {
            return Ok(client);
        }
        Err(ServiceError::OAuth(OAuthError::new(
            OAuthErrorCode::InvalidClient,
            "client authentication failed",
        )))
    }

    /// The client with this id, if the secret is its own.
    async fn client_with_secret(
        &self,
        pool: &Pool,
        client_id: &str,
        secret: Option<&Secret>,
    ) -> ServiceResult<Option<std::sync::Arc<AppClient>>> {
        let Ok(id) = ClientId::parse(client_id) else {
            return Ok(None);
        };
        let client = self.client(pool.id, &id).await?;
        // Hash even when the client is unknown, so timing does not tell which ids exist.
        let presented = secret.map(hash_client_secret);
        let (Some(client), Some(presented)) = (client, presented) else {
            return Ok(None);
        };
        Ok(match client.secret_sha256 {
            Some(stored) if constant_time_eq(&stored.0, &presented) => Some(client),
            _ => None,
        })
    }

    /// Verifies an access token presented to `pool`: signature, issuer, expiry, revocation,
    /// and that its user or client still stands. Staff tokens are accepted by client pools
    /// that allow staff access.
    pub async fn validate_access_token(
        &self,
        pool: &std::sync::Arc<Pool>,
        token: &str,
        allow_staff: StaffTokens,
    ) -> ServiceResult<Result<ValidToken, InvalidToken>> {
        let own_issuer = self.issuer(pool);
        let remembered = self.verified.get(token);
        let unverified_iss = match &remembered {
            Some(r) => Some(std::borrow::Cow::Borrowed(r.issuer())),
            None => jws::unverified_issuer(token).map(std::borrow::Cow::Owned),
        };
        let issuer_pool = match unverified_iss.as_deref() {
            Some(iss) if iss == own_issuer => pool.clone(),
            Some(iss)
                if allow_staff == StaffTokens::Accept
                    && !pool.slug.is_staff()
                    && pool.settings.staff_access == StaffAccess::Allowed =>
            {
                let staff = self.pool(&PoolSlug::staff()).await?;
                if iss != self.issuer(&staff) {
                    return Ok(Err(InvalidToken::ForeignIssuer));
                }
                staff
            }
            Some(_) => return Ok(Err(InvalidToken::ForeignIssuer)),
            None => return Ok(Err(InvalidToken::Signature)),
        };
        let mut keys = self.pool_keys(&issuer_pool).await?;
        let issuer = self.issuer(&issuer_pool);
        let now = self.now();
        let known = remembered
            .as_ref()
            .and_then(|r| r.claims_for(issuer_pool.id, &keys, &issuer));
        let claims = match known {
            Some(claims) => claims.clone(),
            None => {
                let expect = Expect {
                    typ: TYP_ACCESS_TOKEN,
                    issuer: &issuer,
                    audience: None,
                };
                let mut verified = jws::verify(token, |kid| keys.verifying_key(kid), &expect);
                // A key this process has not loaded yet: rotated in by another process.
                if matches!(verified, Err(JwsError::UnknownKey))
                    && let Some(fresh) = self
                        .keyring
                        .keys_after_unknown_kid(self.store.as_ref(), issuer_pool.id, &keys)
                        .await?
                {
                    verified = jws::verify(token, |kid| fresh.verifying_key(kid), &expect);
                    keys = fresh;
                }
                let claims: AccessClaims = match verified {
                    Ok(c) => c,
                    Err(
                        JwsError::Malformed
                        | JwsError::AlgorithmNotAllowed
                        | JwsError::WrongType(_)
                        | JwsError::UnknownKey
                        | JwsError::Invalid(_),
                    ) => return Ok(Err(InvalidToken::Signature)),
                };
                self.verified.put(
                    token,
                    issuer_pool.id,
                    keys.clone(),
                    std::sync::Arc::new(claims.clone()),
                    now.as_secs(),
                );
                claims
            }
        };
        if claims.exp <= now.as_secs() {
            return Ok(Err(InvalidToken::Expired));
        }
        // A staff impersonation, or a staff member's sign-in with the staff account, dies with
        // the pool's consent to staff: its session is ended
        // when staff access is turned off, and this holds meanwhile on instances whose cached
        // pool is a moment old.
        let staff_acts = claims
            .act
            .as_ref()
            .is_some_and(|a| a.pool == PoolSlug::staff().as_str());
        let staff_signed_in = claims
            .identities
            .iter()
            .flatten()
            .any(IdentityClaim::is_staff);
        if (staff_acts || staff_signed_in)
            && !issuer_pool.slug.is_staff()
            && issuer_pool.settings.staff_access == StaffAccess::Denied
        {
            return Ok(Err(InvalidToken::Revoked));
        }
        if self
            .revocations
            .is_revoked(self.store.as_ref(), issuer_pool.id, &claims.jti, now)
            .await?
        {
            return Ok(Err(InvalidToken::Revoked));
        }
        if let Some(sid) = claims.sid.as_deref() {
            let sid = SessionId::parse(sid).map_err(|_| ServiceError::Internal("sid".into()))?;
            match self.store.session(issuer_pool.id, sid).await? {
                Some(s) if s.is_active_at(now) => {}
                _ => return Ok(Err(InvalidToken::Revoked)),
            }
        }
        Ok(Ok(ValidToken {
            claims,
            issuer_pool,
        }))
    }

    /// Turns a bearer token into the principal it proves, with its current permissions.
    pub async fn authenticate_bearer(
        &self,
        pool: &std::sync::Arc<Pool>,
        token: &str,
    ) -> ServiceResult<Principal> {
        let valid = self
            .validate_access_token(pool, token, StaffTokens::Accept)
            .await?
            .map_err(|e| ServiceError::Unauthenticated(e.to_string()))?;
        self.principal_of(valid)
            .await?
            .map_err(|e| ServiceError::Unauthenticated(e.to_string()))
    }

    async fn principal_of(
        &self,
        valid: ValidToken,
    ) -> ServiceResult<Result<Principal, InvalidToken>> {
        let ValidToken {
            claims,
            issuer_pool,
        } = valid;
        let client_id = claims
            .client_id
            .as_deref()
            .and_then(|c| ClientId::parse(c).ok());
        let facts = TokenFacts {
            jti: claims.jti.clone(),
            sid: claims.sid.as_deref().and_then(|s| SessionId::parse(s).ok()),
            client_id: client_id.clone(),
            act: claims.act.clone(),
            expires_at: claims.exp,
            scope: claims.scope.clone(),
        };
        if claims.username.is_none() {
            // A client's own token.
            let Some(id) = client_id else {
                return Ok(Err(InvalidToken::Signature));
            };
            // Read through the one-second client cache, like the token endpoint: a client deleted
            // on another instance loses its tokens here within that second.
            let Some(client) = self.client(issuer_pool.id, &id).await? else {
                return Ok(Err(InvalidToken::ClientGone));
            };
            let token_scopes: Vec<&str> = claims
                .scope
                .as_deref()
                .unwrap_or_default()
                .split_ascii_whitespace()
                .collect();
            // A scope removed from the client since issuance no longer counts.
            let permissions = PermissionSet::from_permissions(
                client
                    .scopes
                    .iter()
                    .filter(|s| token_scopes.contains(&s.as_str()))
                    .filter_map(Scope::permission),
            );
            return Ok(Ok(Principal {
                subject: Subject::Client { client_id: id },
                home_pool: issuer_pool.slug.clone(),
                permissions,
                token: facts,
            }));
        }
        let user_id =
            UserId::parse(&claims.sub).map_err(|_| ServiceError::Internal("sub".into()))?;
        let Some(user) = self.store.user_by_id(issuer_pool.id, user_id).await? else {
            return Ok(Err(InvalidToken::UserGone));
        };
        if !user.enabled.is_enabled() {
            return Ok(Err(InvalidToken::UserGone));
        }
        if user
            .tokens_not_before
            .is_some_and(|nb| claims.iat < nb.as_secs())
        {
            return Ok(Err(InvalidToken::Revoked));
        }
        let permissions = self.user_permissions(&user).await?;
        Ok(Ok(Principal {
            subject: Subject::User {
                id: user.id,
                username: user.username.clone(),
            },
            home_pool: issuer_pool.slug.clone(),
            permissions,
            token: facts,
        }))
    }

    /// A user's permissions: its roles, its groups' roles, and self-service.
    pub async fn user_permissions(&self, user: &User) -> ServiceResult<PermissionSet> {
        let groups = self.store.groups_of_user(user.pool, user.id).await?;
        Ok(permissions_of(user, &groups))
    }

    /// RFC 7662 introspection. The caller is an authenticated client of the pool; tokens of
    /// other pools are reported inactive.
    pub async fn introspect(
        &self,
        pool: &std::sync::Arc<Pool>,
        creds: &ClientCredentials,
        token: &str,
    ) -> ServiceResult<Option<AccessClaims>> {
        self.authenticate_client(pool, creds).await?;
        let Ok(valid) = self
            .validate_access_token(pool, token, StaffTokens::Refuse)
            .await?
        else {
            return Ok(None);
        };
        Ok(self
            .principal_of(valid.clone())
            .await?
            .ok()
            .map(|_| valid.claims))
    }

    /// RFC 7009 revocation. Unknown or invalid tokens are not an error. Revoking an
    /// impersonated token ends its impersonation.
    pub async fn revoke(
        &self,
        pool: &std::sync::Arc<Pool>,
        creds: &ClientCredentials,
        token: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        let client = self.authenticate_client(pool, creds).await?;
        let Ok(valid) = self
            .validate_access_token(pool, token, StaffTokens::Refuse)
            .await?
        else {
            return Ok(());
        };
        let claims = valid.claims;
        if claims.client_id.as_deref() != Some(client.client_id.as_str()) {
            return Err(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                "the token was not issued to this client",
            )
            .into());
        }
        let mut event = self
            .event(pool, AuditAction::TokenRevoked, None, meta)
            .subject(claims.username.as_deref().unwrap_or(&claims.sub))
            .detail("jti", &claims.jti);
        event.client_id = Some(client.client_id.clone());
        let revoked = RevokedToken {
            pool: pool.id,
            jti: claims.jti.clone(),
            expires_at: Timestamp(claims.exp),
            revoked_at: self.now(),
        };
        // The token and, for an impersonation, its session end together.
        let mut w = self.store.write(pool.id).await?;
        w.revoke_token(&revoked).await?;
        w.audit(&event).await?;
        let cause = crate::security_events::Cause::new(
            gatehouse_domain::security_event::InitiatingEntity::Admin,
            "revoked (RFC 7009)",
        );
        let token_revoked = self.security_event(
            pool.id,
            &cause.txn,
            gatehouse_domain::security_event::EventKind::TokenRevoked {
                reason_admin: cause.reason.to_owned(),
            },
            gatehouse_domain::security_event::EventSubject::Token {
                jti: claims.jti.clone(),
            },
        );
        w.append_security_events(std::slice::from_ref(&token_revoked))
            .await?;
        if let (Some(act), Some(Ok(sid))) =
            (&claims.act, claims.sid.as_deref().map(SessionId::parse))
            && !self
                .end_sessions_and_tell(w.as_mut(), &SessionsToEnd::One(sid), &cause)
                .await?
                .is_empty()
        {
            let mut ended = self
                .event(pool, AuditAction::ImpersonationEnded, None, meta)
                .subject(claims.username.as_deref().unwrap_or(&claims.sub))
                .detail("impersonation_id", sid)
                .detail("via", "revocation")
                .detail("impersonator", act.to_actor().display_name());
            ended.client_id = Some(client.client_id.clone());
            w.audit(&ended).await?;
        }
        w.commit().await?;
        self.revocations.changed(pool.id);
        Ok(())
    }

    /// Looks up a user of the pool by a username taken from a request.
    pub async fn user_named(&self, pool: &Pool, username: &Username) -> ServiceResult<User> {
        self.store
            .user_by_username(pool.id, username)
            .await?
            .ok_or(ServiceError::NotFound("user"))
    }
}

pub use gatehouse_domain::user::permissions_of;

/// Whether a user is privileged: it holds a permission beyond self-service, so impersonating
/// it needs `user:ImpersonatePrivileged`.
pub fn is_privileged(user: &User, groups: &[Group]) -> bool {
    permissions_of(user, groups).is_privileged()
}

/// Whether staff-pool tokens are acceptable where a pool's token is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffTokens {
    Accept,
    Refuse,
}
