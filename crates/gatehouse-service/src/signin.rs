//! Password sign-in through the API (`POST /api/auth/initiate` with `USER_PASSWORD`), and the
//! `NEW_PASSWORD_REQUIRED` challenge that a temporary password leads to, and the confirmation
//! of an administrator's password reset.
//!
//! Each of them decides its write by reading inside the write transaction that makes it
//! (SPEC §9): a sign-in's session is created only if the user is still as its password was
//! checked; a challenge is claimed with one atomic compare-and-set, in the transaction that
//! sets the password and starts the session; a reset code is taken in the transaction that
//! sets the password. Passwords are hashed and checked before a transaction opens, never
//! while it holds SQLite's one writer.

use gatehouse_crypto::jws::{self, Expect};
use gatehouse_crypto::secret::{Secret, b64url, b64url_decode, random_token};
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::client::{AppClient, AuthFlow, GrantType};
use gatehouse_domain::ids::{ClientId, SessionId, UserId, Username};
use gatehouse_domain::lockout::{FailureMark, LockoutPolicy};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::session::{Session, SessionKind};
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::txn::PoolWrite;
use gatehouse_domain::user::{PasswordCredential, User, UserStatus};
use serde::{Deserialize, Serialize};

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::grants::authorization_code::{CodeGrant, REFRESH_TOKEN_TTL_SECS};
use crate::hooks::TokenSource;
use crate::tokens::{ClientAuthMethod, ClientCredentials, IssuedToken, TokenSubject};
use crate::users::user_write_error;
use crate::{Gatehouse, RequestMeta};

const TYP_CHALLENGE: &str = "challenge+jwt";
const NEW_PASSWORD_REQUIRED: &str = "NEW_PASSWORD_REQUIRED";

#[derive(Debug)]
pub enum SignInOutcome {
    /// Signed in: the session's first access token, and the first refresh token of its
    /// family when the client holds the `refresh_token` grant.
    Tokens {
        access: Box<IssuedToken>,
        refresh: Option<Secret>,
    },
    NewPasswordRequired {
        session: Secret,
    },
    /// A second factor is asked for: `SOFTWARE_TOKEN_MFA` (answered with a code or a
    /// recovery code), `WEB_AUTHN` (a passkey's assertion; its request options are the
    /// parameter `CREDENTIAL_REQUEST_OPTIONS`), `SELECT_MFA_TYPE` (the user has both; the
    /// choices are `MFAS_CAN_CHOOSE`), or `MFA_SETUP` (the pool requires one and the user
    /// has none).
    Mfa {
        challenge: &'static str,
        session: Secret,
        parameters: crate::passkeys::ChallengeParameters,
    },
    /// The choice-based flow (`USER_AUTH`) asks which first factor the user will prove:
    /// one of `available` (`PASSWORD`, `EMAIL_OTP`, `WEB_AUTHN`), answering
    /// `SELECT_CHALLENGE` with this session.
    SelectChallenge {
        session: Secret,
        available: Vec<&'static str>,
    },
}

/// The password step's outcome (see [`Gatehouse::check_password`]).
pub(crate) enum PasswordChecked {
    NewPasswordRequired { user: User },
    SignedIn { w: Box<dyn PoolWrite>, user: User },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChallengeClaims {
    iss: String,
    pub(crate) sub: String,
    pub(crate) aud: String,
    pub(crate) exp: i64,
    pub(crate) jti: String,
    challenge: String,
    /// An `EMAIL_OTP` challenge's code, sealed with the master key under the pool and this
    /// session's `jti` (b64url): the client carries it and can neither read nor move it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) otp: Option<String>,
    /// The challenge is the sign-in's first factor (the `USER_AUTH` flow), not a second one
    /// after a password.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) first: bool,
}

/// What a challenge session carries beyond its user, audience and challenge.
#[derive(Debug, Default)]
pub(crate) struct ChallengeExtras<'a> {
    /// The e-mail code to seal into it.
    pub(crate) otp: Option<&'a Secret>,
    /// Whether it is the sign-in's first factor.
    pub(crate) first: bool,
}

/// The label an `EMAIL_OTP` code is sealed under: bound to its one session.
fn otp_label(jti: &str) -> String {
    format!("email-otp:{jti}")
}

fn not_authorized() -> ServiceError {
    ServiceError::Unauthenticated("incorrect username or password".to_owned())
}

impl Gatehouse {
    /// The app client a sign-in goes through: a public client by id, a confidential one with
    /// its secret.
    pub(crate) async fn sign_in_client(
        &self,
        pool: &Pool,
        client_id: &str,
        secret: Option<Secret>,
    ) -> ServiceResult<AppClient> {
        let id = ClientId::parse(client_id)
            .map_err(|_| ServiceError::Unauthenticated("unknown client".to_owned()))?;
        let client = self
            .store
            .client(pool.id, &id)
            .await?
            .ok_or_else(|| ServiceError::Unauthenticated("unknown client".to_owned()))?;
        if client.secret_sha256.is_some() {
            self.authenticate_client(
                pool,
                &ClientCredentials {
                    client_id: client_id.to_owned(),
                    secret,
                    method: ClientAuthMethod::Post,
                    as_sent: None,
                },
            )
            .await
            .map_err(|_| {
                ServiceError::Unauthenticated("client authentication failed".to_owned())
            })?;
        }
        Ok(client)
    }

    /// Counts a failed sign-in of `name` and records the run in the audit log at its turns
    /// (its first failure, the start of the back-off, the lock), not one row per failure.
    pub(crate) async fn count_sign_in_failure(
        &self,
        pool: &Pool,
        name: &Username,
        policy: &LockoutPolicy,
        now: Timestamp,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        let failures = self
            .store
            .record_sign_in_failure(pool.id, name, now, policy)
            .await?;
        let action = match policy.mark(&failures) {
            FailureMark::Repeat => return Ok(()),
            FailureMark::First | FailureMark::BackOff => AuditAction::UserSignInFailed,
            FailureMark::Locked => AuditAction::UserLockedOut,
        };
        let mut event = self
            .event(pool, action, None, meta)
            .subject(name)
            .detail("failures", failures.count)
            .denied();
        if let Some(until) = failures.locked_until {
            event = event.detail("locked_until", until.as_secs());
        }
        self.store.append_audit(&event).await?;
        Ok(())
    }

    pub async fn initiate_password_sign_in(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        username: &str,
        password: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<SignInOutcome> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        self.require_auth_flow(&client, AuthFlow::UserPassword)?;
        match self.check_password(pool, username, password, meta).await? {
            PasswordChecked::NewPasswordRequired { user } => {
                Ok(SignInOutcome::NewPasswordRequired {
                    session: self
                        .new_password_challenge(pool, &user, client.client_id.as_str())
                        .await?,
                })
            }
            PasswordChecked::SignedIn { mut w, user } => {
                if let Some(challenge) = self.mfa_challenge_for(pool, w.as_mut(), &user).await? {
                    drop(w);
                    return self
                        .mfa_outcome(pool, &user, client.client_id.as_str(), challenge)
                        .await;
                }
                self.start_session(pool, &client, w, &user, meta).await
            }
        }
    }

    /// The password step every sign-in shares, API or browser: the per-username lockout,
    /// argon2 off the async runtime (the same work for an unknown user), the failure counted
    /// and aggregated in the audit log. A user with a temporary password must set a new one;
    /// any other answers an open write transaction in which the user is still as its password
    /// was checked (argon2 ran before it opened), for the caller to start its session in.
    pub(crate) async fn check_password(
        &self,
        pool: &Pool,
        username: &str,
        password: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<PasswordChecked> {
        let now = self.now();
        // Failures count per username whether or not the user exists; one that cannot parse
        // names no account, and is refused below like any wrong password.
        let name = Username::parse(username).ok();
        let policy = LockoutPolicy::default();
        let mut earlier_failures = false;
        if let Some(name) = &name
            && let Some(failures) = self.store.sign_in_failures(pool.id, name).await?
        {
            earlier_failures = true;
            if let Some(at) = policy.next_attempt_at(&failures, now) {
                return Err(ServiceError::throttled_until(
                    "too many failed sign-ins for this username; try again later",
                    at,
                    now,
                ));
            }
        }
        let user = match &name {
            Some(u) => self.store.user_by_username(pool.id, u).await?,
            None => None,
        };
        let credential = user.as_ref().and_then(|u| u.password.clone());
        let matches = match &credential {
            Some(c) => self.hasher.verify(&c.phc, password).await?,
            None => {
                // Spend the same work as a real check, so timing does not reveal the user.
                self.hasher.hash(password).await?;
                false
            }
        };
        let (Some(user), Some(credential), true) = (user, credential, matches) else {
            if let Some(name) = &name {
                self.count_sign_in_failure(pool, name, &policy, now, meta)
                    .await?;
            }
            return Err(not_authorized());
        };
        if !user.enabled.is_enabled() {
            return Err(not_authorized());
        }
        // A user who still owes a second factor has not signed in yet: its failures (wrong
        // codes among them) stand until the factor passes, or a correct password between
        // guesses would reset the count and the lockout would never come.
        let owes_factor =
            user.mfa.has_factor() && pool.settings.mfa != gatehouse_domain::mfa::MfaMode::Off;
        if earlier_failures && !owes_factor {
            self.store
                .clear_sign_in_failures(pool.id, &user.username)
                .await?;
        }
        if user.status == UserStatus::ForceChangePassword {
            if credential.temporary_until.is_some_and(|t| t <= now) {
                return Err(ServiceError::Unauthenticated(
                    "the temporary password has expired; ask an administrator to reset it"
                        .to_owned(),
                ));
            }
            return Ok(PasswordChecked::NewPasswordRequired { user });
        }
        // The password was checked outside any transaction (argon2 must not hold the
        // writer): sign in only if the user is still as it was checked.
        let mut w = self.store.write(pool.id).await?;
        let Some(user) = w.user_by_id(user.id).await?.filter(|current| {
            current.enabled.is_enabled()
                && current.status == user.status
                && current.password.as_ref().map(|p| &p.phc) == Some(&credential.phc)
        }) else {
            return Err(not_authorized());
        };
        Ok(PasswordChecked::SignedIn { w, user })
    }

    /// The challenge session a user with a temporary password answers with a new one, bound
    /// to `audience` (the client of an API sign-in, or the pool's browser sign-in).
    pub(crate) async fn new_password_challenge(
        &self,
        pool: &Pool,
        user: &User,
        audience: &str,
    ) -> ServiceResult<Secret> {
        self.challenge_session(pool, user, audience, NEW_PASSWORD_REQUIRED)
            .await
    }

    /// A challenge session: opaque to the client, signed with the pool's key, bound to the
    /// user, the audience and the challenge it answers, good for a while and
    /// for one answer (its `jti` is taken with `use_once` by the answer that passes).
    /// It lasts the pool's challenge-session lifetime (three minutes unless set).
    pub(crate) async fn challenge_session(
        &self,
        pool: &Pool,
        user: &User,
        audience: &str,
        challenge: &str,
    ) -> ServiceResult<Secret> {
        self.challenge_session_with(
            pool,
            &user.id.to_string(),
            audience,
            challenge,
            ChallengeExtras::default(),
        )
        .await
    }

    /// [`Gatehouse::challenge_session`] for the subject `sub` (a user's id), with `extras`.
    pub(crate) async fn challenge_session_with(
        &self,
        pool: &Pool,
        sub: &str,
        audience: &str,
        challenge: &str,
        extras: ChallengeExtras<'_>,
    ) -> ServiceResult<Secret> {
        let keys = self.pool_keys(pool).await?;
        let jti = random_token().expose().to_owned();
        let otp = match extras.otp {
            Some(code) => Some(b64url(&self.keyring.seal_code(
                pool.id,
                &otp_label(&jti),
                code,
            )?)),
            None => None,
        };
        let claims = ChallengeClaims {
            iss: self.issuer(pool),
            sub: sub.to_owned(),
            aud: audience.to_owned(),
            exp: self
                .now()
                .plus_secs(pool.settings.challenge_session_secs())
                .as_secs(),
            jti,
            challenge: challenge.to_owned(),
            otp,
            first: extras.first,
        };
        Ok(Secret::new(jws::sign(
            &keys.signing,
            TYP_CHALLENGE,
            &claims,
        )?))
    }

    /// The e-mail code a challenge session carries, opened; `None` if it carries none or
    /// it was not sealed for this session.
    pub(crate) fn challenge_otp(&self, pool: &Pool, claims: &ChallengeClaims) -> Option<Secret> {
        let sealed = b64url_decode(claims.otp.as_deref()?)?;
        self.keyring
            .open_code(pool.id, &otp_label(&claims.jti), &sealed)
    }

    /// Answers `NEW_PASSWORD_REQUIRED`: sets the new password (checked against the policy),
    /// confirms the user and signs it in. Each challenge session is good for one answer.
    pub async fn respond_new_password(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        session: &str,
        new_password: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<SignInOutcome> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        let (mut w, user) = self
            .set_new_password(pool, client.client_id.as_str(), session, new_password, meta)
            .await?;
        if let Some(challenge) = self.mfa_challenge_for(pool, w.as_mut(), &user).await? {
            // The new password stands; the second factor is the next step.
            w.commit().await?;
            return self
                .mfa_outcome(pool, &user, client.client_id.as_str(), challenge)
                .await;
        }
        self.start_session(pool, &client, w, &user, meta).await
    }

    /// Claims a `NEW_PASSWORD_REQUIRED` challenge bound to `audience` and sets the new
    /// password, in a write transaction returned open for the caller's session.
    pub(crate) async fn set_new_password(
        &self,
        pool: &Pool,
        audience: &str,
        session: &str,
        new_password: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<(Box<dyn PoolWrite>, User)> {
        let expired = || ServiceError::Unauthenticated("invalid or expired session".to_owned());
        let claims = self
            .verify_challenge(pool, audience, session, NEW_PASSWORD_REQUIRED)
            .await?;
        let now = self.now();
        pool.settings.password_policy.check(new_password.expose())?;
        let user_id = UserId::parse(&claims.sub).map_err(|_| expired())?;
        // Hashed before the transaction opens: the writer is never held across argon2.
        let phc = self.hasher.hash(new_password).await?;
        let mut w = self.store.write(pool.id).await?;
        // The claim: of answers racing on one challenge, exactly one passes.
        if !w.use_once(&claims.jti, now, Timestamp(claims.exp)).await? {
            return Err(expired());
        }
        let mut user = w.user_by_id(user_id).await?.ok_or_else(expired)?;
        if user.status != UserStatus::ForceChangePassword || !user.enabled.is_enabled() {
            return Err(expired());
        }
        let used = self
            .event(pool, AuditAction::TokenRevoked, None, meta)
            .subject(&user.username)
            .detail("challenge", NEW_PASSWORD_REQUIRED);
        w.audit(&used).await?;
        user.password = Some(PasswordCredential {
            phc,
            temporary_until: None,
        });
        user.status = UserStatus::Confirmed;
        user.updated_at = now;
        let event = self
            .event(pool, AuditAction::UserUpdated, None, meta)
            .subject(&user.username)
            .detail("change", "password set at first sign-in");
        w.update_user(&user).await.map_err(user_write_error)?;
        w.audit(&event).await?;
        Ok((w, user))
    }

    /// Reads a challenge session of `challenge` bound to `audience`: signed by the pool,
    /// unexpired, not yet answered. Only a cheap early refusal of a used one: the answer
    /// claims it with `use_once` in its transaction.
    pub(crate) async fn verify_challenge(
        &self,
        pool: &Pool,
        audience: &str,
        session: &str,
        challenge: &str,
    ) -> ServiceResult<ChallengeClaims> {
        self.verify_challenge_for(pool, Some(audience), session, challenge)
            .await
    }

    /// [`Gatehouse::verify_challenge`] for the operations whose request names no client
    /// (Cognito's `AssociateSoftwareToken` and `VerifySoftwareToken` with a session): the
    /// session's own audience stands, and the answer that signs in checks it.
    pub(crate) async fn verify_challenge_for(
        &self,
        pool: &Pool,
        audience: Option<&str>,
        session: &str,
        challenge: &str,
    ) -> ServiceResult<ChallengeClaims> {
        let keys = self.pool_keys(pool).await?;
        let issuer = self.issuer(pool);
        let expired = || ServiceError::Unauthenticated("invalid or expired session".to_owned());
        let claims: ChallengeClaims = jws::verify(
            session,
            |kid| keys.verifying_key(kid),
            &Expect {
                typ: TYP_CHALLENGE,
                issuer: &issuer,
                audience,
            },
        )
        .map_err(|_| expired())?;
        let now = self.now();
        if claims.exp <= now.as_secs()
            || claims.challenge != challenge
            || self
                .revocations
                .is_revoked(self.store.as_ref(), pool.id, &claims.jti, now)
                .await?
        {
            return Err(expired());
        }
        Ok(claims)
    }

    /// Completes a password reset (an administrator's, or one the user asked for because it
    /// forgot its password) with the code sent to the user and a new password that meets the
    /// pool's policy (see [`Gatehouse::reset_password_with_code`]). The user is confirmed and
    /// can sign in.
    #[allow(clippy::too_many_arguments)]
    pub async fn confirm_password_reset(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        username: &str,
        code: &Secret,
        new_password: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        self.sign_in_client(pool, client_id, client_secret).await?;
        let (w, _) = self
            .reset_password_with_code(pool, username, code, new_password, meta)
            .await?;
        w.commit().await?;
        Ok(())
    }

    /// Starts a sign-in session for `user` inside `w`, the transaction of the operation that
    /// decided it, commits, and mints the session's first token.
    pub(crate) async fn start_session(
        &self,
        pool: &Pool,
        client: &AppClient,
        mut w: Box<dyn PoolWrite>,
        user: &User,
        meta: &RequestMeta,
    ) -> ServiceResult<SignInOutcome> {
        let now = self.now();
        let ttl = pool.settings.access_token_ttl_secs;
        // With refresh tokens the session is their family, and lasts as long as they do.
        let with_refresh = client.grant_types.contains(&GrantType::RefreshToken);
        let session = Session {
            id: SessionId::new_ordered(),
            pool: pool.id,
            user_id: user.id,
            username: user.username.clone(),
            client_id: Some(client.client_id.clone()),
            kind: SessionKind::SignIn,
            created_at: now,
            expires_at: now.plus_secs(if with_refresh {
                REFRESH_TOKEN_TTL_SECS
            } else {
                i64::from(ttl)
            }),
            revoked_at: None,
        };
        let mut event = self
            .event(pool, AuditAction::UserSignedIn, None, meta)
            .subject(&user.username)
            .detail("session_id", session.id)
            .actor(gatehouse_domain::session::Actor {
                kind: gatehouse_domain::session::ActorKind::User,
                id: user.id.to_string(),
                username: Some(user.username.to_string()),
                pool: pool.slug.clone(),
                client_id: Some(client.client_id.clone()),
            });
        event.client_id = Some(client.client_id.clone());
        w.create_session(&session).await?;
        w.audit(&event).await?;
        let refresh = if with_refresh {
            Some(
                self.put_refresh(w.as_mut(), pool, &session, &[], now)
                    .await?,
            )
        } else {
            None
        };
        let issued = self
            .commit_and_mint(
                w,
                pool,
                &client.client_id,
                user,
                &session,
                None,
                ttl,
                TokenSource {
                    trigger_source: "TokenGeneration_Authentication",
                    meta,
                },
            )
            .await?;
        Ok(SignInOutcome::Tokens {
            access: Box::new(issued),
            refresh,
        })
    }

    /// The API's `REFRESH_TOKEN` flow: the client (authenticated as the other flows are)
    /// presents a refresh token, of an API sign-in or of the code flow, and gets new tokens
    /// and the family's next refresh token, exactly as at the token endpoint.
    pub async fn refresh_sign_in(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        refresh_token: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<CodeGrant> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        self.require_auth_flow(&client, AuthFlow::RefreshToken)?;
        self.refresh_for_client(pool, &client, refresh_token, meta)
            .await
    }

    /// Commits the transaction that started `session` for `user`, and mints the session's
    /// access token for `client_id` with the user's groups (read in that
    /// transaction).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn commit_and_mint(
        &self,
        mut w: Box<dyn PoolWrite>,
        pool: &Pool,
        client_id: &ClientId,
        user: &User,
        session: &Session,
        scope: Option<String>,
        ttl: u32,
        source: TokenSource<'_>,
    ) -> ServiceResult<IssuedToken> {
        let groups: Vec<String> = w
            .groups_of_user(user.id)
            .await?
            .into_iter()
            .map(|g| g.name.to_string())
            .collect();
        let links = w.identities_of_user(user.id).await?;
        w.commit().await?;
        let linked = self.identity_claims(pool, links).await?;
        // The pool's pre-token hook runs after the commit: it must not hold the writer.
        // If it fails, no token is issued (the session stays, unused, until it expires).
        let scopes: Vec<String> = scope
            .as_deref()
            .map(|s| s.split(' ').map(str::to_owned).collect())
            .unwrap_or_default();
        let overrides = self
            .pre_token(
                pool,
                source.trigger_source,
                crate::hooks::PreTokenSubject::User {
                    user,
                    groups: &groups,
                },
                client_id.as_str(),
                &scopes,
                source.meta,
            )
            .await?;
        self.mint_access_token_with(
            pool,
            TokenSubject::User {
                user,
                groups,
                sid: session.id,
                client_id: Some(client_id.clone()),
                act: None,
                scope,
                staff: session.staff(),
                linked,
            },
            ttl,
            overrides,
        )
        .await
    }
}
