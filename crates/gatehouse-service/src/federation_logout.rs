//! Logout at the identity providers (spec section 7b): ending a browser session that a
//! provider's sign-in started ends it at the provider too, where the provider offers logout;
//! and a SAML IdP's logout ends the sessions here that it started.
//!
//! - Each federated browser session has a [`FederatedSession`] row, written in the
//!   transaction that creates the session and gone with it: the provider, the subject (the
//!   SAML NameID with its Format and the IdP's SessionIndex), and the upstream ID token
//!   sealed with the master key.
//! - RP-initiated logout ends the session here first, exactly as for any session; then, if
//!   the provider offers logout, [`Gatehouse::start_upstream_logout`] keeps where to go
//!   afterwards as a pending federation (a [`PendingLogout`]) under a random handle and sends
//!   the browser to the provider: a signed LogoutRequest (HTTP-Redirect) with the handle as
//!   `RelayState`, or the OpenID provider's end-session endpoint with the handle as `state`
//!   and `{issuer}/oauth2/idplogout` as `post_logout_redirect_uri`.
//! - The provider sends the browser back to `{issuer}/saml2/logout` (a signed
//!   LogoutResponse, checked against the request's ID) or `{issuer}/oauth2/idplogout`; the
//!   pending logout is taken once and says where to go. Whatever the provider answers, the
//!   session here has already ended: a failed or missing answer only changes the page.
//! - An IdP's own LogoutRequest at `{issuer}/saml2/logout` (signed, HTTP-Redirect) ends the
//!   pool's browser sessions that provider started for that NameID (and SessionIndex, when
//!   named), with their authorizations, and is answered with a signed LogoutResponse.

use gatehouse_crypto::secret::{Secret, random_token};
use gatehouse_domain::federation::{
    FederatedSession, IdentityProvider, PendingFederation, ProviderProtocol,
};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::session::Session;

use crate::Gatehouse;
use crate::browser::BrowserSession;
use crate::error::{ServiceError, ServiceResult};
use crate::federation::{
    PENDING_TTL_SECS, PendingLogout, PendingState, UpstreamOrigin, UpstreamSession,
};
use crate::upstream_oidc::end_session_url;

/// How a logout at a provider ended, once the browser is back (or comes back with nothing
/// to match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamLogoutEnd {
    /// The provider is done (for SAML: its LogoutResponse verified and says Success). Go to
    /// `then`, or show the signed-out page.
    Confirmed { then: Option<String> },
    /// The browser is back but the provider's answer could not be accepted (why, for the
    /// log): the session here ended, the provider's may not have.
    Unconfirmed {
        then: Option<String>,
        provider: String,
        why: String,
    },
    /// Nothing pending under that handle (expired, already used, or never sent).
    Unknown,
}

/// The answer to an IdP's LogoutRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdpLogoutAnswer {
    /// Redirect the browser to this URL: the signed LogoutResponse to the IdP. `ended` is the
    /// number of sessions ended here.
    Respond { location: String, ended: usize },
    /// The request is refused (it names no provider of the pool, its signature does not
    /// verify, it expired or was used before); nothing was ended. The reason is for the log.
    Refused(String),
}

impl Gatehouse {
    /// The record of a new browser session's provider, its ID token sealed.
    pub(crate) fn federated_session_record(
        &self,
        pool: &Pool,
        session: &Session,
        origin: UpstreamOrigin,
    ) -> ServiceResult<FederatedSession> {
        let (name_id_format, session_index, id_token) = match origin.session {
            UpstreamSession::Plain => (None, None, None),
            UpstreamSession::Saml {
                name_id_format,
                session_index,
            } => (name_id_format, session_index, None),
            UpstreamSession::OpenId { id_token } => (None, None, id_token),
        };
        let sealed_id_token = match id_token {
            Some(token) => Some(self.keyring.seal_code(
                pool.id,
                &FederatedSession::id_token_label(session.id),
                &token,
            )?),
            None => None,
        };
        Ok(FederatedSession {
            pool: pool.id,
            session_id: session.id,
            provider: origin.provider,
            subject: origin.subject,
            name_id_format,
            session_index,
            sealed_id_token,
            created_at: session.created_at,
        })
    }

    /// The pool's redirect URI after logout at upstream OpenID providers.
    pub fn upstream_post_logout_redirect_uri(&self, pool: &Pool) -> String {
        format!("{}/oauth2/idplogout", self.issuer(pool))
    }

    /// After `session` ended (RP-initiated logout): where to send the browser to end it at
    /// the provider whose sign-in started it, if there is one and it offers logout; then
    /// the browser goes to `then` (the client's checked post-logout URI with its `state`),
    /// or to the signed-out page. `None`: nothing to do upstream, go there directly.
    ///
    /// A provider that cannot be reached or read is logged and skipped: the session here
    /// has ended either way.
    pub async fn start_upstream_logout(
        &self,
        pool: &Pool,
        session: &BrowserSession,
        then: Option<&str>,
    ) -> ServiceResult<Option<String>> {
        let Some(record) = self
            .store
            .federated_session(pool.id, session.session.id)
            .await?
        else {
            return Ok(None);
        };
        // The provider as it is now, enabled or not: ending a session there is never a
        // privilege.
        let Some(idp) = self
            .store
            .identity_provider(pool.id, &record.provider)
            .await?
        else {
            return Ok(None);
        };
        let handle = random_token();
        let location = match &idp.protocol {
            #[cfg(feature = "saml")]
            ProviderProtocol::Saml(_) => {
                let Some((_, metadata)) = crate::saml::metadata_of(&idp) else {
                    return Ok(None);
                };
                if metadata.slo_redirect.is_none() {
                    return Ok(None);
                }
                let sp = self.saml_sp(pool).await?;
                match gatehouse_saml::logout_request_redirect(
                    &sp,
                    &metadata,
                    &record.subject,
                    record.name_id_format.as_deref(),
                    record.session_index.as_deref(),
                    Some(handle.expose()),
                    self.now().as_secs(),
                ) {
                    Ok(out) => Some((out.url.to_string(), Some(out.id))),
                    Err(e) => {
                        tracing::warn!(provider = %idp.name, error = %e,
                            "no logout request to the identity provider");
                        None
                    }
                }
            }
            #[cfg(not(feature = "saml"))]
            ProviderProtocol::Saml(_) => None,
            ProviderProtocol::OAuth(_) => self
                .oidc_logout_url(pool, &idp, &record, handle.expose())
                .await?
                .map(|url| (url, None)),
        };
        let Some((location, request_id)) = location else {
            return Ok(None);
        };
        let state = PendingState {
            saml_request_id: request_id,
            logout: Some(PendingLogout {
                then: then.map(str::to_owned),
            }),
            ..PendingState::default()
        };
        self.put_pending_logout(pool, &idp, handle.expose(), &state)
            .await?;
        Ok(Some(location))
    }

    /// The OpenID provider's end-session URL for `record`'s session, if it has one.
    async fn oidc_logout_url(
        &self,
        pool: &Pool,
        idp: &IdentityProvider,
        record: &FederatedSession,
        handle: &str,
    ) -> ServiceResult<Option<String>> {
        let ProviderProtocol::OAuth(o) = &idp.protocol else {
            return Ok(None);
        };
        let config = crate::federation::upstream_config(o, self.provider_secret(idp)?);
        let endpoints = match self.upstream.endpoints(&config).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(provider = %idp.name, error = %e,
                    "the provider's logout endpoint is unknown");
                return Ok(None);
            }
        };
        let hint = record.sealed_id_token.as_deref().and_then(|sealed| {
            self.keyring.open_code(
                pool.id,
                &FederatedSession::id_token_label(record.session_id),
                sealed,
            )
        });
        let Some(mut url) = end_session_url(
            &endpoints,
            hint.as_ref().map(Secret::expose),
            Some(&self.upstream_post_logout_redirect_uri(pool)),
            Some(handle),
        ) else {
            return Ok(None);
        };
        // RP-Initiated Logout 1.0 §2: the client, which the provider needs when the hint has
        // gone (and which must match the hint's audience when both are sent).
        url.query_pairs_mut().append_pair("client_id", &o.client_id);
        Ok(Some(url.to_string()))
    }

    async fn put_pending_logout(
        &self,
        pool: &Pool,
        idp: &IdentityProvider,
        handle: &str,
        state: &PendingState,
    ) -> ServiceResult<()> {
        let payload = serde_json::to_string(state)
            .map_err(|e| ServiceError::internal(format!("a pending logout: {e}")))?;
        self.store
            .put_pending_federation(&PendingFederation {
                pool: pool.id,
                handle_sha256: gatehouse_crypto::secret::sha256(handle.as_bytes()),
                provider: idp.name.clone(),
                payload,
                expires_at: self.now().plus_secs(PENDING_TTL_SECS),
            })
            .await?;
        Ok(())
    }

    /// Takes the pending logout under `handle`, once: its provider (if it still exists),
    /// where to go, and the SAML request's ID. A pending sign-in under that handle is spent
    /// and gives nothing.
    async fn take_pending_logout(
        &self,
        pool: &Pool,
        handle: &str,
    ) -> ServiceResult<
        Option<(
            Option<IdentityProvider>,
            String,
            PendingState,
            PendingLogout,
        )>,
    > {
        if handle.is_empty() {
            return Ok(None);
        }
        let Some(pending) = self
            .store
            .take_pending_federation(
                pool.id,
                &gatehouse_crypto::secret::sha256(handle.as_bytes()),
                self.now(),
            )
            .await?
        else {
            return Ok(None);
        };
        let Ok(mut state) = serde_json::from_str::<PendingState>(&pending.payload) else {
            return Ok(None);
        };
        let Some(logout) = state.logout.take() else {
            return Ok(None);
        };
        let idp = self
            .store
            .identity_provider(pool.id, &pending.provider)
            .await?;
        Ok(Some((idp, pending.provider.to_string(), state, logout)))
    }

    /// `{issuer}/oauth2/idplogout?state=…`: an OpenID provider is done with the logout it
    /// was sent. Its answer carries nothing to verify; the handle says where to go.
    pub async fn finish_oidc_upstream_logout(
        &self,
        pool: &Pool,
        handle: Option<&str>,
    ) -> ServiceResult<UpstreamLogoutEnd> {
        let Some((_, _, _, logout)) = self
            .take_pending_logout(pool, handle.unwrap_or_default())
            .await?
        else {
            return Ok(UpstreamLogoutEnd::Unknown);
        };
        Ok(UpstreamLogoutEnd::Confirmed { then: logout.then })
    }
}

#[cfg(feature = "saml")]
mod saml_logout {
    use gatehouse_domain::audit::AuditAction;
    use gatehouse_domain::federation::IdentityProvider;
    use gatehouse_domain::pool::Pool;
    use gatehouse_domain::security_event::InitiatingEntity;
    use gatehouse_domain::txn::SessionsToEnd;
    use gatehouse_saml::{IdpMetadata, LogoutCheck};

    use super::{IdpLogoutAnswer, UpstreamLogoutEnd};
    use crate::audit::EventExt;
    use crate::browser::BROWSER_SESSION_TTL_SECS;
    use crate::error::ServiceResult;
    use crate::security_events::Cause;
    use crate::{Gatehouse, RequestMeta};

    /// The value of `name` in a raw query string, decoded.
    fn query_value(raw_query: &str, name: &str) -> Option<String> {
        url::form_urlencoded::parse(raw_query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    impl Gatehouse {
        /// `{issuer}/saml2/logout` with a `SAMLResponse`: the IdP's answer to the logout
        /// request [`Gatehouse::start_upstream_logout`] sent. `raw_query` is the query string
        /// exactly as received (the signature covers its bytes).
        pub async fn finish_saml_upstream_logout(
            &self,
            pool: &Pool,
            raw_query: &str,
        ) -> ServiceResult<UpstreamLogoutEnd> {
            let handle = query_value(raw_query, "RelayState").unwrap_or_default();
            let Some((idp, provider, state, logout)) =
                self.take_pending_logout(pool, &handle).await?
            else {
                return Ok(UpstreamLogoutEnd::Unknown);
            };
            let then = logout.then;
            let unconfirmed = |why: String| UpstreamLogoutEnd::Unconfirmed {
                then: then.clone(),
                provider: provider.clone(),
                why,
            };
            let Some((_, metadata)) = idp.as_ref().and_then(crate::saml::metadata_of) else {
                return Ok(unconfirmed("the provider is gone".to_owned()));
            };
            let Some(request_id) = state.saml_request_id else {
                return Ok(unconfirmed("no request was sent".to_owned()));
            };
            let sp = self.saml_sp(pool).await?;
            let checked =
                LogoutCheck::new(&sp, &metadata, self.now().as_secs()).and_then(|check| {
                    gatehouse_saml::verify_logout_response_redirect(raw_query, &check, &request_id)
                });
            Ok(match checked {
                Ok(_) => UpstreamLogoutEnd::Confirmed { then },
                Err(e) => unconfirmed(e.to_string()),
            })
        }

        /// `{issuer}/saml2/logout` with a `SAMLRequest`: an IdP-initiated logout. The
        /// request must verify with the key of one of the pool's SAML providers (over the raw
        /// query) and name that provider as its Issuer; then the browser sessions that
        /// provider started for its NameID (and SessionIndex, when named) end with their
        /// authorizations, each audited, and the answer is a signed LogoutResponse.
        pub async fn saml_idp_logout(
            &self,
            pool: &Pool,
            raw_query: &str,
            meta: &RequestMeta,
        ) -> ServiceResult<IdpLogoutAnswer> {
            let now = self.now();
            let candidates: Vec<_> = self
                .store
                .identity_providers(pool.id)
                .await?
                .into_iter()
                .filter_map(|idp| {
                    let (_, metadata) = crate::saml::metadata_of(&idp)?;
                    metadata.slo_redirect.is_some().then_some((idp, metadata))
                })
                .collect();
            let mut why = "no SAML provider of the pool takes logout requests".to_owned();
            if candidates.is_empty() {
                // Refused before the pool's SP key is read, or made.
                self.audit_logout_refusal(pool, None, &why, meta).await;
                return Ok(IdpLogoutAnswer::Refused(why));
            }
            let sp = self.saml_sp(pool).await?;
            let mut verified = None;
            for (idp, metadata) in candidates {
                let checked = LogoutCheck::new(&sp, &metadata, now.as_secs()).and_then(|check| {
                    gatehouse_saml::verify_logout_request_redirect(raw_query, &check)
                });
                match checked {
                    Ok(request) => {
                        verified = Some((idp, metadata, request));
                        break;
                    }
                    Err(e) => why = e.to_string(),
                }
            }
            let Some((idp, metadata, request)) = verified else {
                self.audit_logout_refusal(pool, None, &why, meta).await;
                return Ok(IdpLogoutAnswer::Refused(why));
            };
            let ended = match self.end_idp_sessions(pool, &idp, &request, meta).await? {
                Ok(ended) => ended,
                Err(why) => {
                    self.audit_logout_refusal(pool, Some(&idp), &why, meta)
                        .await;
                    return Ok(IdpLogoutAnswer::Refused(why));
                }
            };
            Ok(match respond(&sp, &metadata, &request, now.as_secs()) {
                Ok(location) => IdpLogoutAnswer::Respond { location, ended },
                Err(e) => IdpLogoutAnswer::Refused(format!(
                    "{ended} sessions ended, but no answer could be made: {e}"
                )),
            })
        }

        /// Ends the sessions `request` names, in one transaction that also takes the
        /// request's ID once (a replayed request ends nothing).
        async fn end_idp_sessions(
            &self,
            pool: &Pool,
            idp: &IdentityProvider,
            request: &gatehouse_saml::LogoutRequest,
            meta: &RequestMeta,
        ) -> ServiceResult<Result<usize, String>> {
            let now = self.now();
            let mut w = self.store.write(pool.id).await?;
            // The provider as it is now, under its row's lock.
            match w.identity_provider(&idp.name).await? {
                Some(current) if current.protocol == idp.protocol => {}
                _ => return Ok(Err("the provider changed meanwhile".to_owned())),
            }
            let once = format!("saml-logout-request:{}:{}", idp.name, request.id);
            if !w
                .use_once(&once, now, now.plus_secs(BROWSER_SESSION_TTL_SECS))
                .await?
            {
                return Ok(Err("the logout request was already used".to_owned()));
            }
            let records = w.federated_sessions_of(&idp.name, &request.name_id).await?;
            let cause = Cause::new(InitiatingEntity::User, "identity provider logout");
            let mut ended = 0;
            for record in records {
                let named = request.session_indexes.is_empty()
                    || record
                        .session_index
                        .as_ref()
                        .is_none_or(|i| request.session_indexes.contains(i));
                if !named {
                    continue;
                }
                let sessions = self
                    .end_sessions_and_tell(
                        w.as_mut(),
                        &SessionsToEnd::WithChildren(record.session_id),
                        &cause,
                    )
                    .await?;
                for s in &sessions {
                    let event = self
                        .event(pool, AuditAction::SessionRevoked, None, meta)
                        .subject(&s.username)
                        .detail("session_id", s.id)
                        .detail("kind", s.kind_name())
                        .detail("via", "identity provider logout")
                        .detail("provider", idp.name.as_str());
                    w.audit(&event).await?;
                }
                ended += sessions.len();
            }
            w.commit().await?;
            Ok(Ok(ended))
        }

        async fn audit_logout_refusal(
            &self,
            pool: &Pool,
            idp: Option<&IdentityProvider>,
            why: &str,
            meta: &RequestMeta,
        ) {
            let mut event = self
                .event(pool, AuditAction::FederatedLogoutRefused, None, meta)
                .detail("reason", why);
            if let Some(idp) = idp {
                event = event.detail("provider", idp.name.as_str());
            }
            if let Err(e) = self.store.append_audit(&event).await {
                tracing::warn!(error = %e, "a refused identity provider logout was not audited");
            }
        }
    }

    /// The signed LogoutResponse to `request`, as the URL to redirect to.
    fn respond(
        sp: &gatehouse_saml::SpConfig,
        metadata: &IdpMetadata,
        request: &gatehouse_saml::LogoutRequest,
        now: i64,
    ) -> Result<String, gatehouse_saml::SamlError> {
        gatehouse_saml::logout_response_redirect(
            sp,
            metadata,
            &request.id,
            request.relay_state.as_deref(),
            now,
        )
        .map(|out| out.url.to_string())
    }
}
