//! The hooks the tests run (feature `test-support`; for this crate's tests and the server's).
//!
//! - [`wat_custom_auth`], [`assemblyscript_custom_auth`], [`js_custom_auth`]: one Cognito
//!   custom-authentication hook written three ways (sources in `tests/hooks/` at the root of
//!   the repository). The answer to their challenge is `"42"`. The AssemblyScript and
//!   JavaScript ones also answer `TokenGeneration_*` (pre token generation V2), adding the claim
//!   `tenant_tier: "gold"` and trying to set `sub` and `act` (which the service must refuse).
//! - Attack hooks in WAT, each a core module with the hook ABI: [`infinite_loop`],
//!   [`memory_bomb`], [`trap`], [`bad_output`], [`wild_pointer`], [`huge_output`], and
//!   [`counter`] (answers how many calls its instance has seen: always `1`); and components in
//!   WAT for the component path: [`component_infinite_loop`], [`component_refusing`],
//!   [`component_wild_pointer`].
//!
//! The WAT hooks compile in-process. The others are built by `node tests/hooks/build.mjs`
//! (with the npm packages `npm ci --prefix tests/peers` installs) into `hooks/` under the
//! target directory, once: the script skips a build whose output is newer than its sources.
//! The JavaScript component takes about a minute to build the first time.

// Test support: a hook that cannot be had is a broken test set-up, said loudly.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("the test hook's WAT text")
}

/// The repository's root (this crate is `crates/gatehouse-hooks`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// The target directory: `CARGO_TARGET_DIR`, or the nearest ancestor of the running test
/// binary that cargo marked with `CACHEDIR.TAG`, or `target/` in the repository.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            repo_root().join(dir)
        };
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|a| a.join("CACHEDIR.TAG").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Runs the build script for one hook (once per process) and reads its output.
fn built(which: &str, file: &str) -> Vec<u8> {
    static BUILD: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let out = target_dir().join("hooks");
    let root = repo_root();
    // Its output is kept for a failure: a test's (or the benchmark's) stdout stays its own.
    let run = Command::new("node")
        .arg(root.join("tests/hooks/build.mjs"))
        .arg(&out)
        .arg(which)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("node (to build the {which} hook): {e}"));
    assert!(
        run.status.success(),
        "node tests/hooks/build.mjs {} {which} failed ({}); are the npm packages installed \
         (`npm ci --prefix tests/peers`)?\n{}{}",
        out.display(),
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    std::fs::read(out.join(file)).unwrap_or_else(|e| panic!("{}: {e}", out.join(file).display()))
}

/// The custom-authentication hook in WAT (`tests/hooks/custom_auth.wat`), a core module.
pub fn wat_custom_auth() -> Vec<u8> {
    wat(include_str!("../../../tests/hooks/custom_auth.wat"))
}

/// The custom-authentication and pre-token hook in AssemblyScript
/// (`tests/hooks/custom_auth.ts`), a core module.
pub fn assemblyscript_custom_auth() -> Vec<u8> {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| built("assemblyscript", "custom_auth_as.wasm"))
        .clone()
}

/// The custom-authentication and pre-token hook in JavaScript (`tests/hooks/custom_auth.js`),
/// a component of the world in `wit/hooks.wit` (about 12 MB).
pub fn js_custom_auth() -> Vec<u8> {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| built("javascript", "custom_auth_js.wasm"))
        .clone()
}

/// The ABI's `memory` and an `alloc` that answers a fixed place with room for 192 KiB.
const ABI: &str = r#"
  (memory (export "memory") 4)
  (func (export "alloc") (param i32) (result i32) (i32.const 65536))
"#;

fn abi_module(handle: &str) -> Vec<u8> {
    wat(&format!("(module {ABI} {handle})"))
}

/// Loops forever: stopped by fuel or by the deadline.
pub fn infinite_loop() -> Vec<u8> {
    abi_module(
        r#"(func (export "handle") (param i32 i32) (result i64)
             (loop $forever (br $forever))
             (unreachable))"#,
    )
}

/// Grows its memory by 1 MiB at a time until refused, then traps.
pub fn memory_bomb() -> Vec<u8> {
    abi_module(
        r#"(func (export "handle") (param i32 i32) (result i64)
             (loop $more
               (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
             (unreachable))"#,
    )
}

/// Traps at once (`unreachable`).
pub fn trap() -> Vec<u8> {
    abi_module(
        r#"(func (export "handle") (param i32 i32) (result i64)
             (unreachable))"#,
    )
}

/// Answers four bytes that are not UTF-8.
pub fn bad_output() -> Vec<u8> {
    wat(&format!(
        r#"(module {ABI}
             (data (i32.const 0) "\ff\fe\c0\80")
             (func (export "handle") (param i32 i32) (result i64)
               (i64.const 4)))"#
    ))
}

/// Answers a pointer far outside its memory.
pub fn wild_pointer() -> Vec<u8> {
    abi_module(
        r#"(func (export "handle") (param i32 i32) (result i64)
             (i64.const 0x7fff000000000010))"#,
    )
}

/// Answers 64 KiB and one byte (all spaces: valid UTF-8, just too much).
pub fn huge_output() -> Vec<u8> {
    abi_module(
        r#"(func (export "handle") (param i32 i32) (result i64)
             (memory.fill (i32.const 0) (i32.const 32) (i32.const 65537))
             (i64.const 65537))"#,
    )
}

/// A component of the hook world whose core function: `$body` (the canonical ABI: the event's
/// pointer and length in, a pointer to the `result<string, string>` out).
fn component(body: &str, data: &str) -> Vec<u8> {
    wat(&format!(
        r#"(component
             (core module $m
               (memory (export "memory") 1)
               {data}
               (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
               (func (export "handle") (param i32 i32) (result i32) {body}))
             (core instance $i (instantiate $m))
             (func (export "handle") (param "event" string) (result (result string (error string)))
               (canon lift (core func $i "handle") (memory $i "memory")
                 (realloc (func $i "realloc")))))"#
    ))
}

/// A component hook that loops forever (the component path's fuel and deadline).
pub fn component_infinite_loop() -> Vec<u8> {
    component("(loop $forever (br $forever)) (unreachable)", "")
}

/// A component hook that answers `err("not today")`.
pub fn component_refusing() -> Vec<u8> {
    // At 16: the result's discriminant (1, err), then the string's pointer and length.
    component(
        "(i32.const 16)",
        r#"(data (i32.const 16) "\01\00\00\00\40\00\00\00\09\00\00\00")
           (data (i32.const 64) "not today")"#,
    )
}

/// A component hook whose answer's string lies outside its memory.
pub fn component_wild_pointer() -> Vec<u8> {
    component(
        "(i32.const 16)",
        r#"(data (i32.const 16) "\00\00\00\00\00\00\ff\7f\09\00\00\00")"#,
    )
}

/// Counts its calls in a mutable global and answers the count: `1` on every call, since each
/// call gets a fresh instance.
pub fn counter() -> Vec<u8> {
    wat(&format!(
        r#"(module {ABI}
             (global $calls (mut i32) (i32.const 0))
             (func (export "handle") (param i32 i32) (result i64)
               (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
               (i32.store8 (i32.const 0) (i32.add (i32.const 48) (global.get $calls)))
               (i64.const 1)))"#
    ))
}
