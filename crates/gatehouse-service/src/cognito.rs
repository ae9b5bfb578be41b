//! What the Cognito user-pool API (`POST {base}/cognito`) needs beyond the API sign-in: the
//! app client a Cognito request names (`SECRET_HASH`), the user an access token proves, the
//! signed-in user's own password change and global sign-out, and the revocation of a refresh
//! token's family.
//!
//! Each change reads the user inside its write transaction and only while the token's
//! session still stands, as self-service does.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gatehouse_crypto::secret::{Secret, constant_time_eq, hmac_sha256, sha256};
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::authorization::RefreshTaken;
use gatehouse_domain::client::AppClient;
use gatehouse_domain::ids::{ClientId, SessionId, UserId};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::security_event::InitiatingEntity;
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::user::{PasswordCredential, User};

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::id_tokens::IdTokenFacts;
use crate::principal::Subject;
use crate::security_events::Cause;
use crate::signin::PasswordChecked;
use crate::tokens::{ClientAuthMethod, ClientCredentials, IssuedToken};
use crate::users::user_write_error;
use crate::{Gatehouse, Principal, RequestMeta};

/// The app client of a Cognito request, with its secret once `SECRET_HASH` proved it, for
/// the sign-in services that authenticate the client by it.
pub struct CognitoClient {
    pub client: Arc<AppClient>,
    pub secret: Option<Secret>,
}

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

/// Cognito's `SECRET_HASH` of `username` for a client: Base64(HMAC-SHA256(key = the
/// client's secret, message = username + client id)).
pub fn secret_hash(secret: &Secret, username: &str, client_id: &str) -> String {
    let mut message = username.as_bytes().to_vec();
    message.extend_from_slice(client_id.as_bytes());
    STANDARD.encode(hmac_sha256(secret.expose().as_bytes(), &message))
}

/// Whether `presented` is the `SECRET_HASH` of `username` for the client, compared in
/// constant time.
fn secret_hash_matches(secret: &Secret, username: &str, client_id: &str, presented: &str) -> bool {
    let expected = secret_hash(secret, username, client_id);
    constant_time_eq(expected.as_bytes(), presented.as_bytes())
}

impl Gatehouse {
    /// The app client a Cognito request names. A public client needs nothing more. A client
    /// with a secret needs `SECRET_HASH` = Base64(HMAC-SHA256(key = the client's secret,
    /// message = `username` + client id)), compared in constant time; its secret is opened
    /// from its sealed copy (a client created before that copy was kept cannot be checked,
    /// and is refused).
    pub async fn cognito_client(
        &self,
        pool: &Pool,
        client_id: &str,
        username: &str,
        secret_hash: Option<&str>,
    ) -> ServiceResult<Result<CognitoClient, CognitoClientError>> {
        let Ok(id) = ClientId::parse(client_id) else {
            return Ok(Err(CognitoClientError::Unknown));
        };
        let Some(client) = self.client(pool.id, &id).await? else {
            return Ok(Err(CognitoClientError::Unknown));
        };
        if client.secret_sha256.is_none() {
            return Ok(Ok(CognitoClient {
                client,
                secret: None,
            }));
        }
        let Some(presented) = secret_hash else {
            return Ok(Err(CognitoClientError::SecretHashMissing));
        };
        let secret = client.secret_sealed.as_deref().and_then(|sealed| {
            self.keyring
                .open_code(pool.id, &AppClient::secret_label(&client.client_id), sealed)
        });
        let Some(secret) = secret else {
            return Ok(Err(CognitoClientError::SecretHashMismatch));
        };
        if secret_hash_matches(&secret, username, client.client_id.as_str(), presented) {
            Ok(Ok(CognitoClient {
                client,
                secret: Some(secret),
            }))
        } else {
            Ok(Err(CognitoClientError::SecretHashMismatch))
        }
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
        let (id, username) = match &principal.subject {
            Subject::User { id, username } if principal.home_pool == pool.slug => {
                (*id, username.clone())
            }
            _ => {
                return Err(ServiceError::Unauthenticated(
                    "Invalid Access Token".to_owned(),
                ));
            }
        };
        pool.settings.password_policy.check(proposed.expose())?;
        // Hashed before any transaction opens: the writer is never held across argon2.
        let phc = self.hasher.hash(proposed).await?;
        // The current password is checked as a sign-in checks it: the username's lockout,
        // and a wrong one counted toward it.
        let mut w = match self
            .check_password(pool, username.as_str(), previous, meta)
            .await?
        {
            PasswordChecked::SignedIn { w, .. } => w,
            // A temporary password is replaced through NEW_PASSWORD_REQUIRED, not here.
            PasswordChecked::NewPasswordRequired { .. } => {
                return Err(ServiceError::Unauthenticated(
                    "Access Token has been revoked".to_owned(),
                ));
            }
        };
        // The token still stands in the transaction that changes the password.
        let mut user = self.own_user_in(w.as_mut(), principal, id).await?;
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
    /// The ID token Cognito's `AuthenticationResult` carries with a sign-in's first access
    /// token: for the client that signed the user in, with the user's profile and e-mail (as
    /// Cognito's ID token has the attributes the client may read), naming the sign-in's
    /// session.
    pub async fn cognito_id_token(
        &self,
        pool: &Pool,
        client: &AppClient,
        access: &IssuedToken,
    ) -> ServiceResult<Secret> {
        let missing = || ServiceError::internal("a sign-in token without its user or session");
        let user_id = UserId::parse(&access.claims.sub).map_err(|_| missing())?;
        let session = access
            .claims
            .sid
            .as_deref()
            .and_then(|s| SessionId::parse(s).ok())
            .ok_or_else(missing)?;
        let user = self
            .store
            .user_by_id(pool.id, user_id)
            .await?
            .ok_or_else(missing)?;
        let scopes = ["openid", "email", "profile"].map(str::to_owned);
        self.mint_id_token(
            pool,
            client,
            &user,
            &scopes,
            access,
            IdTokenFacts {
                nonce: None,
                auth_time: Timestamp(access.claims.iat),
                browser_session: session,
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_is_cognitos_hmac_of_username_and_client_id() {
        let secret = Secret::new("s3cr3t");
        // Base64(HMAC-SHA256("s3cr3t", "alice" + "client1")), computed independently.
        let expected = secret_hash(&secret, "alice", "client1");
        assert_eq!(expected, "fCAqzbXMBFv913e80qdJL+ZcaIH/qgqG+MROjbtZN/A=");
        assert!(secret_hash_matches(&secret, "alice", "client1", &expected));
        assert!(!secret_hash_matches(&secret, "alicf", "client1", &expected));
        assert!(!secret_hash_matches(&secret, "alice", "client2", &expected));
        assert!(!secret_hash_matches(
            &Secret::new("other"),
            "alice",
            "client1",
            &expected
        ));
        assert!(!secret_hash_matches(&secret, "alice", "client1", ""));
    }
}
