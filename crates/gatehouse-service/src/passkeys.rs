//! Passkeys (WebAuthn, through webauthn-rs): registration by a signed-in user, the
//! `WEB_AUTHN` second factor after a password, and passwordless sign-in with a discoverable
//! credential.
//!
//! The relying party is the pool's issuer: its host is the RP ID and its origin the only
//! origin accepted. Every ceremony's state waits in the database under the SHA-256 of its
//! challenge, for five minutes, and is taken (deleted) by the transaction that finishes it,
//! whether the answer passes or not: a ceremony is answered once. The challenge is read back
//! from the answer's `clientDataJSON`, so Cognito's `CompleteWebAuthnRegistration`, which
//! carries no handle of ours, finds its ceremony as the API does.
//!
//! User verification is always required (webauthn-rs' passkey ceremonies ask for it and
//! refuse an assertion without the UV flag): a passkey is something the user has *and*
//! something it is or knows, which is what lets it sign in without a password.
//!
//! The signature counter must grow (WebAuthn §7.2 step 21): webauthn-rs refuses an assertion
//! whose counter does not exceed the one in the ceremony's state, and the finishing
//! transaction compares it again with the stored counter (two ceremonies started from one
//! counter cannot both pass) and records it with a compare-and-set. A regression is refused
//! and audited as `user.passkey_sign_count_regressed`: the sign of a cloned authenticator.
//! Failed assertions count toward the username's lockout like wrong codes.

use std::collections::BTreeMap;
use std::time::Duration;

use gatehouse_crypto::secret::{Secret, b64url, b64url_decode, sha256};
use gatehouse_domain::ParseError;
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::UserId;
use gatehouse_domain::lockout::LockoutPolicy;
use gatehouse_domain::mfa::MfaMode;
use gatehouse_domain::passkey::{
    CEREMONY_TTL_SECS, Ceremony, CeremonyPurpose, PasskeyCredential, PasskeyUse,
};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::txn::PoolWrite;
use gatehouse_domain::user::{User, UserStatus};
use serde::Deserialize;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
    WebauthnError,
};

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::principal::Principal;
use crate::signin::SignInOutcome;
use crate::users::self_service::own_id;
use crate::{Gatehouse, RequestMeta};

pub const WEB_AUTHN: &str = "WEB_AUTHN";
pub const SELECT_MFA_TYPE: &str = "SELECT_MFA_TYPE";
/// The challenge parameter naming the factors a `SELECT_MFA_TYPE` may be answered with.
pub const MFAS_CAN_CHOOSE: &str = "MFAS_CAN_CHOOSE";
/// The challenge parameter carrying a `WEB_AUTHN` challenge's request options (JSON).
pub const CREDENTIAL_REQUEST_OPTIONS: &str = "CREDENTIAL_REQUEST_OPTIONS";
/// The longest name a passkey may be given.
const NAME_MAX: usize = 64;

/// The challenge parameters a sign-in step answers beside its name and session.
pub type ChallengeParameters = BTreeMap<&'static str, String>;

/// A passkey as its owner sees it.
#[derive(Debug, Clone)]
pub struct PasskeyInfo {
    pub credential_id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub backup_eligible: bool,
    pub backup_state: bool,
}

impl From<&PasskeyCredential> for PasskeyInfo {
    fn from(p: &PasskeyCredential) -> Self {
        PasskeyInfo {
            credential_id: p.credential_id.clone(),
            name: p.name.clone(),
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
        }
    }
}

fn expired() -> ServiceError {
    ServiceError::Unauthenticated("invalid or expired session".to_owned())
}

fn no_ceremony() -> ServiceError {
    ServiceError::Unauthenticated("the passkey ceremony is unknown, used or expired".to_owned())
}

fn refused() -> ServiceError {
    ServiceError::Unauthenticated("the passkey was refused".to_owned())
}

fn malformed(what: &'static str, detail: impl std::fmt::Display) -> ServiceError {
    ServiceError::Invalid(ParseError::new(
        what,
        format!("not a WebAuthn {what}: {detail}"),
    ))
}

fn internal(detail: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal(format!("webauthn: {detail}"))
}

/// The challenge a browser signed, read from `clientDataJSON`: the ceremony's key.
fn challenge_of(client_data_json: &[u8]) -> Option<[u8; 32]> {
    #[derive(Deserialize)]
    struct ClientData {
        challenge: String,
    }
    let data: ClientData = serde_json::from_slice(client_data_json).ok()?;
    let challenge = b64url_decode(&data.challenge)?;
    Some(sha256(&challenge))
}

fn user_uuid(id: UserId) -> ServiceResult<Uuid> {
    Uuid::parse_str(&id.to_string()).map_err(internal)
}

/// A passkey may sign in only a user who could sign in with its password now.
fn may_sign_in(user: &User) -> bool {
    user.enabled.is_enabled()
        && !matches!(
            user.status,
            UserStatus::ResetRequired | UserStatus::ForceChangePassword
        )
}

/// How an assertion failed, for the audit log and the lockout.
enum Refusal {
    /// The counter did not grow: a cloned authenticator.
    Regressed {
        credential_id: String,
        presented: u32,
    },
    /// Anything else: a bad signature, no user verification, another origin or challenge,
    /// a credential that is not the user's.
    Invalid(String),
}

impl Gatehouse {
    /// The pool's relying party: its issuer's host as RP ID, its issuer's origin.
    fn webauthn(&self, pool: &Pool) -> ServiceResult<Webauthn> {
        let issuer = Url::parse(&self.issuer(pool)).map_err(internal)?;
        let rp_id = issuer
            .host_str()
            .ok_or_else(|| internal("the issuer has no host"))?
            .to_owned();
        let origin = Url::parse(&issuer.origin().ascii_serialization()).map_err(internal)?;
        WebauthnBuilder::new(&rp_id, &origin)
            .map_err(internal)?
            .rp_name(pool.slug.as_str())
            .timeout(Duration::from_secs(CEREMONY_TTL_SECS.unsigned_abs()))
            .build()
            .map_err(internal)
    }

    fn ceremony(
        &self,
        pool: &Pool,
        challenge: &[u8],
        purpose: CeremonyPurpose,
        user: Option<UserId>,
        state: String,
    ) -> Ceremony {
        Ceremony {
            pool: pool.id,
            handle_sha256: sha256(challenge),
            purpose,
            user_id: user,
            state,
            expires_at: self.now().plus_secs(CEREMONY_TTL_SECS),
        }
    }

    /// Starts registering a passkey for the caller (its own access token, never an
    /// impersonated one). Answers `PublicKeyCredentialCreationOptionsJSON`, the argument of
    /// `navigator.credentials.create({publicKey})`; the ceremony waits five minutes.
    pub async fn start_passkey_registration(
        &self,
        pool: &Pool,
        principal: &Principal,
    ) -> ServiceResult<serde_json::Value> {
        refuse_impersonation(principal)?;
        let id = own_id(pool, principal)?;
        let mut w = self.store.write(pool.id).await?;
        let user = self.own_user_in(w.as_mut(), principal, id).await?;
        self.start_registration_in(w, pool, &user).await
    }

    /// Starts registering a passkey for the user of a signed-in browser (its own sign-in,
    /// not a staff member's acting for it).
    pub async fn browser_start_passkey_registration(
        &self,
        pool: &Pool,
        cookie: &str,
    ) -> ServiceResult<serde_json::Value> {
        let found = self.browser_session(pool, cookie).await?;
        let mut w = self.store.write(pool.id).await?;
        let user = self.browser_user_in(w.as_mut(), found).await?;
        self.start_registration_in(w, pool, &user).await
    }

    /// The user of a browser session found by its cookie, read again inside `w`: the session
    /// still active and the user's own.
    async fn browser_user_in(
        &self,
        w: &mut dyn PoolWrite,
        found: Option<crate::browser::BrowserSession>,
    ) -> ServiceResult<User> {
        let signed_out =
            || ServiceError::Unauthenticated("sign in first to manage passkeys".to_owned());
        let found = found.ok_or_else(signed_out)?;
        if found.session.staff().is_some() {
            return Err(ServiceError::Forbidden(
                "a staff member acting for a user cannot register its passkeys".to_owned(),
            ));
        }
        let session = w
            .session(found.session.id)
            .await?
            .filter(|s| s.is_active_at(self.now()) && s.user_id == found.user.id)
            .ok_or_else(signed_out)?;
        w.user_by_id(session.user_id)
            .await?
            .filter(may_sign_in)
            .ok_or_else(signed_out)
    }

    async fn start_registration_in(
        &self,
        mut w: Box<dyn PoolWrite>,
        pool: &Pool,
        user: &User,
    ) -> ServiceResult<serde_json::Value> {
        let webauthn = self.webauthn(pool)?;
        let mut exclude = Vec::new();
        for p in w.passkeys_of_user(user.id).await? {
            exclude.push(parse_passkey(&p)?.cred_id().clone());
        }
        let display = if user.attributes.email.is_empty() {
            user.username.to_string()
        } else {
            user.attributes.email.clone()
        };
        let (options, state) = webauthn
            .start_passkey_registration(
                user_uuid(user.id)?,
                user.username.as_str(),
                &display,
                Some(exclude).filter(|e| !e.is_empty()),
            )
            .map_err(internal)?;
        let state = serde_json::to_string(&state).map_err(internal)?;
        let challenge = options.public_key.challenge.to_vec();
        let mut public_key = serde_json::to_value(&options.public_key).map_err(internal)?;
        // A discoverable credential, so that it can sign in without a username.
        if let Some(sel) = public_key.get_mut("authenticatorSelection") {
            sel["residentKey"] = "required".into();
            sel["requireResidentKey"] = true.into();
        }
        w.put_ceremony(&self.ceremony(
            pool,
            &challenge,
            CeremonyPurpose::Registration,
            Some(user.id),
            state,
        ))
        .await?;
        w.commit().await?;
        Ok(public_key)
    }

    /// Finishes the caller's registration with the browser's `RegistrationResponseJSON`: the
    /// ceremony is taken, the attestation verified for this origin and RP ID, and the
    /// passkey stored as the user's factor.
    pub async fn finish_passkey_registration(
        &self,
        pool: &Pool,
        principal: &Principal,
        credential: &serde_json::Value,
        name: Option<&str>,
        meta: &RequestMeta,
    ) -> ServiceResult<PasskeyInfo> {
        refuse_impersonation(principal)?;
        let id = own_id(pool, principal)?;
        let (reg, name) = parse_registration(credential, name)?;
        let mut w = self.store.write(pool.id).await?;
        let user = self.own_user_in(w.as_mut(), principal, id).await?;
        self.finish_registration_in(w, pool, user, &reg, name, meta)
            .await
    }

    /// Finishes a signed-in browser's registration (see [`Self::finish_passkey_registration`]).
    pub async fn browser_finish_passkey_registration(
        &self,
        pool: &Pool,
        cookie: &str,
        credential: &serde_json::Value,
        name: Option<&str>,
        meta: &RequestMeta,
    ) -> ServiceResult<PasskeyInfo> {
        let (reg, name) = parse_registration(credential, name)?;
        let found = self.browser_session(pool, cookie).await?;
        let mut w = self.store.write(pool.id).await?;
        let user = self.browser_user_in(w.as_mut(), found).await?;
        self.finish_registration_in(w, pool, user, &reg, name, meta)
            .await
    }

    /// The passkeys of a signed-in browser's user.
    pub async fn browser_passkeys(
        &self,
        pool: &Pool,
        cookie: &str,
    ) -> ServiceResult<Vec<PasskeyInfo>> {
        let found = self.browser_session(pool, cookie).await?;
        let mut w = self.store.write(pool.id).await?;
        let user = self.browser_user_in(w.as_mut(), found).await?;
        let list = w.passkeys_of_user(user.id).await?;
        drop(w);
        Ok(list.iter().map(PasskeyInfo::from).collect())
    }

    async fn finish_registration_in(
        &self,
        mut w: Box<dyn PoolWrite>,
        pool: &Pool,
        mut user: User,
        reg: &RegisterPublicKeyCredential,
        name: String,
        meta: &RequestMeta,
    ) -> ServiceResult<PasskeyInfo> {
        let handle = challenge_of(&reg.response.client_data_json).ok_or_else(no_ceremony)?;
        let webauthn = self.webauthn(pool)?;
        let now = self.now();
        let ceremony = w
            .take_ceremony(&handle, now)
            .await?
            .filter(|c| c.purpose == CeremonyPurpose::Registration && c.user_id == Some(user.id))
            .ok_or_else(no_ceremony)?;
        let state: PasskeyRegistration = serde_json::from_str(&ceremony.state).map_err(internal)?;
        let passkey = match webauthn.finish_passkey_registration(reg, &state) {
            Ok(p) => p,
            Err(e) => {
                // The ceremony is used up all the same.
                let event = self
                    .event(pool, AuditAction::UserPasskeyRefused, None, meta)
                    .subject(&user.username)
                    .detail("ceremony", "registration")
                    .detail("reason", e.to_string())
                    .denied();
                w.audit(&event).await?;
                w.commit().await?;
                return Err(ServiceError::Unauthenticated(format!(
                    "the passkey's registration was refused: {e}"
                )));
            }
        };
        let credential_id = b64url(passkey.cred_id().as_ref());
        let stored = PasskeyCredential {
            pool: pool.id,
            user_id: user.id,
            credential_id: credential_id.clone(),
            passkey: serde_json::to_string(&passkey).map_err(internal)?,
            sign_count: 0,
            backup_eligible: false,
            backup_state: false,
            name,
            created_at: now,
            last_used_at: None,
        };
        w.add_passkey(&stored).await.map_err(|e| match e {
            gatehouse_domain::store::StoreError::Conflict(_) => {
                ServiceError::Conflict("this passkey is already registered".to_owned())
            }
            other => other.into(),
        })?;
        user.mfa = user.mfa.with_passkey();
        user.updated_at = now;
        w.update_user(&user)
            .await
            .map_err(crate::users::user_write_error)?;
        let event = self
            .event(pool, AuditAction::UserPasskeyRegistered, None, meta)
            .subject(&user.username)
            .detail("credential_id", &credential_id)
            .detail("name", &stored.name);
        w.audit(&event).await?;
        w.commit().await?;
        Ok(PasskeyInfo::from(&stored))
    }

    /// The caller's passkeys.
    pub async fn list_own_passkeys(
        &self,
        pool: &Pool,
        principal: &Principal,
    ) -> ServiceResult<Vec<PasskeyInfo>> {
        let id = own_id(pool, principal)?;
        let mut w = self.store.write(pool.id).await?;
        let user = self.own_user_in(w.as_mut(), principal, id).await?;
        let list = w.passkeys_of_user(user.id).await?;
        drop(w);
        Ok(list.iter().map(PasskeyInfo::from).collect())
    }

    /// Deletes one of the caller's passkeys (its own, non-impersonated token).
    pub async fn delete_own_passkey(
        &self,
        pool: &Pool,
        principal: &Principal,
        credential_id: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        refuse_impersonation(principal)?;
        let id = own_id(pool, principal)?;
        let mut w = self.store.write(pool.id).await?;
        let mut user = self.own_user_in(w.as_mut(), principal, id).await?;
        if !w.delete_passkey(user.id, credential_id).await? {
            return Err(ServiceError::NotFound("passkey"));
        }
        if w.passkeys_of_user(user.id).await?.is_empty() {
            user.mfa = user.mfa.without_passkey();
            user.updated_at = self.now();
            w.update_user(&user)
                .await
                .map_err(crate::users::user_write_error)?;
        }
        let event = self
            .event(pool, AuditAction::UserPasskeyDeleted, None, meta)
            .subject(&user.username)
            .detail("credential_id", credential_id);
        w.audit(&event).await?;
        w.commit().await?;
        Ok(())
    }

    /// The session and parameters of a second-factor challenge `challenge` for `user`, bound
    /// to `audience`: `WEB_AUTHN` starts an assertion ceremony over the user's passkeys and
    /// carries its options; `SELECT_MFA_TYPE` names the factors to choose from.
    pub(crate) async fn mfa_step(
        &self,
        pool: &Pool,
        user: &User,
        audience: &str,
        challenge: &'static str,
    ) -> ServiceResult<(Secret, ChallengeParameters)> {
        let mut parameters = ChallengeParameters::new();
        match challenge {
            WEB_AUTHN => {
                let options = self.start_second_factor(pool, user).await?;
                parameters.insert(CREDENTIAL_REQUEST_OPTIONS, options.to_string());
            }
            SELECT_MFA_TYPE => {
                parameters.insert(
                    MFAS_CAN_CHOOSE,
                    serde_json::json!([crate::mfa::SOFTWARE_TOKEN_MFA, WEB_AUTHN]).to_string(),
                );
            }
            _ => {}
        }
        let session = self
            .challenge_session(pool, user, audience, challenge)
            .await?;
        Ok((session, parameters))
    }

    /// A sign-in step's outcome for the API: the challenge, its session and parameters.
    pub(crate) async fn mfa_outcome(
        &self,
        pool: &Pool,
        user: &User,
        audience: &str,
        challenge: &'static str,
    ) -> ServiceResult<SignInOutcome> {
        let (session, parameters) = self.mfa_step(pool, user, audience, challenge).await?;
        Ok(SignInOutcome::Mfa {
            challenge,
            session,
            parameters,
        })
    }

    /// Starts an assertion over `user`'s passkeys; answers
    /// `PublicKeyCredentialRequestOptionsJSON`.
    async fn start_second_factor(
        &self,
        pool: &Pool,
        user: &User,
    ) -> ServiceResult<serde_json::Value> {
        let webauthn = self.webauthn(pool)?;
        let mut w = self.store.write(pool.id).await?;
        let mut passkeys = Vec::new();
        for p in w.passkeys_of_user(user.id).await? {
            passkeys.push(parse_passkey(&p)?);
        }
        if passkeys.is_empty() {
            return Err(expired());
        }
        let (options, state) = webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(internal)?;
        let state = serde_json::to_string(&state).map_err(internal)?;
        let challenge = options.public_key.challenge.to_vec();
        w.put_ceremony(&self.ceremony(
            pool,
            &challenge,
            CeremonyPurpose::SecondFactor,
            Some(user.id),
            state,
        ))
        .await?;
        w.commit().await?;
        serde_json::to_value(&options.public_key).map_err(internal)
    }

    /// Answers `SELECT_MFA_TYPE` through the API: the session is used up and the chosen
    /// factor's challenge follows.
    pub async fn respond_select_mfa_type(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        session: &str,
        answer: &str,
    ) -> ServiceResult<SignInOutcome> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        let (user, chosen) = self
            .answer_select_mfa_type(pool, client.client_id.as_str(), session, answer)
            .await?;
        self.mfa_outcome(pool, &user, client.client_id.as_str(), chosen)
            .await
    }

    /// Takes a `SELECT_MFA_TYPE` session bound to `audience` and reads the choice.
    pub(crate) async fn answer_select_mfa_type(
        &self,
        pool: &Pool,
        audience: &str,
        session: &str,
        answer: &str,
    ) -> ServiceResult<(User, &'static str)> {
        let chosen = match answer {
            crate::mfa::SOFTWARE_TOKEN_MFA => crate::mfa::SOFTWARE_TOKEN_MFA,
            WEB_AUTHN => WEB_AUTHN,
            _ => {
                return Err(ServiceError::Invalid(ParseError::new(
                    "answer",
                    "choose SOFTWARE_TOKEN_MFA or WEB_AUTHN",
                )));
            }
        };
        let claims = self
            .verify_challenge(pool, audience, session, SELECT_MFA_TYPE)
            .await?;
        let user_id = UserId::parse(&claims.sub).map_err(|_| expired())?;
        let mut w = self.store.write(pool.id).await?;
        if !w
            .use_once(&claims.jti, self.now(), Timestamp(claims.exp))
            .await?
        {
            return Err(expired());
        }
        let user = w
            .user_by_id(user_id)
            .await?
            .filter(|u| u.enabled.is_enabled())
            .ok_or_else(expired)?;
        w.commit().await?;
        Ok((user, chosen))
    }

    /// Answers `WEB_AUTHN` through the API with `AuthenticationResponseJSON`.
    pub async fn respond_web_authn(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        session: &str,
        credential: &serde_json::Value,
        meta: &RequestMeta,
    ) -> ServiceResult<SignInOutcome> {
        let client = self.sign_in_client(pool, client_id, client_secret).await?;
        let (w, user) = self
            .answer_web_authn(pool, client.client_id.as_str(), session, credential, meta)
            .await?;
        self.start_session(pool, &client, w, &user, meta).await
    }

    /// Checks an answer to `WEB_AUTHN` bound to `audience`, and answers the open
    /// transaction to sign the user in with (the session used up, the ceremony taken, the
    /// counter recorded).
    pub(crate) async fn answer_web_authn(
        &self,
        pool: &Pool,
        audience: &str,
        session: &str,
        credential: &serde_json::Value,
        meta: &RequestMeta,
    ) -> ServiceResult<(Box<dyn PoolWrite>, User)> {
        let claims = self
            .verify_challenge(pool, audience, session, WEB_AUTHN)
            .await?;
        if pool.settings.mfa == MfaMode::Off {
            return Err(expired());
        }
        let user_id = UserId::parse(&claims.sub).map_err(|_| expired())?;
        let known = self
            .store
            .user_by_id(pool.id, user_id)
            .await?
            .ok_or_else(expired)?;
        self.code_attempt_allowed(pool, &known.username).await?;
        let assertion: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|e| malformed("credential", e))?;
        let handle = challenge_of(&assertion.response.client_data_json).ok_or_else(no_ceremony)?;
        let webauthn = self.webauthn(pool)?;
        let now = self.now();
        let mut w = self.store.write(pool.id).await?;
        let user = w
            .user_by_id(user_id)
            .await?
            .filter(|u| u.enabled.is_enabled())
            .ok_or_else(expired)?;
        let ceremony = w
            .take_ceremony(&handle, now)
            .await?
            .filter(|c| c.purpose == CeremonyPurpose::SecondFactor && c.user_id == Some(user.id));
        let Some(ceremony) = ceremony else {
            drop(w);
            return Err(no_ceremony());
        };
        let state: PasskeyAuthentication =
            serde_json::from_str(&ceremony.state).map_err(internal)?;
        let credential_id = b64url(assertion.get_credential_id());
        let stored = w
            .passkey(&credential_id)
            .await?
            .filter(|p| p.user_id == user.id);
        let checked = match stored {
            Some(stored) => {
                let result = webauthn.finish_passkey_authentication(&assertion, &state);
                self.check_assertion(w.as_mut(), stored, result, now)
                    .await?
            }
            None => Err(Refusal::Invalid("not a passkey of this user".to_owned())),
        };
        if let Err(refusal) = checked {
            return Err(self.refuse_assertion(pool, w, &user, refusal, meta).await?);
        }
        // The claim: of answers racing on one challenge, exactly one passes.
        if !w.use_once(&claims.jti, now, Timestamp(claims.exp)).await? {
            return Err(expired());
        }
        let event = self
            .event(pool, AuditAction::UserPasskeyUsed, None, meta)
            .subject(&user.username)
            .detail("challenge", WEB_AUTHN)
            .detail("credential_id", &credential_id);
        w.audit(&event).await?;
        if self
            .store
            .sign_in_failures(pool.id, &user.username)
            .await?
            .is_some()
        {
            w.clear_sign_in_failures(&user.username).await?;
        }
        Ok((w, user))
    }

    /// Starts a passwordless sign-in: options for a discoverable credential, which names its
    /// user. Answers `PublicKeyCredentialRequestOptionsJSON`.
    pub async fn start_passwordless(&self, pool: &Pool) -> ServiceResult<serde_json::Value> {
        let webauthn = self.webauthn(pool)?;
        let (options, state) = webauthn
            .start_discoverable_authentication()
            .map_err(internal)?;
        let state = serde_json::to_string(&state).map_err(internal)?;
        let challenge = options.public_key.challenge.to_vec();
        let mut w = self.store.write(pool.id).await?;
        w.put_ceremony(&self.ceremony(
            pool,
            &challenge,
            CeremonyPurpose::Passwordless,
            None,
            state,
        ))
        .await?;
        w.commit().await?;
        serde_json::to_value(&options.public_key).map_err(internal)
    }

    /// Finishes a passwordless sign-in: the credential's user handle names the user, whose
    /// passkey must verify. Answers the open transaction to sign the user in with.
    pub(crate) async fn finish_passwordless(
        &self,
        pool: &Pool,
        credential: &serde_json::Value,
        meta: &RequestMeta,
    ) -> ServiceResult<(Box<dyn PoolWrite>, User)> {
        let assertion: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|e| malformed("credential", e))?;
        let handle = challenge_of(&assertion.response.client_data_json).ok_or_else(no_ceremony)?;
        let webauthn = self.webauthn(pool)?;
        let (uuid, raw_id) = webauthn
            .identify_discoverable_authentication(&assertion)
            .map_err(|_| refused())?;
        let user_id = UserId::parse(&uuid.to_string()).map_err(|_| refused())?;
        let credential_id = b64url(raw_id);
        if let Some(known) = self.store.user_by_id(pool.id, user_id).await? {
            self.code_attempt_allowed(pool, &known.username).await?;
        }
        let now = self.now();
        let mut w = self.store.write(pool.id).await?;
        let ceremony = w
            .take_ceremony(&handle, now)
            .await?
            .filter(|c| c.purpose == CeremonyPurpose::Passwordless);
        let Some(ceremony) = ceremony else {
            drop(w);
            return Err(no_ceremony());
        };
        let state: DiscoverableAuthentication =
            serde_json::from_str(&ceremony.state).map_err(internal)?;
        let Some(user) = w.user_by_id(user_id).await?.filter(may_sign_in) else {
            w.commit().await?;
            return Err(refused());
        };
        let stored = w
            .passkey(&credential_id)
            .await?
            .filter(|p| p.user_id == user.id);
        let checked = match stored {
            Some(stored) => {
                let passkey = parse_passkey(&stored)?;
                let result =
                    webauthn.finish_discoverable_authentication_v2(&assertion, state, &passkey);
                self.check_assertion(w.as_mut(), stored, result, now)
                    .await?
            }
            None => Err(Refusal::Invalid("not a passkey of this user".to_owned())),
        };
        if let Err(refusal) = checked {
            return Err(self.refuse_assertion(pool, w, &user, refusal, meta).await?);
        }
        let event = self
            .event(pool, AuditAction::UserPasskeyUsed, None, meta)
            .subject(&user.username)
            .detail("challenge", "PASSWORDLESS")
            .detail("credential_id", &credential_id);
        w.audit(&event).await?;
        if self
            .store
            .sign_in_failures(pool.id, &user.username)
            .await?
            .is_some()
        {
            w.clear_sign_in_failures(&user.username).await?;
        }
        Ok((w, user))
    }

    /// After webauthn-rs checked an assertion against `stored`: the counter compared with
    /// the stored one (read in this transaction) and recorded by compare-and-set.
    async fn check_assertion(
        &self,
        w: &mut dyn PoolWrite,
        stored: PasskeyCredential,
        result: Result<webauthn_rs::prelude::AuthenticationResult, WebauthnError>,
        now: Timestamp,
    ) -> ServiceResult<Result<(), Refusal>> {
        let result = match result {
            Ok(r) => r,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                return Ok(Err(Refusal::Regressed {
                    credential_id: stored.credential_id,
                    presented: 0,
                }));
            }
            Err(e) => return Ok(Err(Refusal::Invalid(e.to_string()))),
        };
        if !result.user_verified() {
            return Ok(Err(Refusal::Invalid("no user verification".to_owned())));
        }
        let presented = result.counter();
        if stored.counter_regressed(presented) {
            return Ok(Err(Refusal::Regressed {
                credential_id: stored.credential_id,
                presented,
            }));
        }
        let mut passkey = parse_passkey(&stored)?;
        passkey.update_credential(&result);
        let used = PasskeyUse {
            credential_id: stored.credential_id.clone(),
            expected_sign_count: stored.sign_count,
            sign_count: presented,
            backup_state: result.backup_state(),
            backup_eligible: result.backup_eligible(),
            passkey: serde_json::to_string(&passkey).map_err(internal)?,
            at: now,
        };
        if !w.record_passkey_use(&used).await? {
            return Ok(Err(Refusal::Regressed {
                credential_id: stored.credential_id,
                presented,
            }));
        }
        Ok(Ok(()))
    }

    /// Refuses an assertion: the ceremony stays taken (committed with the audit event), and
    /// the failure counts toward the username's lockout.
    async fn refuse_assertion(
        &self,
        pool: &Pool,
        mut w: Box<dyn PoolWrite>,
        user: &User,
        refusal: Refusal,
        meta: &RequestMeta,
    ) -> ServiceResult<ServiceError> {
        let event = match refusal {
            Refusal::Regressed {
                credential_id,
                presented,
            } => self
                .event(pool, AuditAction::UserPasskeySignCountRegressed, None, meta)
                .subject(&user.username)
                .detail("credential_id", credential_id)
                .detail("presented", presented)
                .denied(),
            Refusal::Invalid(reason) => self
                .event(pool, AuditAction::UserPasskeyRefused, None, meta)
                .subject(&user.username)
                .detail("reason", reason)
                .denied(),
        };
        w.audit(&event).await?;
        w.commit().await?;
        self.count_sign_in_failure(
            pool,
            &user.username,
            &LockoutPolicy::default(),
            self.now(),
            meta,
        )
        .await?;
        Ok(refused())
    }
}

/// A registration response and the name to give the passkey ("Passkey" when none).
fn parse_registration(
    credential: &serde_json::Value,
    name: Option<&str>,
) -> ServiceResult<(RegisterPublicKeyCredential, String)> {
    let reg: RegisterPublicKeyCredential =
        serde_json::from_value(credential.clone()).map_err(|e| malformed("credential", e))?;
    let name = match name.map(str::trim) {
        Some(n)
            if n.is_empty() || n.chars().count() > NAME_MAX || n.chars().any(char::is_control) =>
        {
            return Err(ServiceError::Invalid(ParseError::new(
                "name",
                format!("a passkey's name is 1 to {NAME_MAX} printable characters"),
            )));
        }
        Some(n) => n.to_owned(),
        None => "Passkey".to_owned(),
    };
    Ok((reg, name))
}

fn parse_passkey(stored: &PasskeyCredential) -> ServiceResult<Passkey> {
    serde_json::from_str(&stored.passkey).map_err(internal)
}

fn refuse_impersonation(principal: &Principal) -> ServiceResult<()> {
    if principal.is_impersonated() {
        return Err(ServiceError::Forbidden(
            "an impersonated token cannot register or remove a passkey".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceremony_key_is_the_challenge_signed() {
        let data = br#"{"type":"webauthn.get","challenge":"AQID","origin":"http://localhost:1"}"#;
        assert_eq!(challenge_of(data), Some(sha256(&[1, 2, 3])));
        assert_eq!(challenge_of(b"{}"), None);
        assert_eq!(challenge_of(b"not json"), None);
        assert_eq!(challenge_of(br#"{"challenge":"***"}"#), None);
    }
}
