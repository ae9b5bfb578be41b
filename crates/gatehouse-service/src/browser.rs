//! Browser sign-in: the pool's single sign-on session, held by a cookie, and the steps of the
//! hosted sign-in (password, then a new password where the user has a temporary one).
//!
//! The cookie's value is `{session id}.{secret}`: the secret is 256 random bits, stored only
//! as its SHA-256 and compared in constant time. A session of one pool is looked up in that
//! pool alone, so another pool's cookie names nothing there.

use gatehouse_crypto::jws::{self, Expect};
use gatehouse_crypto::secret::{Secret, constant_time_eq, random_token, sha256};
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::SessionId;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::session::{Actor, ActorKind, Session, SessionKind};
use gatehouse_domain::txn::PoolWrite;
use gatehouse_domain::user::User;

use serde::{Deserialize, Serialize};

use crate::audit::EventExt;
use crate::error::ServiceResult;
use crate::signin::PasswordChecked;
use crate::{Gatehouse, RequestMeta};
use gatehouse_domain::authorization::AuthorizationRequest;

/// How long a browser's single sign-on lasts after the password was entered.
pub const BROWSER_SESSION_TTL_SECS: i64 = 12 * 3600;

/// The audience of the challenge a browser sign-in answers with a new password.
const BROWSER_AUDIENCE: &str = "gatehouse:browser";

/// How long the sign-in pages may take between the authorization request and the last step.
const REQUEST_TTL_SECS: i64 = 15 * 60;
const TYP_AUTHORIZATION_REQUEST: &str = "authz-request+jwt";
const REQUEST_AUDIENCE: &str = "gatehouse:authorize";

/// A checked authorization request, signed so that the sign-in pages can carry it from step
/// to step in a hidden field, unchanged, for a limited time.
#[derive(Debug, Serialize, Deserialize)]
struct RequestClaims {
    iss: String,
    /// The client the request is for.
    sub: String,
    aud: String,
    exp: i64,
    req: AuthorizationRequest,
}

/// A checked RP-initiated logout request (OpenID RP-Initiated Logout 1.0 §2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogoutRequest {
    pub client_id: Option<String>,
    /// Registered for that client, compared exactly; where to send the browser after.
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    /// The browser session the `id_token_hint` was issued in, when one verified.
    pub hinted_sid: Option<String>,
}

/// A browser's signed-in session, as its cookie proved it.
#[derive(Debug, Clone)]
pub struct BrowserSession {
    pub session: Session,
    pub user: User,
}

impl BrowserSession {
    /// When the user last entered its password in this browser (OIDC `auth_time`).
    pub fn auth_time(&self) -> gatehouse_domain::time::Timestamp {
        self.session.created_at
    }
}

/// The outcome of a step of the hosted sign-in.
#[derive(Debug)]
pub enum BrowserSignIn {
    /// Signed in: set this cookie value.
    SignedIn {
        session: Box<BrowserSession>,
        cookie: Secret,
    },
    /// The password was temporary: ask for a new one, answering with this challenge.
    NewPasswordRequired { challenge: Secret },
    /// The user has a software token: ask for a code (or a recovery code), answering with
    /// this challenge.
    SoftwareTokenMfa { challenge: Secret },
    /// The user has passkeys: the page asks the browser for an assertion with these
    /// request options (`PublicKeyCredentialRequestOptionsJSON`), answering with this
    /// challenge.
    WebAuthnMfa { challenge: Secret, options: String },
    /// The user has a code sent to its e-mail address (`EMAIL_OTP`; `destination` is the
    /// address, masked): ask for it, answering with this challenge.
    EmailOtpMfa {
        challenge: Secret,
        destination: String,
    },
    /// The user has several factors: the page offers these (`SOFTWARE_TOKEN_MFA`,
    /// `WEB_AUTHN`, `EMAIL_OTP`), answering with this challenge.
    SelectMfaType {
        challenge: Secret,
        choices: Vec<String>,
    },
    /// The pool requires a second factor and the user has none: enroll a software token
    /// (its secret, in base32 and as an `otpauth://` URI) and answer with its first code.
    MfaSetup {
        challenge: Secret,
        secret: Secret,
        uri: Secret,
    },
    /// Enrolled and signed in: set this cookie value, and show the recovery codes, once.
    SignedInWithRecoveryCodes {
        session: Box<BrowserSession>,
        cookie: Secret,
        codes: crate::mfa::RecoveryCodes,
    },
}

/// The outcome of a password reset on the hosted sign-in.
#[derive(Debug)]
pub enum BrowserReset {
    /// The password is set and the browser signed in: set this cookie value.
    SignedIn {
        session: Box<BrowserSession>,
        cookie: Secret,
    },
    /// The password is set, but the user does not sign in now (it is disabled).
    PasswordChanged,
}

impl Gatehouse {
    /// Signs a checked authorization request for the sign-in pages to carry.
    pub async fn seal_authorization_request(
        &self,
        pool: &Pool,
        req: &AuthorizationRequest,
    ) -> ServiceResult<String> {
        let keys = self.pool_keys(pool).await?;
        let claims = RequestClaims {
            iss: self.issuer(pool),
            sub: req.client_id.clone(),
            aud: REQUEST_AUDIENCE.to_owned(),
            exp: self.now().plus_secs(REQUEST_TTL_SECS).as_secs(),
            req: req.clone(),
        };
        Ok(jws::sign(
            &keys.signing,
            TYP_AUTHORIZATION_REQUEST,
            &claims,
        )?)
    }

    /// The request [`Self::seal_authorization_request`] signed, if it is this pool's and
    /// still fresh.
    pub async fn open_authorization_request(
        &self,
        pool: &Pool,
        sealed: &str,
    ) -> ServiceResult<Option<AuthorizationRequest>> {
        let keys = self.pool_keys(pool).await?;
        let issuer = self.issuer(pool);
        let claims: Option<RequestClaims> = jws::verify(
            sealed,
            |kid| keys.verifying_key(kid),
            &Expect {
                typ: TYP_AUTHORIZATION_REQUEST,
                issuer: &issuer,
                audience: Some(REQUEST_AUDIENCE),
            },
        )
        .ok();
        Ok(claims
            .filter(|c| c.exp > self.now().as_secs())
            .map(|c| c.req))
    }

    /// The browser session a cookie value names in `pool`, if it is active, its secret is
    /// right, and its user still exists and is enabled.
    pub async fn browser_session(
        &self,
        pool: &Pool,
        cookie: &str,
    ) -> ServiceResult<Option<BrowserSession>> {
        let Some((id, secret)) = cookie.split_once('.') else {
            return Ok(None);
        };
        let Ok(id) = SessionId::parse(id) else {
            return Ok(None);
        };
        let Some(session) = self.store.session(pool.id, id).await? else {
            return Ok(None);
        };
        let SessionKind::Browser { secret_sha256, .. } = &session.kind else {
            return Ok(None);
        };
        if !constant_time_eq(secret_sha256, &sha256(secret.as_bytes()))
            || !session.is_active_at(self.now())
        {
            return Ok(None);
        }
        let Some(user) = self.store.user_by_id(pool.id, session.user_id).await? else {
            return Ok(None);
        };
        // Disabling, deleting or signing the user out ends the session itself; so does
        // turning staff access off for a staff member's session.
        if !user.enabled.is_enabled()
            || (session.staff().is_some() && !self.offers_staff_sign_in(pool))
        {
            return Ok(None);
        }
        Ok(Some(BrowserSession { session, user }))
    }

    /// The password step of the hosted sign-in.
    pub async fn sign_in_browser(
        &self,
        pool: &Pool,
        username: &str,
        password: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<BrowserSignIn> {
        match self.check_password(pool, username, password, meta).await? {
            PasswordChecked::NewPasswordRequired { user } => {
                Ok(BrowserSignIn::NewPasswordRequired {
                    challenge: self
                        .new_password_challenge(pool, &user, BROWSER_AUDIENCE)
                        .await?,
                })
            }
            PasswordChecked::SignedIn { mut w, user } => {
                if let Some(challenge) = self.mfa_challenge_for(pool, w.as_mut(), &user).await? {
                    drop(w);
                    return self.browser_mfa_challenge(pool, &user, challenge).await;
                }
                self.start_browser_session(pool, w, user, None, meta).await
            }
        }
    }

    /// The hosted pages' second-factor step after the password: a code page for a software
    /// token, a passkey page, the choice between them, or (the pool requires a factor the
    /// user has none of) enrolling a software token.
    async fn browser_mfa_challenge(
        &self,
        pool: &Pool,
        user: &User,
        challenge: &'static str,
    ) -> ServiceResult<BrowserSignIn> {
        if challenge == crate::mfa::MFA_SETUP {
            let association = self.associate_totp_for_user(pool, user).await?;
            return Ok(BrowserSignIn::MfaSetup {
                challenge: self
                    .challenge_session(pool, user, BROWSER_AUDIENCE, challenge)
                    .await?,
                secret: association.secret,
                uri: association.uri,
            });
        }
        let (session, mut parameters) = self
            .mfa_step(pool, user, BROWSER_AUDIENCE, challenge)
            .await?;
        Ok(match challenge {
            crate::passkeys::WEB_AUTHN => BrowserSignIn::WebAuthnMfa {
                challenge: session,
                options: parameters
                    .remove(crate::passkeys::CREDENTIAL_REQUEST_OPTIONS)
                    .unwrap_or_default(),
            },
            crate::passkeys::SELECT_MFA_TYPE => BrowserSignIn::SelectMfaType {
                challenge: session,
                choices: parameters
                    .remove(crate::passkeys::MFAS_CAN_CHOOSE)
                    .and_then(|c| serde_json::from_str(&c).ok())
                    .unwrap_or_default(),
            },
            crate::email_otp::EMAIL_OTP => BrowserSignIn::EmailOtpMfa {
                challenge: session,
                destination: parameters
                    .remove(crate::email_otp::CODE_DELIVERY_DESTINATION)
                    .unwrap_or_default(),
            },
            _ => BrowserSignIn::SoftwareTokenMfa { challenge: session },
        })
    }

    /// The passkey step of the hosted sign-in: the browser's assertion for `WEB_AUTHN`.
    pub async fn browser_web_authn(
        &self,
        pool: &Pool,
        challenge: &str,
        credential: &serde_json::Value,
        meta: &RequestMeta,
    ) -> ServiceResult<BrowserSignIn> {
        let (w, user) = self
            .answer_web_authn(pool, BROWSER_AUDIENCE, challenge, credential, meta)
            .await?;
        self.start_browser_session(pool, w, user, None, meta).await
    }

    /// The choice between a software token and a passkey on the hosted sign-in.
    pub async fn browser_select_mfa_type(
        &self,
        pool: &Pool,
        challenge: &str,
        answer: &str,
    ) -> ServiceResult<BrowserSignIn> {
        let (user, chosen) = self
            .answer_select_mfa_type(pool, BROWSER_AUDIENCE, challenge, answer)
            .await?;
        self.browser_mfa_challenge(pool, &user, chosen).await
    }

    /// "Sign in with a passkey" on the hosted sign-in: a discoverable credential's assertion
    /// signs the browser in without a password (its user verification is the second factor
    /// it carries, so no other step follows).
    pub async fn browser_passwordless(
        &self,
        pool: &Pool,
        credential: &serde_json::Value,
        sealed_ceremony: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<BrowserSignIn> {
        let (w, user) = self
            .finish_passwordless(pool, credential, sealed_ceremony, meta)
            .await?;
        self.start_browser_session(pool, w, user, None, meta).await
    }

    /// The code step of the hosted sign-in: a software token's code or a recovery code.
    pub async fn browser_software_token(
        &self,
        pool: &Pool,
        challenge: &str,
        code: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<BrowserSignIn> {
        let (w, user, recovery) = self
            .answer_software_token(pool, BROWSER_AUDIENCE, challenge, code, meta)
            .await?;
        let notify = recovery.then(|| user.clone());
        let signed_in = self
            .start_browser_session(pool, w, user, None, meta)
            .await?;
        if let Some(user) = notify {
            self.notify_recovery_code_used(pool, &user).await;
        }
        Ok(signed_in)
    }

    /// The e-mail code step of the hosted sign-in (`EMAIL_OTP`).
    pub async fn browser_email_otp(
        &self,
        pool: &Pool,
        challenge: &str,
        code: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<BrowserSignIn> {
        let (w, user, _) = self
            .answer_email_otp(pool, BROWSER_AUDIENCE, challenge, code, meta)
            .await?;
        self.start_browser_session(pool, w, user, None, meta).await
    }

    /// The enrollment step of the hosted sign-in (`MFA_SETUP`): the token's first code
    /// confirms it, uses the challenge up and signs the browser in, in one transaction; the
    /// recovery codes are answered to be shown once.
    pub async fn browser_mfa_setup(
        &self,
        pool: &Pool,
        challenge: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<BrowserSignIn> {
        let (w, user, codes) = self
            .confirm_setup(pool, BROWSER_AUDIENCE, challenge, code, meta)
            .await?;
        match self
            .start_browser_session(pool, w, user, None, meta)
            .await?
        {
            BrowserSignIn::SignedIn { session, cookie } => {
                Ok(BrowserSignIn::SignedInWithRecoveryCodes {
                    session,
                    cookie,
                    codes,
                })
            }
            other => Ok(other),
        }
    }

    /// The new-password step of the hosted sign-in.
    pub async fn browser_new_password(
        &self,
        pool: &Pool,
        challenge: &str,
        new_password: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<BrowserSignIn> {
        let (mut w, user) = self
            .set_new_password(pool, BROWSER_AUDIENCE, challenge, new_password, meta)
            .await?;
        if let Some(challenge) = self.mfa_challenge_for(pool, w.as_mut(), &user).await? {
            // The new password stands; the second factor is the next step.
            w.commit().await?;
            return self.browser_mfa_challenge(pool, &user, challenge).await;
        }
        self.start_browser_session(pool, w, user, None, meta).await
    }

    /// "Forgot your password?" on the hosted sign-in: sends a reset code exactly as
    /// [`Gatehouse::forgot_password`] does, answering the same for every username.
    pub async fn browser_forgot_password(
        &self,
        pool: &Pool,
        username: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        self.forgot_password(pool, username, meta).await
    }

    /// The code and new-password step of a reset on the hosted sign-in: the password is set
    /// through the API's path ([`Gatehouse::reset_password_with_code`]) and the browser's
    /// session starts in the same transaction. A disabled user's reset is completed without
    /// a session, as through the API.
    pub async fn browser_reset_password(
        &self,
        pool: &Pool,
        username: &str,
        code: &Secret,
        new_password: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<BrowserReset> {
        let (w, user) = self
            .reset_password_with_code(pool, username, code, new_password, meta)
            .await?;
        if !user.enabled.is_enabled() {
            w.commit().await?;
            return Ok(BrowserReset::PasswordChanged);
        }
        let BrowserSignIn::SignedIn { session, cookie } = self
            .start_browser_session(pool, w, user, None, meta)
            .await?
        else {
            return Err(crate::error::ServiceError::internal(
                "a new browser session asked for another step",
            ));
        };
        Ok(BrowserReset::SignedIn { session, cookie })
    }

    /// Checks a logout request. A `post_logout_redirect_uri` must be registered for the client
    /// that the hint or `client_id` names, exactly; otherwise the answer is a message for a
    /// page, never a redirect (no open redirect).
    pub async fn check_logout_request(
        &self,
        pool: &Pool,
        id_token_hint: Option<&str>,
        client_id: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> ServiceResult<Result<LogoutRequest, &'static str>> {
        let hint = match id_token_hint {
            Some(t) => match self.id_token_hint(pool, t).await? {
                Some(h) => Some(h),
                None => return Ok(Err("The id_token_hint is not a token of this pool.")),
            },
            None => None,
        };
        let client_id = match (&hint, client_id) {
            (Some(h), Some(c)) if h.client_id != c => {
                return Ok(Err("The client_id does not match the id_token_hint."));
            }
            (Some(h), _) => Some(h.client_id.clone()),
            (None, c) => c.map(str::to_owned),
        };
        if let Some(uri) = post_logout_redirect_uri {
            let Some(id) = &client_id else {
                return Ok(Err(
                    "A post_logout_redirect_uri needs the client_id or an id_token_hint.",
                ));
            };
            let client = match gatehouse_domain::ids::ClientId::parse(id) {
                Ok(id) => self.client(pool.id, &id).await?,
                Err(_) => None,
            };
            if !client.is_some_and(|c| c.has_post_logout_redirect_uri(uri)) {
                return Ok(Err(
                    "The post_logout_redirect_uri is not registered for this application.",
                ));
            }
        }
        Ok(Ok(LogoutRequest {
            client_id,
            post_logout_redirect_uri: post_logout_redirect_uri.map(str::to_owned),
            state: state.map(str::to_owned),
            hinted_sid: hint.and_then(|h| h.sid),
        }))
    }

    /// Ends a browser session and every authorization started in it (RP-initiated logout).
    pub async fn end_browser_session(
        &self,
        pool: &Pool,
        session: &BrowserSession,
        meta: &RequestMeta,
    ) -> ServiceResult<usize> {
        let mut w = self.store.write(pool.id).await?;
        let ended = self
            .end_sessions_and_tell(
                w.as_mut(),
                &gatehouse_domain::txn::SessionsToEnd::WithChildren(session.session.id),
                &crate::security_events::Cause::new(
                    gatehouse_domain::security_event::InitiatingEntity::User,
                    "logout",
                ),
            )
            .await?;
        for s in &ended {
            let event = self
                .event(pool, AuditAction::SessionRevoked, None, meta)
                .actor(user_actor(pool, &session.user))
                .subject(&s.username)
                .detail("session_id", s.id)
                .detail("kind", s.kind_name())
                .detail("via", "logout");
            w.audit(&event).await?;
        }
        w.commit().await?;
        Ok(ended.len())
    }

    /// Starts a browser session for `user` in `w` (for a staff member signed in with the
    /// staff account, `staff` names them), with its audit event, and commits.
    pub(crate) async fn start_browser_session(
        &self,
        pool: &Pool,
        w: Box<dyn PoolWrite>,
        user: User,
        staff: Option<Actor>,
        meta: &RequestMeta,
    ) -> ServiceResult<BrowserSignIn> {
        self.start_browser_session_from(pool, w, user, staff, None, meta)
            .await
    }

    /// [`Self::start_browser_session`] for a sign-in at a provider (`upstream`), which is
    /// recorded with the session for the provider's logout.
    pub(crate) async fn start_browser_session_from(
        &self,
        pool: &Pool,
        mut w: Box<dyn PoolWrite>,
        user: User,
        staff: Option<Actor>,
        upstream: Option<crate::federation::UpstreamOrigin>,
        meta: &RequestMeta,
    ) -> ServiceResult<BrowserSignIn> {
        let now = self.now();
        let secret = random_token();
        let session = Session {
            id: SessionId::new_ordered(),
            pool: pool.id,
            user_id: user.id,
            username: user.username.clone(),
            client_id: None,
            kind: SessionKind::Browser {
                secret_sha256: sha256(secret.expose().as_bytes()),
                staff: staff.clone(),
            },
            created_at: now,
            expires_at: now.plus_secs(BROWSER_SESSION_TTL_SECS),
            revoked_at: None,
        };
        let mut event = self
            .event(pool, AuditAction::UserSignedIn, None, meta)
            .actor(staff.clone().unwrap_or_else(|| user_actor(pool, &user)))
            .subject(&user.username)
            .detail("session_id", session.id)
            .detail("via", "browser");
        if staff.is_some() {
            event = event.detail("with", "staff account");
        }
        w.create_session(&session).await?;
        if let Some(origin) = upstream {
            event = event.detail("provider", origin.provider.as_str());
            w.put_federated_session(&self.federated_session_record(pool, &session, origin)?)
                .await?;
        }
        w.audit(&event).await?;
        w.commit().await?;
        let cookie = Secret::new(format!("{}.{}", session.id, secret.expose()));
        Ok(BrowserSignIn::SignedIn {
            session: Box::new(BrowserSession { session, user }),
            cookie,
        })
    }
}

pub(crate) fn user_actor(pool: &Pool, user: &User) -> Actor {
    Actor {
        kind: ActorKind::User,
        id: user.id.to_string(),
        username: Some(user.username.to_string()),
        pool: pool.slug.clone(),
        client_id: None,
    }
}
