//! RFC 8693 token exchange, Gatehouse's third form of impersonation: `actor_token` is the
//! caller's access token, `subject_token` the username to act as, and the answer is an
//! impersonated access token minted through [`Gatehouse::impersonate`]'s path.
//!
//! The client that authenticates at the token endpoint is the one the impersonation is recorded
//! against (the session's, the token's and the audit event's `client_id`), so that it can
//! revoke the token; the actor token's own client stays in `act.client_id`.

use std::sync::Arc;

use gatehouse_crypto::secret::Secret;
use gatehouse_domain::client::GrantType;
use gatehouse_domain::ids::Username;
use gatehouse_domain::pool::Pool;

use crate::error::{OAuthError, OAuthErrorCode, ServiceError, ServiceResult};
use crate::impersonation::{ImpersonationGrant, ImpersonationRequest};
use crate::tokens::ClientCredentials;
use crate::{Gatehouse, RequestMeta};

/// The token type of `actor_token` and of the issued token (RFC 8693 §3).
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Gatehouse's token type for a `subject_token` that is a username of the pool.
pub const TOKEN_TYPE_USERNAME: &str = "urn:gatehouse:params:oauth:token-type:username";

/// A token-exchange request as the token endpoint received it. Nothing in it is checked until
/// the client has authenticated, so that an unauthenticated client learns nothing from the
/// answer but `invalid_client`.
#[derive(Debug, Clone, Default)]
pub struct TokenExchange {
    pub actor_token: Option<Secret>,
    pub actor_token_type: Option<String>,
    pub subject_token: Option<String>,
    pub subject_token_type: Option<String>,
    pub requested_token_type: Option<String>,
    /// Gatehouse extension: why the impersonation is needed.
    pub reason: Option<String>,
}

/// A [`TokenExchange`] whose parameters are present and of the types Gatehouse exchanges.
#[derive(Debug)]
struct Exchange {
    actor_token: Secret,
    subject: Username,
    reason: Option<String>,
}

impl TokenExchange {
    /// Missing parameters and a malformed username are `invalid_request`, token types other than
    /// an access token for a username `unsupported_token_type`, and asking for anything but an
    /// access token `invalid_request`.
    fn parse(self) -> Result<Exchange, OAuthError> {
        let missing =
            |p: &str| OAuthError::new(OAuthErrorCode::InvalidRequest, format!("{p} is required"));
        let actor_token = self.actor_token.ok_or_else(|| missing("actor_token"))?;
        let actor_type = self
            .actor_token_type
            .ok_or_else(|| missing("actor_token_type"))?;
        let subject = self.subject_token.ok_or_else(|| missing("subject_token"))?;
        let subject_type = self
            .subject_token_type
            .ok_or_else(|| missing("subject_token_type"))?;
        if actor_type != TOKEN_TYPE_ACCESS_TOKEN {
            return Err(OAuthError::new(
                OAuthErrorCode::UnsupportedTokenType,
                format!("actor_token_type must be {TOKEN_TYPE_ACCESS_TOKEN}"),
            ));
        }
        if subject_type != TOKEN_TYPE_USERNAME {
            return Err(OAuthError::new(
                OAuthErrorCode::UnsupportedTokenType,
                format!("subject_token_type must be {TOKEN_TYPE_USERNAME}"),
            ));
        }
        if self
            .requested_token_type
            .is_some_and(|t| t != TOKEN_TYPE_ACCESS_TOKEN)
        {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidRequest,
                "only access tokens can be requested",
            ));
        }
        let subject = Username::parse(&subject)
            .map_err(|e| OAuthError::new(OAuthErrorCode::InvalidRequest, e.to_string()))?;
        Ok(Exchange {
            actor_token,
            subject,
            reason: self.reason,
        })
    }
}

impl Gatehouse {
    /// RFC 8693 token exchange: authenticates the client, checks that it may exchange tokens and
    /// the request's token types, authenticates the actor token, and impersonates the subject
    /// on the client's behalf.
    ///
    /// An actor token that does not prove a principal here (bad signature, expired, revoked,
    /// another issuer, its user or client gone) is `invalid_grant`; a failure of ours while
    /// checking it stays [`ServiceError::Internal`].
    pub async fn exchange_token(
        &self,
        pool: &Arc<Pool>,
        creds: &ClientCredentials,
        request: TokenExchange,
        meta: &RequestMeta,
    ) -> ServiceResult<ImpersonationGrant> {
        let client = self.authenticate_client(pool, creds).await?;
        if !client.grant_types.contains(&GrantType::TokenExchange) {
            return Err(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                "the client may not use token exchange",
            )
            .into());
        }
        let exchange = request.parse()?;
        let caller = match self
            .authenticate_bearer(pool, exchange.actor_token.expose())
            .await
        {
            Ok(caller) => caller,
            Err(ServiceError::Unauthenticated(why)) => {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidGrant,
                    format!("actor_token: {why}"),
                )
                .into());
            }
            Err(e) => return Err(e),
        };
        self.impersonate_for(
            pool,
            &caller,
            Some(&client.client_id),
            &exchange.subject,
            ImpersonationRequest {
                reason: exchange.reason,
                expires_in: None,
            },
            meta,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete() -> TokenExchange {
        TokenExchange {
            actor_token: Some(Secret::new("eyJ.actor.token")),
            actor_token_type: Some(TOKEN_TYPE_ACCESS_TOKEN.to_owned()),
            subject_token: Some("alice".to_owned()),
            subject_token_type: Some(TOKEN_TYPE_USERNAME.to_owned()),
            requested_token_type: None,
            reason: Some("ticket 4711".to_owned()),
        }
    }

    fn code_of(request: TokenExchange) -> OAuthErrorCode {
        request.parse().unwrap_err().code
    }

    #[test]
    fn a_complete_request_names_the_actor_token_and_the_user() {
        let e = complete().parse().unwrap();
        assert_eq!(e.actor_token.expose(), "eyJ.actor.token");
        assert_eq!(e.subject.as_str(), "alice");
        assert_eq!(e.reason.as_deref(), Some("ticket 4711"));
        let e = TokenExchange {
            requested_token_type: Some(TOKEN_TYPE_ACCESS_TOKEN.to_owned()),
            ..complete()
        };
        assert!(e.parse().is_ok());
    }

    #[test]
    fn every_parameter_but_the_requested_type_and_the_reason_is_required() {
        for strip in [
            |r: &mut TokenExchange| r.actor_token = None,
            |r: &mut TokenExchange| r.actor_token_type = None,
            |r: &mut TokenExchange| r.subject_token = None,
            |r: &mut TokenExchange| r.subject_token_type = None,
        ] {
            let mut r = complete();
            strip(&mut r);
            let e = r.parse().unwrap_err();
            assert_eq!(e.code, OAuthErrorCode::InvalidRequest);
            assert!(e.description.ends_with("is required"), "{e:?}");
        }
    }

    #[test]
    fn other_token_types_are_refused() {
        let r = TokenExchange {
            actor_token_type: Some("urn:ietf:params:oauth:token-type:id_token".to_owned()),
            ..complete()
        };
        assert_eq!(code_of(r), OAuthErrorCode::UnsupportedTokenType);
        let r = TokenExchange {
            subject_token_type: Some(TOKEN_TYPE_ACCESS_TOKEN.to_owned()),
            ..complete()
        };
        assert_eq!(code_of(r), OAuthErrorCode::UnsupportedTokenType);
        let r = TokenExchange {
            requested_token_type: Some("urn:ietf:params:oauth:token-type:refresh_token".to_owned()),
            ..complete()
        };
        assert_eq!(code_of(r), OAuthErrorCode::InvalidRequest);
    }

    #[test]
    fn a_malformed_username_is_invalid_request() {
        let r = TokenExchange {
            subject_token: Some("not a username\n".to_owned()),
            ..complete()
        };
        assert_eq!(code_of(r), OAuthErrorCode::InvalidRequest);
    }
}
