//! A pool's hooks: setting them (the admin API and the CLI), and running them.
//!
//! A WebAssembly hook is compiled when it is uploaded, on a blocking thread, never on a
//! request; what compiling made is stored sealed with the master key (loading it runs it as
//! native code, so only bytes this service compiled are ever loaded) and loaded once per
//! process and version of the hook. A webhook is an HTTPS endpoint reached through the
//! outbound policy, the event signed with the hook's secret (`webhook.rs`).
//!
//! Running a hook gives the `response` object of the event it answered, or fails closed:
//! a trap, a deadline, fuel or memory exhausted, or an answer that is not the event's JSON
//! is `ServiceError::HookFailed`, audited as `hook.failed` with its reason.

mod budget;
mod events;
mod pre_token;
mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gatehouse_crypto::secret::{Secret, sha256};
use gatehouse_domain::ParseError;
use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::hooks::{Hook, HookRuntime, HookSummary, Trigger, WasmKind};
use gatehouse_domain::ids::PoolId;
use gatehouse_domain::permission::{Permission, PermissionSet};
use gatehouse_domain::pool::Pool;
use gatehouse_hooks::{HookEngine, HookKind, Limits};
use serde_json::{Map, Value};

pub use budget::{HookBudget, WEBHOOK_CALL_COST};
pub(crate) use events::{envelope, user_attributes};
pub use pre_token::TokenOverrides;
pub(crate) use pre_token::{PreTokenSubject, TokenSource};

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::{Gatehouse, Principal, RequestMeta};

/// How long a pool's list of hooks is trusted before it is read again: a hook set through
/// another instance takes effect here within this.
const SUMMARY_TTL: Duration = Duration::from_secs(1);
/// The largest hook answer read, from a module or a webhook.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The largest module accepted.
pub const MAX_WASM_BYTES: usize = 32 * 1024 * 1024;

/// A hook ready to run.
#[derive(Clone)]
enum Runnable {
    Wasm(gatehouse_hooks::Hook),
    Webhook { url: String, secret: Arc<Secret> },
}

/// A pool's hooks as last read, and when.
type Listed = (Instant, Arc<Vec<HookSummary>>);

/// The process's hook engine and what it has loaded.
pub struct HookHost {
    limits: Limits,
    engine: OnceLock<Result<HookEngine, String>>,
    summaries: Mutex<HashMap<PoolId, Listed>>,
    /// Loaded hooks by pool and trigger, with the version (`updated_at`, digest) loaded.
    loaded: Mutex<HashMap<(PoolId, Trigger), (String, Runnable)>>,
    /// Each pool's share of this instance's hook time.
    budget: HookBudget,
}

impl Default for HookHost {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl HookHost {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            engine: OnceLock::new(),
            summaries: Mutex::default(),
            loaded: Mutex::default(),
            budget: HookBudget::default(),
        }
    }

    /// This host with each pool's share of hook time set to `budget`.
    pub fn with_budget(mut self, budget: HookBudget) -> Self {
        self.budget = budget;
        self
    }

    /// The engine, made on first use (most pools have no WebAssembly hook).
    fn engine(&self) -> ServiceResult<&HookEngine> {
        self.engine
            .get_or_init(|| HookEngine::new(self.limits.clone()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| ServiceError::internal(format!("the hook engine cannot start: {e}")))
    }

    fn forget(&self, pool: PoolId) {
        if let Ok(mut s) = self.summaries.lock() {
            s.remove(&pool);
        }
        if let Ok(mut l) = self.loaded.lock() {
            l.retain(|(p, _), _| *p != pool);
        }
    }
}

/// What an administrator sets a trigger to.
pub enum HookSource {
    /// A WebAssembly component or core module.
    Wasm(Vec<u8>),
    /// An HTTPS endpoint and the secret the events are signed with.
    Webhook { url: String, secret: Secret },
}

fn hook_failed(trigger: Trigger, reason: impl Into<String>) -> ServiceError {
    ServiceError::HookFailed {
        trigger: trigger.as_str(),
        reason: reason.into(),
    }
}

fn version_of(summary: &HookSummary) -> String {
    format!(
        "{}:{}:{}",
        summary.updated_at.as_secs(),
        summary.sha256.as_deref().unwrap_or_default(),
        summary.url.as_deref().unwrap_or_default()
    )
}

fn kind_of(kind: WasmKind) -> HookKind {
    match kind {
        WasmKind::Component => HookKind::Component,
        WasmKind::CoreModule => HookKind::CoreModule,
    }
}

impl Gatehouse {
    /// Whoever sets or removes a hook decides every sign-in of the pool and what its tokens
    /// say: it must hold every permission there is.
    fn ensure_may_set_hooks(&self, principal: Option<&Principal>) -> ServiceResult<()> {
        if let Some(principal) = principal {
            principal.require(Permission::UpdateHooks)?;
            let everything = PermissionSet::from_permissions(Permission::ALL.iter().copied());
            principal.ensure_dominates(&everything, "a hook (it decides every sign-in)")?;
        }
        Ok(())
    }

    /// Sets the pool's hook for `trigger` (replacing the one there was). A module is
    /// compiled here, on a blocking thread; one that does not compile, imports anything or
    /// lacks the exports is refused with the reason. A webhook's URL must pass the outbound
    /// policy.
    pub async fn set_hook(
        &self,
        pool: &Pool,
        principal: Option<&Principal>,
        trigger: Trigger,
        source: HookSource,
        meta: &RequestMeta,
    ) -> ServiceResult<HookSummary> {
        self.ensure_may_set_hooks(principal)?;
        let now = self.now();
        let runtime = match source {
            HookSource::Wasm(wasm) => {
                if wasm.len() > MAX_WASM_BYTES {
                    return Err(ParseError::new(
                        "wasm",
                        format!("a module is at most {MAX_WASM_BYTES} bytes"),
                    )
                    .into());
                }
                let compatibility = self.hooks.engine()?.compatibility();
                let sha256 = wasm_digest(&wasm);
                let (kind, artifact) =
                    match self.compiled_already(pool, &sha256, &compatibility).await? {
                        Some(done) => done,
                        None => self.compile_hook(&wasm).await?,
                    };
                HookRuntime::Wasm {
                    kind,
                    sha256,
                    compatibility,
                    sealed_artifact: self.keyring.seal_bytes(
                        pool.id,
                        &Hook::seal_label(trigger, "artifact"),
                        &artifact,
                    )?,
                    wasm,
                }
            }
            HookSource::Webhook { url, secret } => {
                // https (http only where Gatehouse itself is served over http), and an
                // address the outbound policy allows; checked again at every call.
                let checked = self
                    .outbound
                    .check_target(&url)
                    .map_err(|e| ParseError::new("url", e.to_string()))?;
                if secret.expose().len() < 16 {
                    return Err(ParseError::new(
                        "secret",
                        "a webhook's secret is at least 16 characters",
                    )
                    .into());
                }
                HookRuntime::Webhook {
                    url: checked.to_string(),
                    sealed_secret: self.keyring.seal_code(
                        pool.id,
                        &Hook::seal_label(trigger, "secret"),
                        &secret,
                    )?,
                }
            }
        };
        let hook = Hook {
            pool: pool.id,
            trigger,
            runtime,
            created_at: now,
            updated_at: now,
        };
        let mut w = self.store.write(pool.id).await?;
        w.put_hook(&hook).await?;
        let mut event = self
            .event(pool, AuditAction::HookSet, principal, meta)
            .subject(trigger.as_str());
        event = match &hook.runtime {
            HookRuntime::Wasm { kind, sha256, .. } => event
                .detail("runtime", "wasm")
                .detail("kind", kind.as_str())
                .detail("sha256", sha256.as_str()),
            HookRuntime::Webhook { url, .. } => event
                .detail("runtime", "webhook")
                .detail("url", url.as_str()),
        };
        w.audit(&event).await?;
        w.commit().await?;
        self.hooks.forget(pool.id);
        self.hook_summaries(pool)
            .await?
            .iter()
            .find(|s| s.trigger == trigger)
            .cloned()
            .ok_or(ServiceError::NotFound("hook"))
    }

    /// Compiles a module on a blocking thread: its kind and artifact, or why it is not a
    /// hook.
    async fn compile_hook(&self, wasm: &[u8]) -> ServiceResult<(WasmKind, Vec<u8>)> {
        let engine = self.hooks.engine()?.clone();
        let wasm = wasm.to_vec();
        let compiled = tokio::task::spawn_blocking(move || engine.compile(&wasm))
            .await
            .map_err(|e| ServiceError::internal(format!("the compiler stopped: {e}")))?
            .map_err(|e| match e {
                gatehouse_hooks::HookError::Invalid(m) => {
                    ServiceError::Invalid(ParseError::new("wasm", m))
                }
                other => ServiceError::internal(format!("compiling a hook: {other}")),
            })?;
        let kind = match compiled.kind {
            HookKind::Component => WasmKind::Component,
            HookKind::CoreModule => WasmKind::CoreModule,
        };
        Ok((kind, compiled.artifact))
    }

    /// The artifact of the same module, compiled by this engine build for another trigger
    /// of the pool (one module often answers every trigger): compiling takes seconds for a
    /// large component, opening a sealed copy microseconds.
    async fn compiled_already(
        &self,
        pool: &Pool,
        sha256: &str,
        compatibility: &str,
    ) -> ServiceResult<Option<(WasmKind, Vec<u8>)>> {
        let summaries = self.store.hook_summaries(pool.id).await?;
        for s in summaries
            .iter()
            .filter(|s| s.sha256.as_deref() == Some(sha256))
        {
            if let Some(Hook {
                runtime:
                    HookRuntime::Wasm {
                        kind,
                        compatibility: c,
                        sealed_artifact,
                        ..
                    },
                ..
            }) = self.store.hook(pool.id, s.trigger).await?
                && c == compatibility
                && let Some(artifact) = self.keyring.open_bytes(
                    pool.id,
                    &Hook::seal_label(s.trigger, "artifact"),
                    &sealed_artifact,
                )
            {
                return Ok(Some((kind, artifact)));
            }
        }
        Ok(None)
    }

    pub async fn list_hooks(
        &self,
        pool: &Pool,
        principal: Option<&Principal>,
    ) -> ServiceResult<Vec<HookSummary>> {
        if let Some(principal) = principal {
            principal.require(Permission::GetHooks)?;
        }
        Ok(self.store.hook_summaries(pool.id).await?)
    }

    pub async fn delete_hook(
        &self,
        pool: &Pool,
        principal: Option<&Principal>,
        trigger: Trigger,
        meta: &RequestMeta,
    ) -> ServiceResult<()> {
        self.ensure_may_set_hooks(principal)?;
        let mut w = self.store.write(pool.id).await?;
        if !w.delete_hook(trigger).await? {
            return Err(ServiceError::NotFound("hook"));
        }
        let event = self
            .event(pool, AuditAction::HookDeleted, principal, meta)
            .subject(trigger.as_str());
        w.audit(&event).await?;
        w.commit().await?;
        self.hooks.forget(pool.id);
        Ok(())
    }

    /// The pool's hooks without their bytes, from a cache a second old at most.
    async fn hook_summaries(&self, pool: &Pool) -> ServiceResult<Arc<Vec<HookSummary>>> {
        if let Ok(cache) = self.hooks.summaries.lock()
            && let Some((at, list)) = cache.get(&pool.id)
            && at.elapsed() < SUMMARY_TTL
        {
            return Ok(list.clone());
        }
        let list = Arc::new(self.store.hook_summaries(pool.id).await?);
        if let Ok(mut cache) = self.hooks.summaries.lock() {
            cache.insert(pool.id, (Instant::now(), list.clone()));
        }
        Ok(list)
    }

    /// Whether the pool has a hook for `trigger`.
    pub(crate) async fn has_hook(&self, pool: &Pool, trigger: Trigger) -> ServiceResult<bool> {
        Ok(self
            .hook_summaries(pool)
            .await?
            .iter()
            .any(|s| s.trigger == trigger))
    }

    /// The hook for `trigger`, loaded (once per version of it).
    async fn runnable(&self, pool: &Pool, trigger: Trigger) -> ServiceResult<Option<Runnable>> {
        let summaries = self.hook_summaries(pool).await?;
        let Some(summary) = summaries.iter().find(|s| s.trigger == trigger) else {
            return Ok(None);
        };
        let version = version_of(summary);
        if let Ok(loaded) = self.hooks.loaded.lock()
            && let Some((v, runnable)) = loaded.get(&(pool.id, trigger))
            && *v == version
        {
            return Ok(Some(runnable.clone()));
        }
        // The same module loaded for another trigger of the pool is the same hook.
        if let Some(sha) = &summary.sha256
            && let Ok(loaded) = self.hooks.loaded.lock()
            && let Some(runnable) = loaded.iter().find_map(|((p, t), (v, r))| {
                (*p == pool.id && *t != trigger && v.contains(sha.as_str())).then(|| r.clone())
            })
        {
            drop(loaded);
            if let Ok(mut loaded) = self.hooks.loaded.lock() {
                loaded.insert((pool.id, trigger), (version, runnable.clone()));
            }
            return Ok(Some(runnable));
        }
        let Some(hook) = self.store.hook(pool.id, trigger).await? else {
            return Ok(None);
        };
        let runnable = match hook.runtime {
            HookRuntime::Wasm {
                kind,
                sealed_artifact,
                compatibility,
                wasm,
                ..
            } => {
                let engine = self.hooks.engine()?.clone();
                let artifact = if compatibility == engine.compatibility() {
                    self.keyring
                        .open_bytes(
                            pool.id,
                            &Hook::seal_label(trigger, "artifact"),
                            &sealed_artifact,
                        )
                        .ok_or_else(|| {
                            hook_failed(trigger, "its compiled artifact does not open")
                        })?
                } else {
                    // Compiled by another build of the engine: compiled again, once, here.
                    tracing::warn!(pool = %pool.slug, trigger = trigger.as_str(),
                        "a hook compiled by another engine build is compiled again");
                    tokio::task::spawn_blocking(move || engine.compile(&wasm))
                        .await
                        .map_err(|e| ServiceError::internal(format!("the compiler stopped: {e}")))?
                        .map_err(|e| hook_failed(trigger, format!("it no longer compiles: {e}")))?
                        .artifact
                };
                let engine = self.hooks.engine()?.clone();
                let loaded =
                    tokio::task::spawn_blocking(move || engine.load(kind_of(kind), &artifact))
                        .await
                        .map_err(|e| ServiceError::internal(format!("the loader stopped: {e}")))?
                        .map_err(|e| hook_failed(trigger, format!("it cannot be loaded: {e}")))?;
                Runnable::Wasm(loaded)
            }
            HookRuntime::Webhook { url, sealed_secret } => Runnable::Webhook {
                url,
                secret: Arc::new(
                    self.keyring
                        .open_code(
                            pool.id,
                            &Hook::seal_label(trigger, "secret"),
                            &sealed_secret,
                        )
                        .ok_or_else(|| hook_failed(trigger, "its secret does not open"))?,
                ),
            },
        };
        if let Ok(mut loaded) = self.hooks.loaded.lock() {
            loaded.insert((pool.id, trigger), (version, runnable.clone()));
        }
        Ok(Some(runnable))
    }

    /// Runs the pool's hook for `trigger` on `event`, and answers the `response` object it
    /// filled in; `None` when the pool has no such hook. A hook that fails, or answers what
    /// is not the event's JSON with an object `response`, fails closed, audited.
    pub(crate) async fn run_hook(
        &self,
        pool: &Pool,
        trigger: Trigger,
        event: &Value,
        meta: &RequestMeta,
    ) -> ServiceResult<Option<Map<String, Value>>> {
        let Some(runnable) = self.runnable(pool, trigger).await? else {
            return Ok(None);
        };
        let started = Instant::now();
        if let Err(retry_after_secs) = self.hooks.budget.admit(pool.id, started) {
            tracing::warn!(
                pool = %pool.slug,
                trigger = trigger.as_str(),
                "a hook call was refused: the pool's hooks are over their time budget"
            );
            return Err(ServiceError::Busy {
                detail: "this pool's hooks are over their time budget; try again later".to_owned(),
                retry_after_secs,
            });
        }
        let text = event.to_string();
        let answer = match &runnable {
            Runnable::Wasm(hook) => {
                let answer = hook
                    .call(text)
                    .await
                    .map_err(|f| (f.reason().to_owned(), f.to_string()));
                let now = Instant::now();
                self.hooks
                    .budget
                    .charge(pool.id, now.saturating_duration_since(started), now);
                answer
            }
            Runnable::Webhook { url, secret } => {
                self.hooks
                    .budget
                    .charge(pool.id, WEBHOOK_CALL_COST, Instant::now());
                self.call_webhook(url, secret, trigger, text)
                    .await
                    .map_err(|e| ("webhook".to_owned(), e))
            }
        };
        let response = match answer {
            Ok(output) => read_response(&output).map_err(|e| ("bad_output".to_owned(), e)),
            Err(e) => Err(e),
        };
        match response {
            Ok(response) => Ok(Some(response)),
            Err((reason, detail)) => {
                let event = self
                    .event(pool, AuditAction::HookFailed, None, meta)
                    .subject(trigger.as_str())
                    .detail("reason", reason.as_str())
                    .detail("detail", truncate(&detail, 300))
                    .detail("elapsed_ms", started.elapsed().as_millis() as i64)
                    .denied();
                self.store.append_audit(&event).await?;
                Err(hook_failed(trigger, reason))
            }
        }
    }
}

/// The `response` object of a hook's answer: the event, as JSON, with `response` filled in
/// (an answer of `{"response": {…}}` alone is read the same).
fn read_response(output: &str) -> Result<Map<String, Value>, String> {
    if output.len() > MAX_ANSWER_BYTES {
        return Err(format!("the answer is over {MAX_ANSWER_BYTES} bytes"));
    }
    let value: Value =
        serde_json::from_str(output).map_err(|e| format!("the answer is not JSON: {e}"))?;
    match value {
        Value::Object(mut event) => match event.remove("response") {
            Some(Value::Object(response)) => Ok(response),
            _ => Err("the answer has no `response` object".to_owned()),
        },
        _ => Err("the answer is not a JSON object".to_owned()),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 (hex) of a module, as a hook's listing names it.
pub fn wasm_digest(wasm: &[u8]) -> String {
    hex(&sha256(wasm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_object_is_read_and_anything_else_refused() {
        let ok = read_response(r#"{"version":"1","response":{"issueTokens":true}}"#).unwrap();
        assert_eq!(ok["issueTokens"], Value::Bool(true));
        assert!(read_response(r#"{"response":{}}"#).unwrap().is_empty());
        for bad in [
            "",
            "not json",
            "[]",
            "42",
            r#"{"response":null}"#,
            r#"{"response":"yes"}"#,
            r#"{"version":"1"}"#,
        ] {
            assert!(read_response(bad).is_err(), "{bad}");
        }
        let huge = format!(
            r#"{{"response":{{"x":"{}"}}}}"#,
            "a".repeat(MAX_ANSWER_BYTES)
        );
        assert!(read_response(&huge).is_err());
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
