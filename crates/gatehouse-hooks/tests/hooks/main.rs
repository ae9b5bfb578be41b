//! gatehouse-hooks, end to end: real hooks written in three languages, compiled and called
//! through the public API, and hooks that attack the sandbox.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod attacks;
mod custom_auth;
mod uploads;

use std::sync::OnceLock;

use gatehouse_hooks::{Hook, HookEngine, HookKind, Limits};
use serde_json::{Value, json};

/// One engine with the default limits for the whole binary (its hooks are compiled once).
pub fn engine() -> &'static HookEngine {
    static ENGINE: OnceLock<HookEngine> = OnceLock::new();
    ENGINE.get_or_init(|| HookEngine::new(Limits::default()).expect("the default engine"))
}

/// Compiles and loads a hook on `engine`, checking the kind it was taken for.
pub fn load(engine: &HookEngine, wasm: &[u8], kind: HookKind) -> Hook {
    let compiled = engine.compile(wasm).expect("the hook compiles");
    assert_eq!(compiled.kind, kind);
    let hook = engine
        .load(compiled.kind, &compiled.artifact)
        .expect("the artifact loads");
    assert_eq!(hook.kind(), kind);
    hook
}

/// A Cognito user-pool trigger event, with the envelope every trigger shares.
pub fn event(trigger: &str, request: Value) -> String {
    json!({
        "version": "1",
        "triggerSource": trigger,
        "region": "eu-west-1",
        "userPoolId": "acme",
        "userName": "alice",
        "callerContext": {
            "awsSdkVersion": "aws-sdk-js-3.700.0",
            "clientId": "7f3c1c0e-web"
        },
        "request": request,
        "response": {}
    })
    .to_string()
}

/// The answer's `response`, after checking the answer is JSON.
pub fn response_of(answer: &str) -> Value {
    let v: Value = serde_json::from_str(answer).expect("the hook answers JSON");
    v.get("response")
        .cloned()
        .expect("the answer has a response")
}
