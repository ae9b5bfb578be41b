//! Tenant hooks as sandboxed WebAssembly, run in-process.
//!
//! A pool's hook (Cognito's Define, Create and Verify Auth Challenge triggers, Pre Token
//! Generation) is a WebAssembly program that takes the trigger's event as JSON text and answers
//! the event with its `response` filled in. This crate knows WebAssembly only: what a hook may
//! be, how it is compiled and loaded, and how one call runs within its limits. It does not read
//! the JSON (the service does) and depends on no crate of ours.
//!
//! - [`HookEngine::compile`] validates an upload and compiles it once (at upload, never on a
//!   request): a component of the world in `wit/hooks.wit`, or a core module with the `alloc` /
//!   `handle` ABI; a hook that imports anything is refused.
//! - [`HookEngine::load`] turns the stored artifact back into a [`Hook`] cheaply.
//! - [`Hook::call`] runs it once, in a fresh `Store` (no state survives a call), with fuel, a
//!   wall-clock deadline (epoch interruption) and a memory cap, on a bounded set of blocking
//!   threads so that a CPU-bound hook never stalls the async runtime.

mod call;
mod engine;
mod limits;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use call::{Hook, HookFailure};
pub use engine::{Compiled, HookEngine, HookKind};
pub use limits::Limits;

/// Why an upload or an artifact was refused, or the engine could not be built.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HookError {
    /// The upload is not a hook this crate runs (the text says why, for the administrator),
    /// or the limits given are unusable.
    #[error("invalid hook: {0}")]
    Invalid(String),
    /// The artifact was compiled by another build or configuration of the engine: compile the
    /// hook's WebAssembly again.
    #[error("the hook's compiled artifact is of another build; compile it again")]
    Incompatible,
    /// The engine failed for a reason of its own (logged; nothing for the caller to fix).
    #[error("internal error of the hook engine")]
    Internal,
}

/// The WIT world a component hook implements (`wit/hooks.wit`).
pub const WIT: &str = include_str!("../wit/hooks.wit");
