//! A pool's hooks: tenant code that decides the steps of a custom sign-in (Cognito's Define,
//! Create and Verify Auth Challenge triggers) and shapes the tokens (Pre Token Generation),
//! run as WebAssembly in-process or as an HTTPS webhook.
//!
//! A hook is trusted with every sign-in of its pool: it can let anyone in and put any claim
//! not protected into any token. Setting or removing one therefore needs every permission
//! there is (the service checks), and the claims a hook may never touch are listed here.

use async_trait::async_trait;

use crate::ParseError;
use crate::ids::PoolId;
use crate::store::StoreResult;
use crate::time::Timestamp;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Trigger {
    DefineAuthChallenge,
    CreateAuthChallenge,
    VerifyAuthChallenge,
    PreTokenGeneration,
}

impl Trigger {
    pub const ALL: [Trigger; 4] = [
        Trigger::DefineAuthChallenge,
        Trigger::CreateAuthChallenge,
        Trigger::VerifyAuthChallenge,
        Trigger::PreTokenGeneration,
    ];

    /// The name the API, the CLI and the database use.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::DefineAuthChallenge => "define-auth-challenge",
            Trigger::CreateAuthChallenge => "create-auth-challenge",
            Trigger::VerifyAuthChallenge => "verify-auth-challenge",
            Trigger::PreTokenGeneration => "pre-token-generation",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Trigger::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                ParseError::new(
                    "trigger",
                    format!(
                        "unknown trigger '{s}'; use define-auth-challenge, create-auth-challenge, \
                         verify-auth-challenge or pre-token-generation"
                    ),
                )
            })
    }
}

/// The kind of a WebAssembly hook: a component exporting `handle: func(string) ->
/// result<string, string>`, or a core module exporting `memory`, `alloc` and `handle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    Component,
    CoreModule,
}

impl WasmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WasmKind::Component => "component",
            WasmKind::CoreModule => "core-module",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "component" => Ok(WasmKind::Component),
            "core-module" => Ok(WasmKind::CoreModule),
            _ => Err(ParseError::new("kind", format!("unknown wasm kind '{s}'"))),
        }
    }
}

/// How a hook runs.
#[derive(Clone, PartialEq, Eq)]
pub enum HookRuntime {
    /// In-process WebAssembly: the module as uploaded, and what compiling it made (sealed
    /// with the master key, since loading it runs it as native code: only bytes this
    /// service compiled are ever loaded), for the engine build `compatibility` names.
    Wasm {
        kind: WasmKind,
        /// SHA-256 (hex) of the uploaded module: the hook's identity in caches and answers.
        sha256: String,
        wasm: Vec<u8>,
        compatibility: String,
        sealed_artifact: Vec<u8>,
    },
    /// An HTTPS endpoint the event is POSTed to, signed with a secret kept sealed.
    Webhook { url: String, sealed_secret: Vec<u8> },
}

impl std::fmt::Debug for HookRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookRuntime::Wasm {
                kind,
                sha256,
                wasm,
                compatibility,
                ..
            } => f
                .debug_struct("Wasm")
                .field("kind", kind)
                .field("sha256", sha256)
                .field("bytes", &wasm.len())
                .field("compatibility", compatibility)
                .finish(),
            HookRuntime::Webhook { url, .. } => f
                .debug_struct("Webhook")
                .field("url", url)
                .field("sealed_secret", &"[redacted]")
                .finish(),
        }
    }
}

/// A pool's hook for one trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub pool: PoolId,
    pub trigger: Trigger,
    pub runtime: HookRuntime,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Hook {
    /// The label a webhook's secret and a module's artifact are sealed under, bound to the
    /// pool (by the master key's additional data) and to the trigger.
    pub fn seal_label(trigger: Trigger, what: &str) -> String {
        format!("hook:{}:{what}", trigger.as_str())
    }
}

/// A hook as listed: what it is, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSummary {
    pub trigger: Trigger,
    /// `wasm` or `webhook`.
    pub runtime: &'static str,
    /// The wasm kind, for a WebAssembly hook.
    pub kind: Option<WasmKind>,
    /// The SHA-256 (hex) of the module, for a WebAssembly hook.
    pub sha256: Option<String>,
    /// The size of the module in bytes, for a WebAssembly hook.
    pub size: Option<i64>,
    /// The endpoint, for a webhook.
    pub url: Option<String>,
    pub updated_at: Timestamp,
}

/// Claims no hook may add, change or remove: the token's identity, audience and lifetime,
/// what binds it to a session, who acts (impersonation), and what grants access here.
/// Cognito's list (`acr amr aud at_hash auth_time azp cognito:username exp iat identities iss
/// jti nbf nonce origin_jti sub token_use`) and Gatehouse's own.
pub const PROTECTED_CLAIMS: &[&str] = &[
    "acr",
    "act",
    "amr",
    "at_hash",
    "aud",
    "auth_time",
    "azp",
    "client_id",
    "cnf",
    "cognito:groups",
    "cognito:username",
    "event_id",
    "exp",
    "groups",
    "iat",
    "identities",
    "impersonation",
    "impersonator",
    "iss",
    "jti",
    "may_act",
    "nbf",
    "nonce",
    "origin_jti",
    "roles",
    "scope",
    "sid",
    "staff",
    "sub",
    "token_use",
    "typ",
    "username",
];

pub fn is_protected_claim(name: &str) -> bool {
    PROTECTED_CLAIMS.contains(&name)
}

/// Reads of hooks, outside any transaction (their changes go through
/// [`crate::txn::PoolWrite`]).
#[async_trait]
pub trait HookStore: Send + Sync {
    /// The pool's hooks, without their bytes.
    async fn hook_summaries(&self, pool: PoolId) -> StoreResult<Vec<HookSummary>>;
    /// One hook whole.
    async fn hook(&self, pool: PoolId, trigger: Trigger) -> StoreResult<Option<Hook>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_round_trip_and_unknown_ones_are_refused() {
        for t in Trigger::ALL {
            assert_eq!(Trigger::parse(t.as_str()).ok(), Some(t));
        }
        assert!(Trigger::parse("post-confirmation").is_err());
        assert!(Trigger::parse("").is_err());
    }

    #[test]
    fn identity_and_impersonation_claims_are_protected() {
        for c in [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "jti",
            "act",
            "sid",
            "token_use",
        ] {
            assert!(is_protected_claim(c), "{c}");
        }
        assert!(!is_protected_claim("tenant_tier"));
    }
}
