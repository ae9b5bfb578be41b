//! [`Verifier`]: discovery, the JWKS cache, the checks of one token, the staleness policy and
//! the feed's own client-credentials token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use serde::Deserialize;

use crate::claims::Claims;
use crate::clock::{Clock, SystemClock};
use crate::error::{BuildError, VerifyError};
use crate::health::{Calls, Health, Progress};
use crate::keys::{Alg, KeySet};
use crate::revocations::Revocations;

/// What to do with tokens while the feed is silent (no event, heartbeat or page for longer
/// than [`VerifierBuilder::stale_after`]): the verifier no longer knows what was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StalenessPolicy {
    /// Refuse every token with [`VerifyError::Stale`] (HTTP 503).
    FailClosed,
    /// Ask the pool's introspection endpoint (RFC 7662) about each token, remembering the
    /// answer briefly.
    Introspect,
}

/// The settings of a [`Verifier`]; see [`Verifier::builder`].
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub typ: String,
    pub algorithms: Vec<Alg>,
    pub leeway: Duration,
    pub client_id: String,
    pub client_secret: String,
    pub stale_after: Duration,
    pub policy: StalenessPolicy,
    pub introspection_cache: Duration,
    pub jwks_refetch_interval: Duration,
    pub max_keys: usize,
    pub retention: Duration,
    pub backoff_cap: Duration,
    pub poll_interval: Duration,
    pub stream_retry_after: Duration,
    pub stream_idle_timeout: Duration,
}

/// Builds a [`Verifier`] for one pool.
pub struct VerifierBuilder {
    config: Config,
    http: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// An audience the token must name (any of those given). Without one, the issuer itself
    /// (Gatehouse's audience when no resource was asked for).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.config.audiences.push(audience.into());
        self
    }

    /// The app client whose client-credentials tokens read the feed (it needs the permission
    /// `auth:RetrieveRevocations`) and, under [`StalenessPolicy::Introspect`], introspect.
    pub fn feed_credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.config.client_id = client_id.into();
        self.config.client_secret = client_secret.into();
        self
    }

    /// The `typ` header access tokens must carry (default `at+jwt`).
    pub fn token_type(mut self, typ: impl Into<String>) -> Self {
        self.config.typ = typ.into();
        self
    }

    /// The algorithms accepted (default ES256, RS256 and EdDSA; only asymmetric ones exist).
    pub fn algorithms(mut self, algorithms: &[Alg]) -> Self {
        self.config.algorithms = algorithms.to_vec();
        self
    }

    /// Clock skew allowed on `exp` and `nbf` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.config.leeway = leeway;
        self
    }

    /// How long the feed may stay silent before the staleness policy applies (default 15 s).
    pub fn stale_after(mut self, limit: Duration) -> Self {
        self.config.stale_after = limit;
        self
    }

    /// What to do while the feed is stale (default [`StalenessPolicy::FailClosed`]).
    pub fn staleness_policy(mut self, policy: StalenessPolicy) -> Self {
        self.config.policy = policy;
        self
    }

    /// How long an introspection answer is reused (default 5 s).
    pub fn introspection_cache(mut self, ttl: Duration) -> Self {
        self.config.introspection_cache = ttl;
        self
    }

    /// The least time between two JWKS fetches caused by unknown key ids (default 30 s).
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.config.jwks_refetch_interval = interval;
        self
    }

    /// The most keys kept from one JWKS (default 16).
    pub fn max_keys(mut self, n: usize) -> Self {
        self.config.max_keys = n;
        self
    }

    /// How long revocation entries are kept when the pool's snapshot does not say (default
    /// 65 minutes: Gatehouse's default access-token lifetime plus 5 minutes).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.config.retention = retention;
        self
    }

    /// The longest wait between two attempts to reach the feed (default 2 s).
    pub fn backoff_cap(mut self, cap: Duration) -> Self {
        self.config.backoff_cap = cap;
        self
    }

    /// The wait between two reads of the paged feed when the stream is not available
    /// (default 250 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// The clock that ages revocation entries out (default the system's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The HTTP client to use (for proxies, roots, DNS overrides). Redirects should be off.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Discovers the pool, reads its JWKS, and starts following the feed. Returns once the
    /// first read of the feed (snapshot or catch-up) is done, or once it failed: then the
    /// verifier is stale until the feed answers, and the follower keeps trying.
    pub async fn build(self) -> Result<Verifier, BuildError> {
        let mut config = self.config;
        let issuer = config.issuer.trim_end_matches('/').to_owned();
        if !(issuer.starts_with("http://") || issuer.starts_with("https://")) {
            return Err(BuildError::Issuer(issuer));
        }
        config.issuer = issuer;
        if config.client_id.is_empty() {
            return Err(BuildError::Config(
                "feed_credentials are required: the feed is what refuses revoked tokens",
            ));
        }
        if config.algorithms.is_empty() {
            return Err(BuildError::Config("no algorithm is accepted"));
        }
        if config.audiences.is_empty() {
            config.audiences.push(config.issuer.clone());
        }
        let http = match self.http {
            Some(h) => h,
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| BuildError::Discovery(e.to_string()))?,
        };
        let calls = Calls::default();
        let endpoints = Endpoints::discover(&http, &config.issuer, &calls).await?;
        let inner = Arc::new(Inner {
            set_audience: format!("{}/api/auth/revocations", config.issuer),
            config,
            endpoints,
            http,
            keys: RwLock::new(Arc::new(KeySet::default())),
            jwks_refetched: tokio::sync::Mutex::new(None),
            revocations: Revocations::default(),
            progress: Progress::new(),
            calls,
            feed_token: tokio::sync::Mutex::new(None),
            introspected: Mutex::new(HashMap::new()),
            retention_secs: std::sync::atomic::AtomicI64::new(0),
            clock: self.clock,
        });
        inner.retention_secs.store(
            secs(inner.config.retention),
            std::sync::atomic::Ordering::Relaxed,
        );
        inner.fetch_jwks().await.map_err(BuildError::Jwks)?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(crate::feed::follow(inner.clone(), ready_tx));
        let _ = ready_rx.await;
        Ok(Verifier {
            inner,
            _task: Arc::new(AbortOnDrop(task)),
        })
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Stops the feed follower once the last clone of its verifier is gone.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Verifies one pool's access tokens locally, refusing those the pool's revocation feed
/// revoked. Cheap to clone; the feed is followed by one background task per verifier, which
/// stops when the last clone is dropped.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
    _task: Arc<AbortOnDrop>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.config.issuer)
            .finish_non_exhaustive()
    }
}

/// The pool's endpoints, from its discovery document.
#[derive(Debug)]
pub(crate) struct Endpoints {
    pub jwks: String,
    pub token: String,
    pub introspection: String,
    pub feed: String,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    token_endpoint: String,
    #[serde(default)]
    introspection_endpoint: Option<String>,
    #[serde(default)]
    revocation_feed_endpoint: Option<String>,
}

impl Endpoints {
    async fn discover(
        http: &reqwest::Client,
        issuer: &str,
        calls: &Calls,
    ) -> Result<Self, BuildError> {
        let url = format!("{issuer}/.well-known/openid-configuration");
        Calls::count(&calls.discovery);
        let res = http
            .get(&url)
            .send()
            .await
            .map_err(|e| BuildError::Discovery(e.to_string()))?;
        if !res.status().is_success() {
            return Err(BuildError::Discovery(format!(
                "{url} answered {}",
                res.status()
            )));
        }
        let doc: Discovery = res
            .json()
            .await
            .map_err(|e| BuildError::Discovery(e.to_string()))?;
        if doc.issuer != issuer {
            return Err(BuildError::Discovery(format!(
                "the document names the issuer {}, not {issuer}",
                doc.issuer
            )));
        }
        Ok(Self {
            jwks: doc.jwks_uri,
            token: doc.token_endpoint,
            introspection: doc
                .introspection_endpoint
                .unwrap_or_else(|| format!("{issuer}/oauth2/introspect")),
            feed: doc
                .revocation_feed_endpoint
                .unwrap_or_else(|| format!("{issuer}/api/auth/revocations")),
        })
    }
}

pub(crate) struct Inner {
    pub config: Config,
    pub endpoints: Endpoints,
    pub http: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    /// When an unknown key id last made the JWKS be fetched again; held while fetching, so
    /// concurrent misses fetch once.
    jwks_refetched: tokio::sync::Mutex<Option<Instant>>,
    /// The `aud` of the feed's SETs.
    pub set_audience: String,
    pub revocations: Revocations,
    pub progress: Progress,
    pub calls: Calls,
    feed_token: tokio::sync::Mutex<Option<FeedToken>>,
    introspected: Mutex<HashMap<String, (bool, Instant)>>,
    /// How long entries are kept: the snapshot's `retention_seconds`, else the configured one.
    pub retention_secs: std::sync::atomic::AtomicI64,
    pub clock: Arc<dyn Clock>,
}

struct FeedToken {
    token: String,
    renew_at: Instant,
}

/// The JOSE header of an access token, read without copying its strings.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    typ: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The most introspection answers remembered at once.
const INTROSPECTION_CACHE_MAX: usize = 10_000;

impl Inner {
    pub fn keys(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn fetch_jwks(&self) -> Result<(), String> {
        Calls::count(&self.calls.jwks);
        let res = self
            .http
            .get(&self.endpoints.jwks)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("{} answered {}", self.endpoints.jwks, res.status()));
        }
        let body = res.bytes().await.map_err(|e| e.to_string())?;
        let set = KeySet::parse(&body, self.config.max_keys).map_err(|e| e.to_string())?;
        match self.keys.write() {
            Ok(mut k) => *k = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
        Ok(())
    }

    /// Fetches the JWKS again because a key id was unknown, unless a refetch was done less
    /// than the refetch interval ago. Concurrent callers wait for the one fetch in flight.
    pub async fn refetch_jwks(&self) {
        let mut refetched = self.jwks_refetched.lock().await;
        if refetched.is_some_and(|at| at.elapsed() < self.config.jwks_refetch_interval) {
            return;
        }
        *refetched = Some(Instant::now());
        if let Err(e) = self.fetch_jwks().await {
            tracing::warn!(error = %e, "the pool's JWKS could not be read");
        }
    }

    /// Signature, algorithm, type and claims of one token, against the keys held now. The
    /// header and the claims are each decoded once; the signature is checked by
    /// `jsonwebtoken` with the algorithm the key allows, before any claim is read.
    fn check_token(&self, token: &str) -> Result<Claims, VerifyError> {
        let (message, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
        let (_, payload) = message.split_once('.').ok_or(VerifyError::Malformed)?;
        if payload.contains('.') {
            return Err(VerifyError::Malformed);
        }
        let (header, _) = message.split_once('.').ok_or(VerifyError::Malformed)?;
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| VerifyError::Malformed)?;
        let header: Header<'_> =
            serde_json::from_slice(&header).map_err(|_| VerifyError::Malformed)?;
        if header.crit.is_some() {
            // No extension is understood here, so none may be critical (RFC 7515 §4.1.11).
            return Err(VerifyError::Malformed);
        }
        let alg = Alg::named(&header.alg).ok_or(VerifyError::Algorithm)?;
        if !self.config.algorithms.contains(&alg) {
            return Err(VerifyError::Algorithm);
        }
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(&self.config.typ)
                || t.strip_prefix("application/")
                    .is_some_and(|t| t.eq_ignore_ascii_case(&self.config.typ))
        });
        if !typ_ok {
            return Err(VerifyError::Type);
        }
        let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
        let key = self.keys().get(&kid).ok_or(VerifyError::UnknownKey)?;
        if key.alg != alg {
            return Err(VerifyError::Algorithm);
        }
        match jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key.key, alg.jwt()) {
            Ok(true) => {}
            Ok(false) => return Err(VerifyError::Signature),
            Err(e) => return Err(map_error(e.kind())),
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| VerifyError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|e| {
            if e.to_string().starts_with("missing field") {
                VerifyError::MissingClaim
            } else {
                VerifyError::Malformed
            }
        })?;
        self.check_claims(&claims)?;
        Ok(claims)
    }

    /// `iss`, `aud`, `exp` and `nbf` (with the leeway) of verified claims.
    fn check_claims(&self, claims: &Claims) -> Result<(), VerifyError> {
        let now = self.clock.unix_seconds();
        let leeway = i64::try_from(self.config.leeway.as_secs()).unwrap_or(i64::MAX);
        if claims.exp.saturating_add(leeway) < now {
            return Err(VerifyError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf.saturating_sub(leeway) > now)
        {
            return Err(VerifyError::NotYetValid);
        }
        if claims.iss != self.config.issuer {
            return Err(VerifyError::Issuer);
        }
        if !claims
            .aud
            .iter()
            .any(|a| self.config.audiences.iter().any(|b| a == b))
        {
            return Err(VerifyError::Audience);
        }
        Ok(())
    }

    /// The checks of one token, refetching the JWKS (bounded) for an unknown key id.
    pub async fn check_token_refetching(&self, token: &str) -> Result<Claims, VerifyError> {
        match self.check_token(token) {
            Err(VerifyError::UnknownKey) => {
                self.refetch_jwks().await;
                self.check_token(token)
            }
            other => other,
        }
    }

    pub fn is_stale(&self) -> bool {
        self.progress.is_stale(self.config.stale_after)
    }

    /// A client-credentials token for the feed, renewed before it expires.
    pub async fn feed_token(&self) -> Result<String, String> {
        let mut slot = self.feed_token.lock().await;
        if let Some(t) = slot.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.token.clone());
        }
        Calls::count(&self.calls.token);
        let res = self
            .http
            .post(&self.endpoints.token)
            .basic_auth(&self.config.client_id, Some(&self.config.client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("the token endpoint answered {}", res.status()));
        }
        let body: TokenResponse = res.json().await.map_err(|e| e.to_string())?;
        let lifetime = body.expires_in.unwrap_or(300);
        // Renewed at four fifths of its life, and at least ten seconds before it ends.
        let renew_after = (lifetime * 4 / 5).min(lifetime.saturating_sub(10));
        *slot = Some(FeedToken {
            token: body.access_token.clone(),
            renew_at: Instant::now() + Duration::from_secs(renew_after),
        });
        Ok(body.access_token)
    }

    /// Forgets the feed token (after the feed refused it).
    pub async fn drop_feed_token(&self) {
        *self.feed_token.lock().await = None;
    }

    /// Whether the pool says `token` is active, remembered for a short while.
    async fn introspect(&self, token: &str) -> Result<bool, VerifyError> {
        let now = Instant::now();
        if let Ok(cache) = self.introspected.lock()
            && let Some((active, at)) = cache.get(token)
            && now.duration_since(*at) < self.config.introspection_cache
        {
            return Ok(*active);
        }
        Calls::count(&self.calls.introspections);
        let res = self
            .http
            .post(&self.endpoints.introspection)
            .basic_auth(&self.config.client_id, Some(&self.config.client_secret))
            .form(&[("token", token)])
            .send()
            .await
            .map_err(|_| VerifyError::Unavailable)?;
        if !res.status().is_success() {
            return Err(VerifyError::Unavailable);
        }
        let body: serde_json::Value = res.json().await.map_err(|_| VerifyError::Unavailable)?;
        let active = body.get("active").and_then(serde_json::Value::as_bool) == Some(true);
        if let Ok(mut cache) = self.introspected.lock() {
            if cache.len() >= INTROSPECTION_CACHE_MAX {
                let ttl = self.config.introspection_cache;
                cache.retain(|_, (_, at)| now.duration_since(*at) < ttl);
                if cache.len() >= INTROSPECTION_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(token.to_owned(), (active, now));
        }
        Ok(active)
    }
}

fn map_error(kind: &ErrorKind) -> VerifyError {
    match kind {
        ErrorKind::InvalidSignature => VerifyError::Signature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => VerifyError::Algorithm,
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        ErrorKind::InvalidIssuer => VerifyError::Issuer,
        ErrorKind::InvalidAudience => VerifyError::Audience,
        ErrorKind::MissingRequiredClaim(_) => VerifyError::MissingClaim,
        ErrorKind::Json(e) if e.to_string().starts_with("missing field") => {
            VerifyError::MissingClaim
        }
        _ => VerifyError::Malformed,
    }
}

impl Verifier {
    /// Starts a verifier for the pool whose issuer is `issuer`
    /// (e.g. `https://gatehouse.example/pools/acme`).
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            config: Config {
                issuer: issuer.into(),
                audiences: Vec::new(),
                typ: "at+jwt".into(),
                algorithms: vec![Alg::ES256, Alg::RS256, Alg::EdDSA],
                leeway: Duration::from_secs(30),
                client_id: String::new(),
                client_secret: String::new(),
                stale_after: Duration::from_secs(15),
                policy: StalenessPolicy::FailClosed,
                introspection_cache: Duration::from_secs(5),
                jwks_refetch_interval: Duration::from_secs(30),
                max_keys: 16,
                retention: Duration::from_secs(3600 + 300),
                backoff_cap: Duration::from_secs(2),
                poll_interval: Duration::from_millis(250),
                stream_retry_after: Duration::from_secs(30),
                stream_idle_timeout: Duration::from_secs(15),
            },
            http: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Verifies an access token: its algorithm, type, key, signature, issuer, audience and
    /// times, then the revocation state. No network call unless its key id is unknown (one
    /// bounded JWKS refetch) or the feed is stale under [`StalenessPolicy::Introspect`].
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let inner = &self.inner;
        let claims = inner.check_token_refetching(token).await?;
        inner
            .revocations
            .check(&claims)
            .map_err(VerifyError::Revoked)?;
        if inner.is_stale() {
            match inner.config.policy {
                StalenessPolicy::FailClosed => return Err(VerifyError::Stale),
                StalenessPolicy::Introspect => {
                    if !inner.introspect(token).await? {
                        return Err(VerifyError::Inactive);
                    }
                }
            }
        }
        Ok(claims)
    }

    /// The verifier's state, for health checks.
    pub fn health(&self) -> Health {
        let inner = &self.inner;
        inner.progress.read(
            inner.config.stale_after,
            inner.revocations.len(),
            inner.calls.read(),
        )
    }

    /// The issuer this verifier accepts tokens of.
    pub fn issuer(&self) -> &str {
        &self.inner.config.issuer
    }

    /// Applies revocation effects directly, as if the feed had carried them (for benchmarks
    /// and tests of a service's own handling; the feed is the normal source).
    #[doc(hidden)]
    pub fn apply_effects_for_testing(&self, effects: &[crate::revocations::Effect]) {
        self.inner.revocations.apply(effects);
    }
}
