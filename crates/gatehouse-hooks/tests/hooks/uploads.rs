//! What `compile` refuses, and what `load` refuses before deserializing anything.

use gatehouse_hooks::{HookEngine, HookError, HookKind, Limits, test_support};

use crate::engine;

fn refused(wasm: &[u8]) -> String {
    match engine().compile(wasm) {
        Err(HookError::Invalid(why)) => why,
        Err(other) => panic!("{other:?}"),
        Ok(c) => panic!("compiled: {c:?}"),
    }
}

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("wat")
}

const ABI: &str = r#"
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 0))
  (func (export "handle") (param i32 i32) (result i64) (i64.const 0))
"#;

#[test]
fn a_module_that_imports_anything_is_refused_naming_the_import() {
    let why = refused(&wat(&format!(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) {ABI})"#
    )));
    assert!(why.contains("wasi_snapshot_preview1::fd_write"), "{why}");
    // An imported memory, global or table is an import too.
    let why = refused(&wat(r#"(module (import "env" "memory" (memory 1))
             (func (export "alloc") (param i32) (result i32) (i32.const 0))
             (func (export "handle") (param i32 i32) (result i64) (i64.const 0)))"#));
    assert!(why.contains("env::memory"), "{why}");
}

#[test]
fn a_module_without_the_abi_is_refused() {
    let why = refused(&wat("(module)"));
    assert!(why.contains("memory"), "{why}");
    let why = refused(&wat(r#"(module (memory (export "memory") 1)
             (func (export "handle") (param i32 i32) (result i64) (i64.const 0)))"#));
    assert!(why.contains("alloc"), "{why}");
    // The right names with the wrong types.
    let why = refused(&wat(r#"(module (memory (export "memory") 1)
             (func (export "alloc") (param i32) (result i32) (i32.const 0))
             (func (export "handle") (param i32 i32) (result i32) (i32.const 0)))"#));
    assert!(why.contains("handle"), "{why}");
    let why = refused(&wat(r#"(module (memory (export "memory") 1)
             (func (export "alloc") (param i64) (result i32) (i32.const 0))
             (func (export "handle") (param i32 i32) (result i64) (i64.const 0)))"#));
    assert!(why.contains("alloc"), "{why}");
    let why = refused(&wat(
        r#"(module (global (export "memory") i32 (i32.const 0))
             (func (export "alloc") (param i32) (result i32) (i32.const 0))
             (func (export "handle") (param i32 i32) (result i64) (i64.const 0)))"#,
    ));
    assert!(why.contains("memory"), "{why}");
}

#[test]
fn what_is_not_webassembly_is_refused() {
    assert!(refused(b"").contains("not WebAssembly"));
    assert!(refused(b"#!/bin/sh\necho hello\n").contains("not WebAssembly"));
    assert!(refused(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0").contains("not WebAssembly"));
    // The preamble, then garbage.
    let mut garbage = b"\0asm\x01\0\0\0".to_vec();
    garbage.extend_from_slice(&[0xff; 64]);
    assert!(refused(&garbage).contains("not valid WebAssembly"));
    // WAT text is not accepted either: uploads are binary.
    assert!(refused(b"(module)").contains("not WebAssembly"));
}

#[test]
fn an_upload_over_32_mib_is_refused_unread() {
    let mut big = b"\0asm\x01\0\0\0".to_vec();
    big.resize((32 << 20) + 1, 0);
    assert!(refused(&big).contains("32 MiB"));
}

#[test]
fn components_of_another_world_are_refused() {
    // Nothing exported.
    let why = refused(&wat("(component)"));
    assert!(why.contains("handle"), "{why}");
    // `handle` of the wrong type.
    let why = refused(&wat(r#"(component
             (core module $m (func (export "f") (result i32) (i32.const 0)))
             (core instance $i (instantiate $m))
             (func (export "handle") (result u32) (canon lift (core func $i "f"))))"#));
    assert!(why.contains("handle"), "{why}");
    // A component that imports something.
    let why = refused(&wat(
        r#"(component (import "log" (func (param "line" u32))))"#,
    ));
    assert!(why.contains("`log`"), "{why}");
}

#[test]
fn the_artifact_carries_the_kind_and_the_wasm_digest() {
    let wasm = test_support::wat_custom_auth();
    let compiled = engine().compile(&wasm).expect("compiles");
    assert_eq!(compiled.kind, HookKind::CoreModule);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &wasm);
    assert_eq!(&compiled.sha256[..], digest.as_ref());
    // Its Debug shows sizes, not megabytes of bytes.
    let debug = format!("{compiled:?}");
    assert!(debug.len() < 200, "{debug}");
}

#[test]
fn artifacts_load_in_any_engine_of_the_same_build() {
    let compiled = engine()
        .compile(&test_support::counter())
        .expect("compiles");
    let other = HookEngine::new(Limits {
        fuel: 1_000,
        ..Limits::default()
    })
    .expect("engine");
    assert_eq!(other.compatibility(), engine().compatibility());
    assert_eq!(engine().compatibility().len(), 64);
    assert!(
        engine()
            .compatibility()
            .chars()
            .all(|c| c.is_ascii_hexdigit())
    );
    let hook = other
        .load(compiled.kind, &compiled.artifact)
        .expect("loads");
    assert_eq!(hook.call_blocking("{}").as_deref(), Ok("1"));
}

#[test]
fn an_artifact_of_another_compatibility_is_refused_before_deserializing() {
    let compiled = engine()
        .compile(&test_support::counter())
        .expect("compiles");
    // The compatibility hash sits in the header, after the 8-byte magic and the kind; another
    // build writes another one. `load` compares it first and never deserializes the rest.
    let mut other_build = compiled.artifact.clone();
    other_build[9] ^= 0x01;
    assert_eq!(
        engine().load(compiled.kind, &other_build).err(),
        Some(HookError::Incompatible)
    );
}

#[test]
fn what_is_not_an_artifact_of_the_kind_named_is_refused() {
    let wasm = test_support::counter();
    let compiled = engine().compile(&wasm).expect("compiles");
    // Named as the other kind.
    assert!(matches!(
        engine().load(HookKind::Component, &compiled.artifact),
        Err(HookError::Invalid(_))
    ));
    // The WebAssembly itself, or nothing, is not an artifact.
    assert!(matches!(
        engine().load(HookKind::CoreModule, &wasm),
        Err(HookError::Invalid(_))
    ));
    assert!(matches!(
        engine().load(HookKind::CoreModule, b""),
        Err(HookError::Invalid(_))
    ));
    // A header of this build with no wasmtime artifact behind it.
    let header_only = &compiled.artifact[..8 + 1 + 32];
    assert!(matches!(
        engine().load(HookKind::CoreModule, header_only),
        Err(HookError::Invalid(_))
    ));
}
