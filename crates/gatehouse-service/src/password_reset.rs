//! Password resets by code: the code sent by message (after an administrator's reset, or when
//! a user says it forgot its password), and the new password set with it.
//!
//! Asking for a code answers the same whether or not the username names anyone: a code is
//! sent only to an enabled user who may reset (one whose password an administrator reset, or
//! a confirmed user with a verified e-mail address), counted against the same per-hour limits
//! as every code (`users/codes.rs`), and a request past them is dropped quietly rather than
//! answered differently. Setting the password takes the code in the transaction that sets it.

use gatehouse_crypto::secret::Secret;
use gatehouse_domain::ParseError;
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::Username;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::session::SessionKind;
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::txn::{PoolWrite, SessionsToEnd};
use gatehouse_domain::user::{PasswordCredential, User, UserStatus, VerifiableAttribute};

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::messages::{MessageKind, OutboundMessage};
use crate::users::{RESET_CODE_TTL_SECS, user_write_error};
use crate::{Gatehouse, RequestMeta};

/// Who started a reset, for the message that carries its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetBy {
    Administrator,
    /// The user, on the sign-in page ("Forgot your password?").
    User,
}

/// Whether a code may reset `user`'s password: an administrator's reset is waiting for one,
/// or the user is confirmed and its e-mail address proven (a code sent to an address that
/// was never proven, such as one a stolen token just set, must not become a password).
fn resettable(user: &User) -> bool {
    user.enabled.is_enabled()
        && match user.status {
            UserStatus::ResetRequired => true,
            UserStatus::Confirmed => user.attributes.email_verified == Some(true),
            _ => false,
        }
}

impl Gatehouse {
    /// Sends `user` its reset code, after the commit that stored it. When the e-mail address
    /// replaced another within the last 24 hours, the previous address is told of the reset
    /// first (without the code); if that notice cannot be delivered, the code is not sent.
    pub(crate) async fn deliver_reset_code(
        &self,
        pool: &Pool,
        user: &User,
        now: Timestamp,
        code: &Secret,
        by: ResetBy,
    ) -> ServiceResult<()> {
        let name = user.username.as_str();
        let what = match by {
            ResetBy::Administrator => {
                format!("The password of {name} was reset by an administrator")
            }
            ResetBy::User => format!("A reset of the password of {name} was asked for"),
        };
        if let Some(previous) = user.recently_replaced_email(now) {
            self.deliver(&OutboundMessage {
                kind: MessageKind::PasswordReset,
                pool: pool.slug.to_string(),
                username: name.to_owned(),
                to_email: Some(previous.to_owned()),
                to_phone: None,
                subject: "The password of your account was reset".to_owned(),
                body: format!(
                    "{what}, and the reset code was sent to the account's new e-mail address, \
                     which replaced this one recently. If you did not change the address, \
                     contact your administrator."
                ),
            })
            .await?;
        }
        let ignore = match by {
            ResetBy::Administrator => "",
            ResetBy::User => " If you did not ask for it, ignore this message.",
        };
        self.deliver(&OutboundMessage {
            kind: MessageKind::PasswordReset,
            pool: pool.slug.to_string(),
            username: name.to_owned(),
            to_email: Some(user.attributes.email.clone()),
            to_phone: user.attributes.phone.clone(),
            subject: "Your password reset code".to_owned(),
            body: format!("{what}. Your reset code is {}.{ignore}", code.expose()),
        })
        .await
    }

    /// "Forgot your password?": sends a reset code to the user `username` names, if it is one
    /// that a code may reset. The answer is the same for every username, and the user's
    /// password and status are left alone until the code is used: asking for a code locks
    /// nobody out. While a code sent earlier is good, the same code is sent again.
    pub async fn forgot_password(
        &self,
        pool: &Pool,
        username: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        let Ok(name) = Username::parse(username) else {
            return Ok(());
        };
        let now = self.now();
        let mut w = self.store.write(pool.id).await?;
        let Some(user) = w.user_by_username(&name).await?.filter(resettable) else {
            return Ok(());
        };
        let code = match self
            .code_to_send(
                w.as_mut(),
                pool,
                &user,
                VerifiableAttribute::Email,
                now,
                RESET_CODE_TTL_SECS,
            )
            .await
        {
            Ok(code) => code,
            // Past the limits: nothing is sent or changed, and the answer stays the same.
            Err(ServiceError::Throttled { .. }) => {
                tracing::info!(pool = %pool.slug, username = %user.username,
                    "a forgotten-password code was not sent: too many codes lately");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let event = self
            .event(pool, AuditAction::UserPasswordReset, None, meta)
            .subject(&user.username)
            .detail("via", "forgot password")
            .detail("change", "reset code sent");
        w.audit(&event).await?;
        w.commit().await?;
        self.deliver_reset_code(pool, &user, now, &code, ResetBy::User)
            .await
    }

    /// Sets a new password with a reset code, in a write transaction returned open for the
    /// caller to commit (the API) or to start a session in first (the sign-in page). The
    /// password must meet the pool's policy (checked first, so that a refused password does
    /// not use the code up); a wrong or expired code is counted against the code, committed,
    /// and refused. The user is confirmed (its e-mail, which received the code, proven), and
    /// every session it had ends: whoever knew the old password no longer holds a token.
    pub(crate) async fn reset_password_with_code(
        &self,
        pool: &Pool,
        username: &str,
        code: &Secret,
        new_password: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<(Box<dyn PoolWrite>, User)> {
        let invalid = || ServiceError::from(ParseError::new("code", "invalid or expired code"));
        pool.settings.password_policy.check(new_password.expose())?;
        // Hashed before the transaction opens (and whoever asks, so timing tells nothing).
        let phc = self.hasher.hash(new_password).await?;
        let mut w = self.store.write(pool.id).await?;
        let user = match Username::parse(username) {
            Ok(u) => w.user_by_username(&u).await?,
            Err(_) => None,
        };
        // A disabled user's administrator reset is still completed (as before); it signs in
        // once enabled. A forgotten-password code needs an enabled, confirmed user.
        let Some(mut user) =
            user.filter(|u| u.status == UserStatus::ResetRequired || resettable(u))
        else {
            return Err(invalid());
        };
        let now = self.now();
        // Compared in constant time; an expired code fails like a wrong one.
        let matches = self
            .check_code(w.as_mut(), user.id, VerifiableAttribute::Email, code, now)
            .await?;
        if !matches {
            // The wrong guess is counted against the code: commit that.
            w.commit().await?;
            return Err(invalid());
        }
        let was = user.status;
        user.password = Some(PasswordCredential {
            phc,
            temporary_until: None,
        });
        user.status = UserStatus::Confirmed;
        user.attributes.email_verified = Some(true);
        user.tokens_not_before = Some(now);
        user.updated_at = now;
        let event = self
            .event(pool, AuditAction::UserUpdated, None, meta)
            .subject(&user.username)
            .detail("change", "password reset confirmed")
            .detail("was", was.as_str());
        w.update_user(&user).await.map_err(user_write_error)?;
        w.audit(&event).await?;
        let cause = crate::security_events::Cause::new(
            gatehouse_domain::security_event::InitiatingEntity::User,
            "password reset confirmed",
        );
        let ended = self
            .end_sessions_and_tell(w.as_mut(), &SessionsToEnd::OfUser(user.id), &cause)
            .await?;
        let changed = gatehouse_domain::security_event::EventKind::CredentialChange {
            credential_type: gatehouse_domain::security_event::CredentialType::Password,
            change_type: gatehouse_domain::security_event::ChangeType::Update,
        };
        self.tell_about_user(w.as_mut(), user.id, changed, &cause.txn)
            .await?;
        for ended in ended {
            let event = match &ended.kind {
                SessionKind::Impersonation { actor, .. } => self
                    .event(pool, AuditAction::ImpersonationEnded, None, meta)
                    .detail("impersonation_id", ended.id)
                    .detail("impersonator", actor.display_name()),
                _ => self
                    .event(pool, AuditAction::SessionRevoked, None, meta)
                    .detail("session_id", ended.id)
                    .detail("kind", ended.kind_name()),
            }
            .subject(&ended.username)
            .detail("via", "password reset confirmed");
            w.audit(&event).await?;
        }
        Ok((w, user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_domain::ids::{PoolId, UserId};
    use gatehouse_domain::user::{Enabled, MfaState, UserAttributes};

    fn user(status: UserStatus, verified: Option<bool>, enabled: Enabled) -> User {
        User {
            id: UserId::new_random(),
            pool: PoolId::new_random(),
            username: Username::parse("ada").unwrap(),
            enabled,
            status,
            attributes: UserAttributes {
                email: "ada@example.com".to_owned(),
                email_verified: verified,
                ..UserAttributes::default()
            },
            contact_id: None,
            password: None,
            tokens_not_before: None,
            mfa: MfaState::NONE,
            previous_email: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn a_code_resets_only_a_waiting_or_a_proven_user() {
        use UserStatus::*;
        assert!(resettable(&user(ResetRequired, None, Enabled::Yes)));
        assert!(resettable(&user(Confirmed, Some(true), Enabled::Yes)));
        // An address never proven does not turn a code into a password.
        assert!(!resettable(&user(Confirmed, None, Enabled::Yes)));
        assert!(!resettable(&user(Confirmed, Some(false), Enabled::Yes)));
        // A temporary password is replaced at sign-in, not by a code.
        assert!(!resettable(&user(
            ForceChangePassword,
            Some(true),
            Enabled::Yes
        )));
        assert!(!resettable(&user(Unconfirmed, Some(true), Enabled::Yes)));
        assert!(!resettable(&user(Confirmed, Some(true), Enabled::No)));
    }
}
