//! The engine: one wasmtime `Engine` with fuel and epoch interruption, its epoch ticker, and
//! what turns an upload into an artifact (`compile`) and an artifact into a [`Hook`] (`load`).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use aws_lc_rs::digest;
use tokio::sync::Semaphore;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::{Config, Engine, ExternType, Precompiled, ValType};

use crate::call::{CallState, Hook, Runner};
use crate::{HookError, Limits};

/// The largest WebAssembly upload accepted (a JavaScript hook is about 12 MB).
pub const MAX_WASM_BYTES: usize = 32 << 20;

/// What kind of WebAssembly a hook is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookKind {
    /// A component of the world `gatehouse:hooks/trigger` (`wit/hooks.wit`).
    Component,
    /// A core module exporting `memory`, `alloc` and `handle`.
    CoreModule,
}

impl HookKind {
    /// `"component"` or `"core-module"`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::Component => "component",
            HookKind::CoreModule => "core-module",
        }
    }

    /// The kind named by [`HookKind::as_str`].
    pub fn parse(s: &str) -> Option<HookKind> {
        match s {
            "component" => Some(HookKind::Component),
            "core-module" => Some(HookKind::CoreModule),
            _ => None,
        }
    }

    fn tag(self) -> u8 {
        match self {
            HookKind::Component => b'c',
            HookKind::CoreModule => b'm',
        }
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HookKind {
    type Err = HookError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HookKind::parse(s).ok_or_else(|| HookError::Invalid(format!("unknown hook kind `{s}`")))
    }
}

/// A compiled hook, ready to store: `artifact` goes to [`HookEngine::load`] later, in this
/// build of the engine only (see [`HookEngine::compatibility`]).
#[derive(Clone)]
pub struct Compiled {
    pub kind: HookKind,
    pub artifact: Vec<u8>,
    /// SHA-256 of the WebAssembly given to `compile`.
    pub sha256: [u8; 32],
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiled")
            .field("kind", &self.kind)
            .field("artifact_bytes", &self.artifact.len())
            .field("sha256", &hex(&self.sha256))
            .finish()
    }
}

/// Runs hooks: cheap to clone (an `Arc` inside). The epoch ticker thread stops when the last
/// clone, and the last [`Hook`] loaded by it, are dropped.
#[derive(Clone)]
pub struct HookEngine {
    pub(crate) inner: Arc<EngineInner>,
}

impl fmt::Debug for HookEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookEngine")
            .field("limits", &self.inner.limits)
            .field("compatibility", &self.compatibility())
            .finish_non_exhaustive()
    }
}

pub(crate) struct EngineInner {
    pub(crate) engine: Engine,
    pub(crate) limits: Limits,
    pub(crate) slots: Arc<Semaphore>,
    compatibility: [u8; 32],
    _ticker: Ticker,
}

/// Increments the engine's epoch every `period` until dropped.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine, period: std::time::Duration) -> Result<Ticker, HookError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("gatehouse-hooks-epoch".into())
            .spawn(move || {
                // A message or a dropped sender both end the loop.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    engine.increment_epoch();
                }
            })
            .map_err(|e| {
                tracing::error!(error = %e, "hooks: could not start the epoch ticker");
                HookError::Internal
            })?;
        Ok(Ticker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Feeds `Hash` output into SHA-256, to turn wasmtime's compatibility hash into bytes.
struct Sha256Hasher(digest::Context);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An artifact: this header, then wasmtime's serialized module or component. The header is
/// checked before wasmtime sees the rest, so an artifact of another build is refused without
/// being deserialized.
const ARTIFACT_MAGIC: &[u8; 8] = b"GHHOOK\x00\x01";
const HEADER_LEN: usize = ARTIFACT_MAGIC.len() + 1 + 32;

fn internal(what: &'static str) -> impl FnOnce(wasmtime::Error) -> HookError {
    move |e| {
        tracing::error!(error = %format!("{e:#}"), "hooks: {what}");
        HookError::Internal
    }
}

impl HookEngine {
    /// An engine with fuel metering and epoch interruption, and its epoch ticker.
    pub fn new(limits: Limits) -> Result<HookEngine, HookError> {
        limits.check()?;
        let mut config = Config::new();
        config.consume_fuel(true);
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        // A trap's text goes to the audit log: its kind, not a stack of anonymous frames.
        config.wasm_backtrace_max_frames(None);
        let engine = Engine::new(&config).map_err(internal("engine configuration refused"))?;
        let mut hasher = Sha256Hasher(digest::Context::new(&digest::SHA256));
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let mut compatibility = [0u8; 32];
        compatibility.copy_from_slice(hasher.0.finish().as_ref());
        let ticker = Ticker::start(engine.clone(), limits.tick())?;
        Ok(HookEngine {
            inner: Arc::new(EngineInner {
                engine,
                slots: Arc::new(Semaphore::new(limits.max_concurrent)),
                limits,
                compatibility,
                _ticker: ticker,
            }),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The hex of (the SHA-256 of) `Engine::precompile_compatibility_hash`: artifacts compiled
    /// by an engine of another compatibility don't load. Store it beside an artifact to know
    /// when to compile the hook's WebAssembly again.
    pub fn compatibility(&self) -> String {
        hex(&self.inner.compatibility)
    }

    /// Validates and compiles a hook (blocking, CPU heavy: the caller runs it on a blocking
    /// thread).
    ///
    /// Accepts a component exporting `handle: func(event: string) -> result<string, string>`
    /// (the world in `wit/hooks.wit`) or a core module exporting `memory`,
    /// `alloc(len: i32) -> i32` and `handle(ptr: i32, len: i32) -> i64` (the answer's pointer
    /// in the high 32 bits, its length in the low). Refuses anything that imports anything
    /// (naming the first import), lacks the exports, is over 32 MiB, or is not WebAssembly.
    pub fn compile(&self, wasm: &[u8]) -> Result<Compiled, HookError> {
        if wasm.len() > MAX_WASM_BYTES {
            return Err(HookError::Invalid(format!(
                "{} bytes; a hook may have at most {MAX_WASM_BYTES} (32 MiB)",
                wasm.len()
            )));
        }
        let kind = sniff(wasm)?;
        let engine = &self.inner.engine;
        let body = match kind {
            HookKind::CoreModule => {
                screen_core_module(wasm)?;
                let module = wasmtime::Module::new(engine, wasm).map_err(invalid_wasm)?;
                check_core_module(&module)?;
                module
                    .serialize()
                    .map_err(internal("serializing a module"))?
            }
            HookKind::Component => {
                let component =
                    wasmtime::component::Component::new(engine, wasm).map_err(invalid_wasm)?;
                check_component(engine, &component)?;
                component
                    .serialize()
                    .map_err(internal("serializing a component"))?
            }
        };
        let mut artifact = Vec::with_capacity(HEADER_LEN + body.len());
        artifact.extend_from_slice(ARTIFACT_MAGIC);
        artifact.push(kind.tag());
        artifact.extend_from_slice(&self.inner.compatibility);
        artifact.extend_from_slice(&body);
        Ok(Compiled {
            kind,
            artifact,
            sha256: sha256(wasm),
        })
    }

    /// Loads an artifact that [`HookEngine::compile`] produced: cheap (a deserialization and
    /// an `InstancePre`, no compilation).
    ///
    /// The artifact is native code. Only pass bytes that `compile` produced and that you
    /// authenticated: the service stores an artifact sealed with its master key (AES-256-GCM)
    /// and unseals it (which authenticates it) just before `load`. An artifact of another build
    /// of the engine is refused with [`HookError::Incompatible`] before it is deserialized.
    pub fn load(&self, kind: HookKind, artifact: &[u8]) -> Result<Hook, HookError> {
        let (magic, rest) = artifact
            .split_at_checked(ARTIFACT_MAGIC.len())
            .ok_or_else(not_an_artifact)?;
        if magic != ARTIFACT_MAGIC {
            return Err(not_an_artifact());
        }
        let (&tag, rest) = rest.split_first().ok_or_else(not_an_artifact)?;
        if tag != kind.tag() {
            return Err(HookError::Invalid(format!(
                "the artifact is not of a {kind} hook"
            )));
        }
        let (compatibility, body) = rest.split_at_checked(32).ok_or_else(not_an_artifact)?;
        if compatibility != self.inner.compatibility {
            return Err(HookError::Incompatible);
        }
        let engine = &self.inner.engine;
        let expected = match kind {
            HookKind::Component => Precompiled::Component,
            HookKind::CoreModule => Precompiled::Module,
        };
        if Engine::detect_precompiled(body) != Some(expected) {
            return Err(not_an_artifact());
        }
        let runner = match kind {
            HookKind::CoreModule => {
                let module = deserialize_module(engine, body)?;
                let pre = wasmtime::Linker::<CallState>::new(engine)
                    .instantiate_pre(&module)
                    .map_err(|e| HookError::Invalid(format!("{e:#}")))?;
                Runner::Core(pre)
            }
            HookKind::Component => {
                let component = deserialize_component(engine, body)?;
                let export = component
                    .get_export_index(None, "handle")
                    .ok_or_else(|| HookError::Invalid("no export `handle`".into()))?;
                let pre = wasmtime::component::Linker::<CallState>::new(engine)
                    .instantiate_pre(&component)
                    .map_err(|e| HookError::Invalid(format!("{e:#}")))?;
                Runner::Component(pre, export)
            }
        };
        Ok(Hook::new(self.clone(), kind, runner))
    }
}

fn not_an_artifact() -> HookError {
    HookError::Invalid("not an artifact of a compiled hook".into())
}

fn invalid_wasm(e: wasmtime::Error) -> HookError {
    HookError::Invalid(format!("not valid WebAssembly: {e:#}"))
}

fn deserialization_failed(e: wasmtime::Error) -> HookError {
    // The header matched, so this is a build whose wasmtime disagrees with the header's
    // compatibility (or the artifact was written by another program): compile again.
    tracing::warn!(error = %format!("{e:#}"), "hooks: an artifact did not deserialize");
    HookError::Incompatible
}

// The one unsafe operation of the crate. Deserializing trusts the bytes to be native code that
// this engine produced; they are not validated again.
#[allow(unsafe_code)]
fn deserialize_module(engine: &Engine, body: &[u8]) -> Result<wasmtime::Module, HookError> {
    // SAFETY: `load`'s contract: `body` is what `compile` of an engine of this build serialized
    // (the header's compatibility hash was just checked against this engine), and the caller
    // authenticated the artifact (the service keeps it sealed with its master key, AES-256-GCM,
    // and unseals it just before loading), so it was not altered since `compile` wrote it.
    unsafe { wasmtime::Module::deserialize(engine, body) }.map_err(deserialization_failed)
}

#[allow(unsafe_code)]
fn deserialize_component(
    engine: &Engine,
    body: &[u8],
) -> Result<wasmtime::component::Component, HookError> {
    // SAFETY: as for `deserialize_module`: bytes `compile` produced with an engine of this
    // build, authenticated by the caller.
    unsafe { wasmtime::component::Component::deserialize(engine, body) }
        .map_err(deserialization_failed)
}

/// Core module or component, by the preamble.
fn sniff(wasm: &[u8]) -> Result<HookKind, HookError> {
    let not_wasm = || HookError::Invalid("not WebAssembly (no `\\0asm` preamble)".into());
    let preamble = wasm.get(..8).ok_or_else(not_wasm)?;
    if &preamble[..4] != b"\0asm" {
        return Err(not_wasm());
    }
    match &preamble[4..8] {
        [1, 0, 0, 0] => Ok(HookKind::CoreModule),
        [_, _, 1, 0] => Ok(HookKind::Component),
        other => Err(HookError::Invalid(format!(
            "unsupported WebAssembly version {other:?}"
        ))),
    }
}

fn func_is(
    ty: &ExternType,
    params: &[fn(&ValType) -> bool],
    results: &[fn(&ValType) -> bool],
) -> bool {
    let ExternType::Func(f) = ty else {
        return false;
    };
    f.params().len() == params.len()
        && f.results().len() == results.len()
        && f.params().zip(params).all(|(p, is)| is(&p))
        && f.results().zip(results).all(|(r, is)| is(&r))
}

/// What a core module's sections say before it is compiled: an import, or a missing
/// export, refuses it at once (compiling waits its turn behind other compiles on the
/// compiler's threads). [`check_core_module`] checks the compiled module in full.
fn screen_core_module(wasm: &[u8]) -> Result<(), HookError> {
    let mut exports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        // Malformed bytes are the compiler's to describe.
        let Ok(payload) = payload else {
            return Ok(());
        };
        match payload {
            wasmparser::Payload::ImportSection(section) => {
                if let Some(Ok(import)) = section.into_imports().next() {
                    return Err(HookError::Invalid(format!(
                        "the module imports `{}::{}`; a hook may import nothing",
                        import.module, import.name
                    )));
                }
            }
            wasmparser::Payload::ExportSection(section) => {
                exports.extend(section.into_iter().flatten().map(|e| e.name.to_owned()));
            }
            _ => {}
        }
    }
    for name in ["memory", "alloc", "handle"] {
        if !exports.iter().any(|e| e == name) {
            return Err(HookError::Invalid(format!(
                "the module does not export `{name}`"
            )));
        }
    }
    Ok(())
}

fn check_core_module(module: &wasmtime::Module) -> Result<(), HookError> {
    if let Some(import) = module.imports().next() {
        return Err(HookError::Invalid(format!(
            "the module imports `{}::{}`; a hook may import nothing",
            import.module(),
            import.name()
        )));
    }
    let export = |name: &str| {
        module
            .get_export(name)
            .ok_or_else(|| HookError::Invalid(format!("the module does not export `{name}`")))
    };
    match export("memory")? {
        ExternType::Memory(m) if !m.is_64() && !m.is_shared() => {}
        _ => {
            return Err(HookError::Invalid(
                "the module's `memory` export is not a 32-bit, unshared memory".into(),
            ));
        }
    }
    if !func_is(&export("alloc")?, &[ValType::is_i32], &[ValType::is_i32]) {
        return Err(HookError::Invalid(
            "the module's `alloc` is not `(func (param i32) (result i32))`".into(),
        ));
    }
    if !func_is(
        &export("handle")?,
        &[ValType::is_i32, ValType::is_i32],
        &[ValType::is_i64],
    ) {
        return Err(HookError::Invalid(
            "the module's `handle` is not `(func (param i32 i32) (result i64))`".into(),
        ));
    }
    Ok(())
}

fn check_component(
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> Result<(), HookError> {
    let ty = component.component_type();
    if let Some((name, _)) = ty.imports(engine).next() {
        return Err(HookError::Invalid(format!(
            "the component imports `{name}`; a hook may import nothing"
        )));
    }
    let wrong = || {
        HookError::Invalid(
            "the component does not export `handle: func(event: string) -> result<string, string>` \
             (world `gatehouse:hooks/trigger`)"
                .into(),
        )
    };
    let handle = ty
        .exports(engine)
        .find(|(name, _)| *name == "handle")
        .map(|(_, item)| item.ty)
        .ok_or_else(wrong)?;
    let ComponentItem::ComponentFunc(f) = handle else {
        return Err(wrong());
    };
    let params: Vec<Type> = f.params().map(|(_, t)| t).collect();
    let results: Vec<Type> = f.results().collect();
    let string_result = match results.as_slice() {
        [Type::Result(r)] => {
            matches!(r.ok(), Some(Type::String)) && matches!(r.err(), Some(Type::String))
        }
        _ => false,
    };
    if f.async_() || !matches!(params.as_slice(), [Type::String]) || !string_result {
        return Err(wrong());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_and_hooks_can_be_shared_between_threads() {
        fn shared<T: Send + Sync + Clone + fmt::Debug + 'static>() {}
        shared::<HookEngine>();
        shared::<Hook>();
        shared::<Compiled>();
    }

    #[test]
    fn a_call_is_a_future_that_can_move_between_threads() {
        fn send<F: std::future::Future + Send + 'static>(_: F) {}
        let engine = HookEngine::new(Limits::default()).expect("engine");
        let wasm = wat::parse_str(
            r#"(module (memory (export "memory") 1)
                 (func (export "alloc") (param i32) (result i32) (i32.const 0))
                 (func (export "handle") (param i32 i32) (result i64) (i64.const 0)))"#,
        )
        .expect("wat");
        let compiled = engine.compile(&wasm).expect("compiles");
        let hook = engine
            .load(compiled.kind, &compiled.artifact)
            .expect("loads");
        let h = hook.clone();
        send(async move { h.call(String::new()).await });
        // Called here, outside any runtime: it runs on this thread and answers "".
        assert_eq!(hook.call_blocking("{}").as_deref(), Ok(""));
    }

    #[test]
    fn the_ticker_stops_with_the_last_clone() {
        let engine = HookEngine::new(Limits::default()).expect("engine");
        let clone = engine.clone();
        drop(engine);
        // Dropping the last clone joins the ticker thread (it would hang here otherwise).
        drop(clone);
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in [HookKind::Component, HookKind::CoreModule] {
            assert_eq!(HookKind::parse(k.as_str()), Some(k));
            assert_eq!(k.as_str().parse::<HookKind>(), Ok(k));
        }
        assert_eq!(HookKind::parse("module"), None);
        assert!(matches!(
            "wasm".parse::<HookKind>(),
            Err(HookError::Invalid(_))
        ));
    }

    #[test]
    fn preambles_are_sniffed() {
        assert_eq!(sniff(b"\0asm\x01\0\0\0"), Ok(HookKind::CoreModule));
        assert_eq!(sniff(b"\0asm\x0d\0\x01\0"), Ok(HookKind::Component));
        assert!(matches!(sniff(b"\0asm"), Err(HookError::Invalid(_))));
        assert!(matches!(
            sniff(b"\x7fELF\x02\x01\x01\0"),
            Err(HookError::Invalid(_))
        ));
        assert!(matches!(
            sniff(b"\0asm\x02\0\0\0"),
            Err(HookError::Invalid(_))
        ));
    }
}
