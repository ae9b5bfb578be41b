//! What the Cognito user-pool API (`POST {base}/cognito`) needs beyond the API sign-in: the
//! app client a Cognito request names (`SECRET_HASH`), the user an access token proves, the
//! signed-in user's own password change and global sign-out, and the revocation of a refresh
//! token's family.
//!
//! Each change reads the user inside its write transaction and only while the token's
//! session still stands, as self-service does.

use std::sync::Arc;

use gatehouse_crypto::secret::{Secret, sha256};
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::authorization::RefreshTaken;
use gatehouse_domain::client::AppClient;
use gatehouse_domain::ids::ClientId;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::security_event::InitiatingEntity;
use gatehouse_domain::user::{PasswordCredential, User};

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::security_events::Cause;
use crate::tokens::{ClientAuthMethod, ClientCredentials};
use crate::users::user_write_error;
use crate::{Gatehouse, Principal, RequestMeta};

/// Why a Cognito request's app client was refused; each is Cognito's
/// `NotAuthorizedException` with its own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CognitoClientError {
    /// No client of the pool has this id.
    Unknown,
    /// The client holds a secret and the request carried no `SECRET_HASH`.
    SecretHashMissing,
    /// The `SECRET_HASH` could not be verified.
    SecretHashMismatch,
}

impl Gatehouse {
    /// The app client a Cognito request names. A public client needs nothing more. A client
    /// with a secret needs `SECRET_HASH` = Base64(HMAC-SHA256(secret, username + client id));
    /// Gatehouse keeps only the SHA-256 of a client's secret, which cannot key that HMAC, so
    /// such a request is refused (closed) until the secret is kept sealed.
    pub async fn cognito_client(
        &self,
        pool: &Pool,
        client_id: &str,
        secret_hash: Option<&str>,
    ) -> ServiceResult<Result<Arc<AppClient>, CognitoClientError>> {
        let Ok(id) = ClientId::parse(client_id) else {
            return Ok(Err(CognitoClientError::Unknown));
        };
        let Some(client) = self.client(pool.id, &id).await? else {
            return Ok(Err(CognitoClientError::Unknown));
        };
        if client.secret_sha256.is_none() {
            return Ok(Ok(client));
        }
        Ok(Err(match secret_hash {
            None => CognitoClientError::SecretHashMissing,
            Some(_) => CognitoClientError::SecretHashMismatch,
        }))
    }

    /// The user of this pool an access token proves, with the principal it makes.
    pub async fn cognito_user(
        &self,
        pool: &Arc<Pool>,
        access_token: &str,
    ) -> ServiceResult<(Principal, User)> {
        let principal = self.authenticate_bearer(pool, access_token).await?;
        let refused = || ServiceError::Unauthenticated("Invalid Access Token".to_owned());
        if principal.home_pool != pool.slug {
            return Err(refused());
        }
        let id = principal.user_id().ok_or_else(refused)?;
        let user = self
            .store
            .user_by_id(pool.id, id)
            .await?
            .ok_or_else(refused)?;
        Ok((principal, user))
    }

    /// `ChangePassword`: the signed-in user replaces its password, proving the current one.
    /// An impersonated token may not: the impersonator does not know, and must not set, the
    /// user's password.
    pub async fn cognito_change_password(
        &self,
        pool: &Arc<Pool>,
        principal: &Principal,
        previous: &Secret,
        proposed: &Secret,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        if principal.is_impersonated() {
            return Err(ServiceError::Forbidden(
                "an impersonated token cannot change the user's password".to_owned(),
            ));
        }
        let id = principal
            .user_id()
            .ok_or_else(|| ServiceError::Unauthenticated("Invalid Access Token".to_owned()))?;
        let current = self
            .store
            .user_by_id(pool.id, id)
            .await?
            .ok_or_else(|| ServiceError::Unauthenticated("Invalid Access Token".to_owned()))?;
        let wrong = || ServiceError::Unauthenticated("Incorrect username or password.".to_owned());
        let credential = current.password.clone().ok_or_else(wrong)?;
        // argon2 runs before the transaction opens, never while it holds the writer.
        if !self.hasher.verify(&credential.phc, previous).await? {
            return Err(wrong());
        }
        pool.settings.password_policy.check(proposed.expose())?;
        let phc = self.hasher.hash(proposed).await?;
        let mut w = self.store.write(pool.id).await?;
        let mut user = self.own_user_in(w.as_mut(), principal, id).await?;
        // The password checked is still the user's.
        if user.password.as_ref().map(|p| &p.phc) != Some(&credential.phc) {
            return Err(wrong());
        }
        let now = self.now();
        user.password = Some(PasswordCredential {
            phc,
            temporary_until: None,
        });
        user.updated_at = now;
        w.update_user(&user).await.map_err(user_write_error)?;
        let event = self
            .event(pool, AuditAction::UserUpdated, Some(principal), meta)
            .subject(&user.username)
            .detail("change", "password changed by the user");
        w.audit(&event).await?;
        w.commit().await?;
        Ok(())
    }

    /// `GlobalSignOut`: the signed-in user ends every one of its sessions; every token issued
    /// to it until now is refused everywhere (its "not before" time), exactly as an
    /// administrator's sign-out of the user.
    pub async fn cognito_global_sign_out(
        &self,
        pool: &Arc<Pool>,
        principal: &Principal,
        meta: &RequestMeta,
    ) -> ServiceResult<usize> {
        let id = principal
            .user_id()
            .ok_or_else(|| ServiceError::Unauthenticated("Invalid Access Token".to_owned()))?;
        let mut w = self.store.write(pool.id).await?;
        let mut user = self.own_user_in(w.as_mut(), principal, id).await?;
        let now = self.now();
        user.tokens_not_before = Some(now);
        user.updated_at = now;
        w.update_user(&user).await.map_err(user_write_error)?;
        let ended = self
            .end_authority_of(
                w.as_mut(),
                pool,
                principal,
                &user,
                meta,
                &Cause::new(InitiatingEntity::User, "global sign-out"),
            )
            .await?;
        let event = self
            .event(pool, AuditAction::UserSignedOut, Some(principal), meta)
            .subject(&user.username)
            .detail("sessions", ended)
            .detail("via", "GlobalSignOut");
        w.audit(&event).await?;
        w.commit().await?;
        self.revocations.changed(pool.id);
        Ok(ended)
    }

    /// `RevokeToken`: the client (with its secret, if it holds one) ends the family of a
    /// refresh token issued to it (its session, with every access and refresh token of it).
    /// An unknown token, or one of another client, changes nothing (RFC 7009 §2.2).
    pub async fn cognito_revoke_refresh(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
        token: &str,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        let public = match ClientId::parse(client_id) {
            Ok(id) => self
                .client(pool.id, &id)
                .await?
                .filter(|c| c.is_public() && client_secret.is_none()),
            Err(_) => None,
        };
        let client = match public {
            Some(client) => client,
            None => {
                self.confidential_client(pool, client_id, client_secret)
                    .await?
            }
        };
        let now = self.now();
        let mut w = self.store.write(pool.id).await?;
        let taken = match w.take_refresh_token(&sha256(token.as_bytes()), now).await? {
            RefreshTaken::Fresh(t) | RefreshTaken::Reused(t) => t,
            RefreshTaken::Unknown => return Ok(()),
        };
        if taken.client_id != client.client_id {
            // The token stays as it was: the transaction is dropped, not committed.
            return Ok(());
        }
        self.end_family(
            w.as_mut(),
            pool,
            taken.session,
            "revoked (RevokeToken)",
            meta,
        )
        .await?;
        w.commit().await?;
        self.revocations.changed(pool.id);
        Ok(())
    }

    /// A client with a secret, authenticated by it.
    async fn confidential_client(
        &self,
        pool: &Pool,
        client_id: &str,
        client_secret: Option<Secret>,
    ) -> ServiceResult<Arc<AppClient>> {
        self.authenticate_client(
            pool,
            &ClientCredentials {
                client_id: client_id.to_owned(),
                secret: client_secret,
                method: ClientAuthMethod::Post,
                as_sent: None,
            },
        )
        .await
        .map_err(|e| match e {
            ServiceError::OAuth(_) => {
                ServiceError::Unauthenticated("Client authentication failed.".to_owned())
            }
            other => other,
        })
    }
}
