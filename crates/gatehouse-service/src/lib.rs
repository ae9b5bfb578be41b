//! Gatehouse's application services. Each operation takes the pool it runs in and the
//! [`Principal`] that asks, checks the permission first, then does one thing through the
//! [`Store`], writing its audit event in the same transaction.

pub mod audit;
pub mod audit_sink;
pub mod backchannel;
pub mod browser;
pub mod cache;
pub mod clients;
pub mod cognito;
pub mod consents;
pub mod custom_auth;
pub mod email_otp;
pub mod error;
pub mod federation;
pub mod federation_logout;
pub mod feed;
pub mod grants;
pub mod groups;
pub mod hooks;
pub mod id_tokens;
pub mod identity_providers;
pub mod impersonation;
pub mod keyring;
pub mod maintenance;
pub mod messages;
pub mod mfa;
pub mod outbound;
pub mod passkeys;
pub mod password_reset;
pub mod pools;
pub mod principal;
mod revocations;
pub mod saml;
pub mod security_events;
pub mod settings;
pub mod signin;
pub mod signing_keys;
pub mod ssf;
pub mod staff_sign_in;
pub mod tokens;
pub mod upstream_oidc;
pub mod user_auth;
pub mod users;
mod verified;

use std::sync::Arc;

use gatehouse_crypto::keys::MasterKey;
use gatehouse_crypto::password::PasswordHasher;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::store::Store;
use gatehouse_domain::time::{Clock, Timestamp};
use gatehouse_domain::urls::PublicUrl;

pub use error::{OAuthError, OAuthErrorCode, ServiceError, ServiceResult};
pub use principal::{Operator, Principal, RequestMeta};

use crate::audit_sink::AuditSink;
use crate::clients::ClientCache;
use crate::keyring::Keyring;
use crate::messages::MessageTransport;
use crate::pools::PoolCache;

/// Everything the services need, built once at start-up and shared.
pub struct Gatehouse {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    hasher: PasswordHasher,
    messages: Arc<dyn MessageTransport>,
    public_url: PublicUrl,
    keyring: Keyring,
    pools: PoolCache,
    clients: ClientCache,
    revocations: revocations::Revocations,
    verified: verified::VerifiedTokens,
    feed_sets: feed::SetCache,
    audit_sink: AuditSink,
    outbound: outbound::Outbound,
    /// Upstream OpenID Connect and OAuth 2.0 providers, through `outbound`.
    upstream: upstream_oidc::UpstreamClient,
    /// Each pool's SAML service provider.
    #[cfg(feature = "saml")]
    saml_sps: saml::SpCache,
    ssf_runtime: ssf::delivery::SsfRuntime,
    /// The pools' hooks: the WebAssembly engine and what it loaded.
    hooks: hooks::HookHost,
}

impl std::fmt::Debug for Gatehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatehouse")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

pub struct GatehouseParts {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub master_key: MasterKey,
    pub hasher: PasswordHasher,
    pub messages: Arc<dyn MessageTransport>,
    /// The externally visible base URL.
    pub public_url: PublicUrl,
    /// The client of every call to a URL a tenant configured.
    pub outbound: outbound::Outbound,
}

impl Gatehouse {
    pub fn new(parts: GatehouseParts) -> Self {
        Self {
            keyring: Keyring::new(parts.master_key),
            pools: PoolCache::default(),
            clients: ClientCache::default(),
            revocations: Default::default(),
            verified: Default::default(),
            feed_sets: Default::default(),
            audit_sink: AuditSink::spawn(parts.store.clone()),
            store: parts.store,
            clock: parts.clock,
            hasher: parts.hasher,
            messages: parts.messages,
            public_url: parts.public_url,
            upstream: upstream_oidc::UpstreamClient::new(parts.outbound.clone()),
            outbound: parts.outbound,
            #[cfg(feature = "saml")]
            saml_sps: Default::default(),
            ssf_runtime: Default::default(),
            hooks: Default::default(),
        }
    }

    /// The limits every WebAssembly hook runs under (fuel, deadline, memory), set once at
    /// start-up.
    pub fn with_hook_limits(mut self, limits: gatehouse_hooks::Limits) -> Self {
        self.hooks = hooks::HookHost::new(limits);
        self
    }

    /// Each pool's share of this instance's hook time, set once at start-up (after
    /// [`Gatehouse::with_hook_limits`], which resets it).
    pub fn with_hook_budget(mut self, budget: hooks::HookBudget) -> Self {
        self.hooks = std::mem::take(&mut self.hooks).with_budget(budget);
        self
    }

    /// The SSF transmitter's limits (long-poll timeout and caps), set once at start-up.
    pub fn with_ssf_settings(mut self, settings: ssf::delivery::SsfSettings) -> Self {
        self.ssf_runtime = ssf::delivery::SsfRuntime::new(settings);
        self
    }

    /// The client of every call to a URL a tenant configured (SSF push, back-channel
    /// logout): the operator's `outbound.allow` policy applies to it.
    pub fn outbound(&self) -> &outbound::Outbound {
        &self.outbound
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Waits until every queued audit event is written (see [`audit_sink`]).
    pub async fn flush_audit(&self) {
        self.audit_sink.flush().await;
    }

    /// Queued audit events that could not be written since start.
    pub fn audit_events_lost(&self) -> u64 {
        self.audit_sink.lost()
    }

    /// What the password hashing workers did: computed, skipped for callers gone, refused.
    pub fn password_hash_counts(&self) -> gatehouse_crypto::password::HashCounts {
        self.hasher.counts()
    }

    pub fn public_url(&self) -> &str {
        self.public_url.as_str()
    }

    /// The pool's OIDC issuer: its base URL, or `{scheme}://{first host}` when it is bound to
    /// host names (SPEC §4).
    pub fn issuer(&self, pool: &Pool) -> String {
        self.public_url.issuer(pool)
    }

    /// The identifiers of the pool's API as a resource server (SPEC §4).
    pub fn api_resources(&self, pool: &Pool) -> Vec<String> {
        self.public_url.api_resources(pool)
    }

    /// The pool API identifier a client named as a scope or an RFC 8707 `resource`, in its
    /// canonical form.
    pub fn api_resource(&self, pool: &Pool, requested: &str) -> Option<String> {
        self.public_url.api_resource(pool, requested)
    }
}
