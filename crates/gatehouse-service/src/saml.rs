//! The pool's SAML 2.0 service provider (feature `saml`; see `gatehouse-saml` for the
//! protocol): its key and metadata, SP-initiated sign-in, and the assertion consumer service.
//!
//! - The SP's entity ID is `{issuer}/saml2/metadata`, its ACS `{issuer}/saml2/idpresponse`.
//! - Each pool has one RSA key, made on first use, sealed with the master key; its
//!   certificate follows from the key, so the metadata is stable.
//! - SP-initiated: a signed AuthnRequest by HTTP-Redirect whose `RelayState` is the handle of
//!   a pending sign-in holding the request's ID and the sealed authorization request; the
//!   response must answer that ID.
//! - IdP-initiated (when the provider allows it): the response answers no request; the
//!   provider is chosen by the response's Issuer, then the response must be its.
//! - Every assertion's ID is taken once (`use_once`) until it expires, in the transaction
//!   that signs in.

use gatehouse_domain::ParseError;

use crate::error::ServiceResult;

#[cfg(feature = "saml")]
pub use enabled::SamlCompletion;
#[cfg(feature = "saml")]
pub(crate) use enabled::{SpCache, metadata_of};

/// The entity ID of the IdP a metadata document describes, once the document is checked.
#[cfg(feature = "saml")]
pub(crate) fn idp_entity_id(xml: &str) -> ServiceResult<String> {
    let idp = gatehouse_saml::IdpMetadata::parse(xml)
        .map_err(|e| ParseError::new("saml_metadata", e.to_string()))?;
    if idp.sso_redirect.is_none() {
        return Err(ParseError::new(
            "saml_metadata",
            "the IdP offers no single sign-on service with the HTTP-Redirect binding",
        )
        .into());
    }
    Ok(idp.entity_id)
}

#[cfg(not(feature = "saml"))]
pub(crate) fn idp_entity_id(_xml: &str) -> ServiceResult<String> {
    Err(ParseError::new(
        "saml_metadata",
        "this build of Gatehouse has no SAML support",
    )
    .into())
}

#[cfg(feature = "saml")]
mod enabled {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use gatehouse_domain::federation::{
        IdentityProvider, ProviderProtocol, SamlSettings, SamlSpKey,
    };
    use gatehouse_domain::ids::PoolId;
    use gatehouse_domain::pool::Pool;
    use gatehouse_domain::time::Timestamp;
    use gatehouse_saml::{IdpMetadata, InResponseTo, ResponseCheck, SpConfig, SpKey};

    use crate::browser::BrowserSignIn;
    use crate::error::{ServiceError, ServiceResult};
    use crate::federation::{
        FederationRefusal, FederationStart, PendingState, UpstreamAssertion, UpstreamSession,
    };
    use crate::{Gatehouse, RequestMeta};

    /// Each pool's service provider, by pool and issuer (a pool's issuer changes with its
    /// host names, and its SP's URLs with it).
    #[derive(Default)]
    pub(crate) struct SpCache(Mutex<HashMap<(PoolId, String), Arc<SpConfig>>>);

    /// A SAML sign-in that got through: the browser's session, and where it goes next: on
    /// with the authorization request it started with (SP-initiated), or to the pool's
    /// authorization URL the IdP gave as `RelayState` (IdP-initiated), or nowhere.
    #[derive(Debug)]
    pub struct SamlCompletion {
        pub sign_in: BrowserSignIn,
        /// The sealed authorization request to continue (SP-initiated).
        pub request: Option<String>,
        /// A URL of this pool's authorization endpoint to go to (IdP-initiated).
        pub target: Option<String>,
    }

    pub(crate) fn metadata_of(idp: &IdentityProvider) -> Option<(&SamlSettings, IdpMetadata)> {
        match &idp.protocol {
            ProviderProtocol::Saml(s) => IdpMetadata::parse(&s.metadata_xml).ok().map(|m| (s, m)),
            ProviderProtocol::OAuth(_) => None,
        }
    }

    impl Gatehouse {
        /// The pool's service provider: its key made on first use (on a blocking thread,
        /// RSA key generation being slow), sealed and stored; two instances making one at
        /// once agree on the first stored.
        pub(crate) async fn saml_sp(&self, pool: &Pool) -> ServiceResult<Arc<SpConfig>> {
            let issuer = self.issuer(pool);
            let cache_key = (pool.id, issuer.clone());
            if let Some(sp) = self
                .saml_sps
                .0
                .lock()
                .ok()
                .and_then(|c| c.get(&cache_key).cloned())
            {
                return Ok(sp);
            }
            let stored = match self.store.saml_sp_key(pool.id).await? {
                Some(stored) => stored,
                None => {
                    let key = tokio::task::spawn_blocking(SpKey::generate)
                        .await
                        .map_err(|e| ServiceError::internal(format!("SAML key generation: {e}")))?
                        .map_err(|e| ServiceError::internal(format!("SAML key generation: {e}")))?;
                    let sealed = self.keyring.seal_code(
                        pool.id,
                        SamlSpKey::LABEL,
                        &gatehouse_crypto::secret::Secret::new(base64_of(key.pkcs8_der())),
                    )?;
                    self.store
                        .put_saml_sp_key(&SamlSpKey {
                            pool: pool.id,
                            sealed_key: sealed,
                            certificate: key.certificate_der().to_vec(),
                            created_at: self.now(),
                        })
                        .await?
                }
            };
            let pkcs8 = self
                .keyring
                .open_code(pool.id, SamlSpKey::LABEL, &stored.sealed_key)
                .and_then(|b64| bytes_of(b64.expose()))
                .ok_or_else(|| ServiceError::internal("the pool's SAML key does not open"))?;
            let key = SpKey::from_pkcs8(&pkcs8)
                .map_err(|e| ServiceError::internal(format!("the pool's SAML key: {e}")))?;
            let sp = Arc::new(SpConfig {
                entity_id: format!("{issuer}/saml2/metadata"),
                acs_url: format!("{issuer}/saml2/idpresponse"),
                slo_url: Some(format!("{issuer}/saml2/logout")),
                key,
            });
            if let Ok(mut cache) = self.saml_sps.0.lock() {
                if cache.len() >= 10_000 {
                    cache.clear();
                }
                cache.insert(cache_key, sp.clone());
            }
            Ok(sp)
        }

        /// The pool's SP metadata document.
        pub async fn saml_sp_metadata(&self, pool: &Pool) -> ServiceResult<String> {
            Ok(gatehouse_saml::sp_metadata(&*self.saml_sp(pool).await?))
        }

        /// SP-initiated sign-in: a signed AuthnRequest to the IdP, the sign-in kept pending
        /// under its `RelayState`.
        pub(crate) async fn start_saml(
            &self,
            pool: &Pool,
            idp: &IdentityProvider,
            sealed_request: &str,
        ) -> ServiceResult<Result<FederationStart, FederationRefusal>> {
            let Some((_, metadata)) = metadata_of(idp) else {
                return Ok(Err(FederationRefusal::NotOffered));
            };
            let sp = self.saml_sp(pool).await?;
            let handle = gatehouse_crypto::secret::random_token();
            let out = match gatehouse_saml::authn_request_redirect(
                &sp,
                &metadata,
                Some(handle.expose()),
                self.now().as_secs(),
            ) {
                Ok(out) => out,
                Err(e) => return Ok(Err(FederationRefusal::Rejected(e.to_string()))),
            };
            let state = PendingState {
                request: sealed_request.to_owned(),
                saml_request_id: Some(out.id),
                ..PendingState::default()
            };
            self.put_pending_federation(pool, idp, handle.expose(), &state)
                .await?;
            Ok(Ok(FederationStart {
                location: out.url.to_string(),
                cookie: None,
            }))
        }

        /// The assertion consumer service: checks `saml_response` (base64, HTTP-POST) and signs
        /// its subject in.
        pub async fn finish_saml(
            &self,
            pool: &Pool,
            saml_response: &str,
            relay_state: Option<&str>,
            meta: &RequestMeta,
        ) -> ServiceResult<Result<SamlCompletion, FederationRefusal>> {
            let pending = match relay_state {
                Some(handle) if !handle.is_empty() => {
                    self.take_pending_federation(pool, handle).await?
                }
                _ => None,
            };
            let (idp, expected, request, target) = match pending {
                Some((idp, state)) => {
                    let (Some(id), None) = (state.saml_request_id, &state.logout) else {
                        return Ok(Err(FederationRefusal::Expired));
                    };
                    (idp, InResponseTo::Expected(id), Some(state.request), None)
                }
                None => {
                    // Unsolicited: the provider whose entity ID the response names, if it
                    // takes IdP-initiated sign-in. A RelayState is then where to go.
                    let Ok(issuer) = gatehouse_saml::response_issuer(saml_response) else {
                        return Ok(Err(FederationRefusal::Rejected(
                            "the response cannot be read".to_owned(),
                        )));
                    };
                    let idp = self
                        .store
                        .identity_providers(pool.id)
                        .await?
                        .into_iter()
                        .find(|p| {
                            p.enabled
                                && matches!(&p.protocol, ProviderProtocol::Saml(s)
                                    if s.entity_id == issuer && s.idp_initiated)
                        });
                    let Some(idp) = idp else {
                        return Ok(Err(FederationRefusal::NotOffered));
                    };
                    let authorize = format!("{}/oauth2/authorize?", self.issuer(pool));
                    let target = relay_state
                        .filter(|r| r.starts_with(&authorize))
                        .map(str::to_owned);
                    (idp, InResponseTo::Unsolicited, None, target)
                }
            };
            let Some((_, metadata)) = metadata_of(&idp) else {
                return Ok(Err(FederationRefusal::NotOffered));
            };
            let sp = self.saml_sp(pool).await?;
            let check = ResponseCheck::new(&sp, &metadata, expected, self.now().as_secs());
            let assertion = match gatehouse_saml::verify_response(saml_response, &check) {
                Ok(a) => a,
                Err(e) => {
                    let refusal = FederationRefusal::Rejected(e.to_string());
                    self.audit_federation_refusal(pool, idp.name.as_str(), &refusal, meta)
                        .await;
                    return Ok(Err(refusal));
                }
            };
            let once = (
                format!("saml-assertion:{}:{}", idp.name, assertion.id),
                Timestamp(assertion.expires_at.max(self.now().as_secs()) + check.skew),
            );
            let upstream = UpstreamAssertion {
                subject: assertion.name_id,
                attributes: assertion.attributes,
                session: UpstreamSession::Saml {
                    name_id_format: assertion.name_id_format,
                    session_index: assertion.session_index,
                },
            };
            let signed_in = self
                .sign_in_federated(pool, &idp, upstream, Some(once), meta)
                .await?;
            if let Err(refusal) = &signed_in {
                self.audit_federation_refusal(pool, idp.name.as_str(), refusal, meta)
                    .await;
            }
            Ok(signed_in.map(|sign_in| SamlCompletion {
                sign_in,
                request,
                target,
            }))
        }
    }

    fn base64_of(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn bytes_of(b64: &str) -> Option<Vec<u8>> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(b64).ok()
    }
}
