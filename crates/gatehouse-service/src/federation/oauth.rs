//! The OAuth 2.0 and OpenID Connect leg of federated sign-in: the authorization request, the
//! sealed cookie that carries the sign-in's state (so that a start writes nothing), and the
//! callback at `{base}/oauth2/idpresponse`.

use gatehouse_crypto::secret::Secret;
use gatehouse_domain::federation::{IdentityProvider, OAuthSettings, ProviderProtocol};
use gatehouse_domain::pool::Pool;
use gatehouse_domain::time::Timestamp;

use super::{
    FederationRefusal, FederationStart, PENDING_TTL_SECS, PendingState, UpstreamAssertion,
    UpstreamSession, b64_sha256, claim_texts,
};
use crate::browser::BrowserSignIn;
use crate::error::{ServiceError, ServiceResult};
use crate::upstream_oidc::{
    SignInSecrets, UpstreamConfig, UpstreamError, authorization_url, read_callback,
};
use crate::{Gatehouse, RequestMeta};

/// The label an OAuth sign-in's cookie is sealed under.
const OAUTH_COOKIE_LABEL: &str = "federation-oauth";

/// The upstream client's view of a provider: its kind, issuer, client and endpoints.
pub(crate) fn upstream_config(
    o: &gatehouse_domain::federation::OAuthSettings,
    secret: Secret,
) -> UpstreamConfig {
    let mut config = UpstreamConfig::preset(o.kind, o.client_id.clone(), secret);
    if let Some(issuer) = &o.issuer {
        config.issuer = Some(issuer.clone());
    }
    if !o.scopes.is_empty() {
        config.scopes = o.scopes.clone();
    }
    config.endpoints = o.endpoints.clone();
    config
}

impl Gatehouse {
    /// Starts a sign-in at an OAuth provider: its authorization URL, and the sealed cookie
    /// that carries the sign-in's state.
    pub(super) async fn start_oauth(
        &self,
        pool: &Pool,
        idp: &IdentityProvider,
        o: &OAuthSettings,
        sealed_request: &str,
    ) -> ServiceResult<Result<FederationStart, FederationRefusal>> {
        let config = upstream_config(o, self.provider_secret(idp)?);
        Ok(match self.upstream.endpoints(&config).await {
            Err(e) => Err(FederationRefusal::Rejected(e.to_string())),
            Ok(endpoints) => {
                let secrets = SignInSecrets::generate();
                let state = PendingState {
                    request: sealed_request.to_owned(),
                    provider: Some(idp.name.to_string()),
                    state_sha256: Some(b64_sha256(secrets.state.expose())),
                    expires_at: Some(self.now().plus_secs(PENDING_TTL_SECS).as_secs()),
                    code_verifier: Some(secrets.code_verifier.expose().to_owned()),
                    nonce: Some(secrets.nonce.expose().to_owned()),
                    saml_request_id: None,
                    logout: None,
                };
                let cookie = self.seal_oauth_cookie(pool, &state)?;
                let url = authorization_url(
                    &endpoints,
                    &config,
                    &self.upstream_redirect_uri(pool),
                    secrets.state.expose(),
                    secrets.nonce.expose(),
                    &secrets.code_challenge(),
                );
                Ok(FederationStart {
                    location: url.to_string(),
                    cookie: Some(cookie),
                })
            }
        })
    }

    /// The client secret of an OAuth provider.
    pub(crate) fn provider_secret(&self, idp: &IdentityProvider) -> ServiceResult<Secret> {
        let sealed = idp
            .sealed_secret
            .as_deref()
            .ok_or_else(|| ServiceError::internal("an OAuth provider without a secret"))?;
        self.keyring
            .open_code(idp.pool, &IdentityProvider::secret_label(&idp.name), sealed)
            .ok_or_else(|| ServiceError::internal("a provider's secret does not open"))
    }

    /// The pool's redirect URI at upstream OAuth providers.
    pub fn upstream_redirect_uri(&self, pool: &Pool) -> String {
        format!("{}/oauth2/idpresponse", self.issuer(pool))
    }

    /// The pool's federation cookie for an OAuth sign-in: its state, sealed with the master
    /// key, so that starting a sign-in writes nothing (a flood of abandoned starts costs no
    /// storage), and only the browser that started can finish.
    fn seal_oauth_cookie(&self, pool: &Pool, state: &PendingState) -> ServiceResult<Secret> {
        use base64::Engine;
        let json = serde_json::to_string(state)
            .map_err(|e| ServiceError::internal(format!("a pending sign-in: {e}")))?;
        let sealed = self
            .keyring
            .seal_code(pool.id, OAUTH_COOKIE_LABEL, &Secret::new(json))?;
        Ok(Secret::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed),
        ))
    }

    fn open_oauth_cookie(&self, pool: &Pool, cookie: &str) -> Option<PendingState> {
        use base64::Engine;
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cookie)
            .ok()?;
        let json = self
            .keyring
            .open_code(pool.id, OAUTH_COOKIE_LABEL, &sealed)?;
        serde_json::from_str(json.expose()).ok()
    }

    /// The upstream OAuth provider's answer at `{base}/oauth2/idpresponse` (its query's
    /// pairs), from the browser holding `cookie` (the pool's federation cookie): the sealed
    /// authorization request to continue, and the sign-in. The `state` must be the one the
    /// cookie was made for, and is taken once, in the transaction that signs in.
    pub async fn finish_oauth_federation(
        &self,
        pool: &Pool,
        params: &[(String, String)],
        cookie: Option<&str>,
        meta: &RequestMeta,
    ) -> ServiceResult<Result<(String, BrowserSignIn), FederationRefusal>> {
        let handle = params
            .iter()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        let now = self.now();
        let Some(state) = cookie
            .and_then(|c| self.open_oauth_cookie(pool, c))
            .filter(|s| {
                s.expires_at.is_some_and(|t| t > now.as_secs())
                    && s.state_sha256.as_deref().is_some_and(|d| {
                        gatehouse_crypto::secret::constant_time_eq(
                            d.as_bytes(),
                            b64_sha256(handle).as_bytes(),
                        )
                    })
            })
        else {
            return Ok(Err(FederationRefusal::Expired));
        };
        if state.logout.is_some() {
            return Ok(Err(FederationRefusal::Expired));
        }
        let Some(idp) = self
            .offered_provider(pool, state.provider.as_deref().unwrap_or_default())
            .await?
        else {
            return Ok(Err(FederationRefusal::NotOffered));
        };
        // The state is taken before anything is asked of the provider: a replayed answer
        // reaches no one.
        let mut w = self.store.write(pool.id).await?;
        let first = w
            .use_once(
                &format!(
                    "federation-state:{}",
                    state.state_sha256.as_deref().unwrap_or_default()
                ),
                now,
                Timestamp(state.expires_at.unwrap_or_default()),
            )
            .await?;
        w.commit().await?;
        if !first {
            let refusal = FederationRefusal::Rejected("the answer was already used".to_owned());
            self.audit_federation_refusal(pool, idp.name.as_str(), &refusal, meta)
                .await;
            return Ok(Err(refusal));
        }
        let provider = idp.name.to_string();
        let refuse = |refusal: FederationRefusal| {
            let provider = provider.clone();
            async move {
                self.audit_federation_refusal(pool, &provider, &refusal, meta)
                    .await;
                Ok(Err(refusal))
            }
        };
        let ProviderProtocol::OAuth(o) = &idp.protocol else {
            return refuse(FederationRefusal::NotOffered).await;
        };
        let config = upstream_config(o, self.provider_secret(&idp)?);
        let endpoints = match self.upstream.endpoints(&config).await {
            Ok(e) => e,
            Err(e) => return refuse(FederationRefusal::Rejected(e.to_string())).await,
        };
        let pairs = params.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let code = match read_callback(&endpoints, pairs, handle) {
            Ok(code) => code,
            Err(UpstreamError::Denied(code)) => {
                return refuse(FederationRefusal::Denied(code)).await;
            }
            Err(e) => return refuse(FederationRefusal::Rejected(e.to_string())).await,
        };
        let identity = self
            .upstream
            .complete(
                &endpoints,
                &config,
                &self.upstream_redirect_uri(pool),
                &code,
                state.code_verifier.as_deref().unwrap_or_default(),
                state.nonce.as_deref().unwrap_or_default(),
                self.now().as_secs(),
            )
            .await;
        let identity = match identity {
            Ok(i) => i,
            Err(e) => return refuse(FederationRefusal::Rejected(e.to_string())).await,
        };
        let assertion = UpstreamAssertion {
            subject: identity.subject,
            attributes: identity
                .claims
                .iter()
                .map(|(k, v)| (k.clone(), claim_texts(v)))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
            session: UpstreamSession::OpenId {
                id_token: identity.id_token.map(Secret::new),
            },
        };
        match self
            .sign_in_federated(pool, &idp, assertion, None, meta)
            .await?
        {
            Ok(signed_in) => Ok(Ok((state.request, signed_in))),
            Err(refusal) => refuse(refusal).await,
        }
    }
}
