//! One call of a hook: a fresh `Store` with the engine's limits, on a blocking thread.

use std::fmt;
use std::sync::Arc;

use wasmtime::component::ComponentExportIndex;
use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};

use crate::engine::HookEngine;
use crate::{HookKind, Limits};

/// How a call failed. Every failure fails the sign-in closed; `reason` names it for the audit
/// log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookFailure {
    /// The call spent its fuel.
    #[error("the hook ran out of fuel")]
    OutOfFuel,
    /// The call ran past its wall-clock deadline.
    #[error("the hook ran past its deadline")]
    Deadline,
    /// The hook failed after its memory reached the limit.
    #[error("the hook ran out of memory")]
    Memory,
    /// The hook trapped (the text is the trap, for the audit log).
    #[error("the hook trapped: {0}")]
    Trap(String),
    /// The hook answered `err(..)`: it refuses the event (its text, at most 1 KiB).
    #[error("the hook refused the event: {0}")]
    Refused(String),
    /// The answer is not UTF-8, too large, or outside the hook's memory.
    #[error("the hook's answer is unusable: {0}")]
    BadOutput(String),
}

impl HookFailure {
    /// `"out_of_fuel"`, `"deadline"`, `"memory"`, `"trap"`, `"refused"` or `"bad_output"`.
    pub fn reason(&self) -> &'static str {
        match self {
            HookFailure::OutOfFuel => "out_of_fuel",
            HookFailure::Deadline => "deadline",
            HookFailure::Memory => "memory",
            HookFailure::Trap(_) => "trap",
            HookFailure::Refused(_) => "refused",
            HookFailure::BadOutput(_) => "bad_output",
        }
    }
}

/// The longest text of a trap or a refusal kept in a failure.
const MAX_MESSAGE: usize = 1024;

fn clip(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// A loaded hook: cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Hook {
    inner: Arc<HookInner>,
}

struct HookInner {
    engine: HookEngine,
    kind: HookKind,
    runner: Runner,
}

pub(crate) enum Runner {
    Core(wasmtime::InstancePre<CallState>),
    Component(
        wasmtime::component::InstancePre<CallState>,
        ComponentExportIndex,
    ),
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hook")
            .field("kind", &self.inner.kind)
            .finish_non_exhaustive()
    }
}

/// A store's data: the limiter. It caps the linear memory of the whole call (every memory of
/// every instance of a component together) and remembers whether it refused a growth.
pub(crate) struct CallState {
    limits: StoreLimits,
    memory_cap: usize,
    memory_used: usize,
    memory_refused: bool,
}

impl ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory_used
            .saturating_sub(current)
            .saturating_add(desired);
        let allowed =
            total <= self.memory_cap && self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_used = total;
        } else {
            self.memory_refused = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// Table elements one table may grow to (a JavaScript hook has a few thousand functions).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Core instances, memories and tables of one call (a component has a few of each).
const MAX_INSTANCES: usize = 64;
const MAX_MEMORIES: usize = 16;
const MAX_TABLES: usize = 64;

impl Hook {
    pub(crate) fn new(engine: HookEngine, kind: HookKind, runner: Runner) -> Hook {
        Hook {
            inner: Arc::new(HookInner {
                engine,
                kind,
                runner,
            }),
        }
    }

    pub fn kind(&self) -> HookKind {
        self.inner.kind
    }

    /// Runs the hook once on `event` (a JSON text) in a fresh `Store` with the engine's limits,
    /// on one of at most `max_concurrent` blocking threads (tokio's `spawn_blocking` behind a
    /// semaphore), so a CPU-bound hook never stalls the async runtime. Answers the hook's
    /// output text (UTF-8, at most `max_output_bytes`); it is not parsed here.
    ///
    /// Outside a tokio runtime the call runs on the calling thread.
    pub async fn call(&self, event: String) -> Result<String, HookFailure> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.call_blocking(&event);
        };
        let slots = Arc::clone(&self.inner.engine.inner.slots);
        let permit = slots.acquire_owned().await.map_err(|_| {
            // The semaphore is never closed.
            HookFailure::Trap("the hook engine is shutting down".into())
        })?;
        let hook = self.clone();
        let task = runtime.spawn_blocking(move || {
            let answer = hook.call_blocking(&event);
            drop(permit);
            answer
        });
        match task.await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::error!(error = %e, "hooks: a hook call's thread failed");
                Err(HookFailure::Trap("the host failed running the hook".into()))
            }
        }
    }

    /// Runs the hook on this thread (blocking, up to the deadline). [`Hook::call`] is this on
    /// a blocking thread, within the engine's concurrency limit.
    pub fn call_blocking(&self, event: &str) -> Result<String, HookFailure> {
        // wasmtime reports a guest's faults as errors; a panic here would be a fault of the
        // host's, and it still fails this call only.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(event).0)).unwrap_or_else(
            |_| {
                tracing::error!("hooks: a hook call panicked");
                Err(HookFailure::Trap("the host failed running the hook".into()))
            },
        )
    }

    /// The fuel one call on `event` spends, instantiation included (for measurements: the
    /// default fuel is set from it).
    pub fn fuel_spent(&self, event: &str) -> Result<u64, HookFailure> {
        let (answer, spent) = self.run(event);
        answer.map(|_| spent)
    }

    /// One call, and the fuel it spent.
    fn run(&self, event: &str) -> (Result<String, HookFailure>, u64) {
        let limits = &self.inner.engine.inner.limits;
        let mut store = Store::new(
            &self.inner.engine.inner.engine,
            CallState {
                limits: StoreLimitsBuilder::new()
                    .table_elements(MAX_TABLE_ELEMENTS)
                    .instances(MAX_INSTANCES)
                    .memories(MAX_MEMORIES)
                    .tables(MAX_TABLES)
                    .build(),
                memory_cap: limits.memory_bytes,
                memory_used: 0,
                memory_refused: false,
            },
        );
        store.limiter(|state| state);
        if let Err(e) = store.set_fuel(limits.fuel) {
            return (Err(HookFailure::Trap(format!("{e:#}"))), 0);
        }
        store.set_epoch_deadline(limits.deadline_ticks());
        store.epoch_deadline_trap();
        let answer = match &self.inner.runner {
            Runner::Core(pre) => run_core(pre, &mut store, limits, event),
            Runner::Component(pre, export) => run_component(pre, export, &mut store, limits, event),
        };
        let memory_refused = store.data().memory_refused;
        let spent = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let answer = match answer {
            Ok(text) => Ok(text),
            // A hook that fails once its memory hit the limit failed for want of memory,
            // whatever it did next (trapped, spun until the deadline, or refused).
            Err(_) if memory_refused => Err(HookFailure::Memory),
            Err(Failed::Guest(f)) => Err(f),
            Err(Failed::Wasm(e)) => Err(classify(e)),
        };
        (answer, spent)
    }
}

enum Failed {
    /// What the guest answered was unusable, or it refused.
    Guest(HookFailure),
    /// wasmtime stopped the call (a trap, fuel, the deadline) or refused it.
    Wasm(wasmtime::Error),
}

impl From<wasmtime::Error> for Failed {
    fn from(e: wasmtime::Error) -> Self {
        Failed::Wasm(e)
    }
}

fn classify(e: wasmtime::Error) -> HookFailure {
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => HookFailure::OutOfFuel,
        Some(Trap::Interrupt) => HookFailure::Deadline,
        Some(_) => HookFailure::Trap(clip(format!("{e:#}"))),
        None => {
            let text = format!("{e:#}");
            // Lifting the component's answer: a string outside its memory or not UTF-8.
            if text.contains("out of bounds") || text.contains("utf-8") || text.contains("UTF-8") {
                HookFailure::BadOutput(clip(text))
            } else {
                HookFailure::Trap(clip(text))
            }
        }
    }
}

fn bad(what: impl Into<String>) -> Failed {
    Failed::Guest(HookFailure::BadOutput(what.into()))
}

fn check_size(text: &str, limits: &Limits) -> Result<(), Failed> {
    if text.len() > limits.max_output_bytes {
        return Err(bad(format!(
            "{} bytes; at most {} are accepted",
            text.len(),
            limits.max_output_bytes
        )));
    }
    Ok(())
}

fn run_core(
    pre: &wasmtime::InstancePre<CallState>,
    store: &mut Store<CallState>,
    limits: &Limits,
    event: &str,
) -> Result<String, Failed> {
    let instance = pre.instantiate(&mut *store)?;
    let memory = instance
        .get_memory(&mut *store, "memory")
        .ok_or_else(|| bad("no `memory` export"))?;
    let alloc = instance.get_typed_func::<i32, i32>(&mut *store, "alloc")?;
    let handle = instance.get_typed_func::<(i32, i32), i64>(&mut *store, "handle")?;
    let len = i32::try_from(event.len()).map_err(|_| bad("the event is too large"))?;
    let ptr = alloc.call(&mut *store, len)?;
    memory
        .write(&mut *store, ptr as u32 as usize, event.as_bytes())
        .map_err(|_| bad("`alloc` answered a pointer outside the memory"))?;
    let packed = handle.call(&mut *store, (ptr, len))? as u64;
    let (at, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
    if len > limits.max_output_bytes {
        return Err(bad(format!(
            "{len} bytes; at most {} are accepted",
            limits.max_output_bytes
        )));
    }
    let bytes = at
        .checked_add(len)
        .and_then(|end| memory.data(&*store).get(at..end))
        .ok_or_else(|| bad(format!("{len} bytes at {at:#x}: outside the memory")))?;
    let text = std::str::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8: {e}")))?;
    Ok(text.to_owned())
}

fn run_component(
    pre: &wasmtime::component::InstancePre<CallState>,
    export: &ComponentExportIndex,
    store: &mut Store<CallState>,
    limits: &Limits,
    event: &str,
) -> Result<String, Failed> {
    let instance = pre.instantiate(&mut *store)?;
    let handle =
        instance.get_typed_func::<(&str,), (Result<String, String>,)>(&mut *store, export)?;
    let (answer,) = handle.call(&mut *store, (event,))?;
    match answer {
        Ok(text) => {
            check_size(&text, limits)?;
            Ok(text)
        }
        Err(refusal) => Err(Failed::Guest(HookFailure::Refused(clip(refusal)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_the_audit_names() {
        let all = [
            (HookFailure::OutOfFuel, "out_of_fuel"),
            (HookFailure::Deadline, "deadline"),
            (HookFailure::Memory, "memory"),
            (HookFailure::Trap("x".into()), "trap"),
            (HookFailure::Refused("x".into()), "refused"),
            (HookFailure::BadOutput("x".into()), "bad_output"),
        ];
        for (f, reason) in all {
            assert_eq!(f.reason(), reason);
        }
    }

    #[test]
    fn long_messages_are_clipped_on_a_char_boundary() {
        let s = "é".repeat(MAX_MESSAGE);
        let c = clip(s);
        assert!(c.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(c.ends_with('…'));
        assert_eq!(clip("short".into()), "short");
    }
}
