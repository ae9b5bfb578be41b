//! Registering passkeys: with the user's own token, or from its signed-in browser; and the
//! user's list of them.

use gatehouse_crypto::secret::b64url;
use gatehouse_domain::ParseError;
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::passkey::{CeremonyPurpose, PasskeyCredential};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::txn::PoolWrite;
use gatehouse_domain::user::User;
use webauthn_rs::prelude::{PasskeyRegistration, RegisterPublicKeyCredential};

use super::{
    NAME_MAX, PasskeyInfo, challenge_of, internal, malformed, may_sign_in, no_ceremony,
    parse_passkey, user_uuid,
};
use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::principal::Principal;
use crate::users::self_service::own_id;
use crate::{Gatehouse, RequestMeta};

impl Gatehouse {
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
            user.id,
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
            .filter(|c| c.purpose == CeremonyPurpose::Registration && c.user_id == user.id)
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

fn refuse_impersonation(principal: &Principal) -> ServiceResult<()> {
    if principal.is_impersonated() {
        return Err(ServiceError::Forbidden(
            "an impersonated token cannot register or remove a passkey".to_owned(),
        ));
    }
    Ok(())
}
