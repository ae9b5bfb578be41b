//! Cognito's custom authentication (Define, Create, Verify) and pre token generation, through
//! the same hook written in WAT, AssemblyScript and JavaScript.

use std::sync::OnceLock;

use gatehouse_hooks::{Hook, HookFailure, HookKind, test_support};
use serde_json::{Value, json};

use crate::{engine, event, load, response_of};

fn wat_hook() -> &'static Hook {
    static HOOK: OnceLock<Hook> = OnceLock::new();
    HOOK.get_or_init(|| {
        load(
            engine(),
            &test_support::wat_custom_auth(),
            HookKind::CoreModule,
        )
    })
}

fn assemblyscript_hook() -> &'static Hook {
    static HOOK: OnceLock<Hook> = OnceLock::new();
    HOOK.get_or_init(|| {
        load(
            engine(),
            &test_support::assemblyscript_custom_auth(),
            HookKind::CoreModule,
        )
    })
}

fn js_hook() -> &'static Hook {
    static HOOK: OnceLock<Hook> = OnceLock::new();
    HOOK.get_or_init(|| {
        load(
            engine(),
            &test_support::js_custom_auth(),
            HookKind::Component,
        )
    })
}

fn attributes() -> Value {
    json!({
        "sub": "0192f1c4-8a3e-7c2d-9b1a-3f5e6d7c8b9a",
        "email": "alice@acme.example",
        "email_verified": "true",
        "cognito:user_status": "CONFIRMED"
    })
}

fn entry(passed: bool, n: usize) -> Value {
    json!({"challengeName": "CUSTOM_CHALLENGE", "challengeResult": passed,
           "challengeMetadata": format!("QUESTION-{n}")})
}

fn define(session: Vec<Value>) -> String {
    event(
        "DefineAuthChallenge_Authentication",
        json!({"userAttributes": attributes(), "session": session,
               "clientMetadata": {"app": "portal"}, "userNotFound": false}),
    )
}

fn create(session: Vec<Value>) -> String {
    event(
        "CreateAuthChallenge_Authentication",
        json!({"userAttributes": attributes(), "challengeName": "CUSTOM_CHALLENGE",
               "session": session, "clientMetadata": {}, "userNotFound": false}),
    )
}

fn verify(private: Value, answer: &str) -> String {
    event(
        "VerifyAuthChallengeResponse_Authentication",
        json!({"userAttributes": attributes(), "privateChallengeParameters": private,
               "challengeAnswer": answer, "clientMetadata": {}, "userNotFound": false}),
    )
}

async fn respond(hook: &Hook, event: String) -> Value {
    let answer = hook.call(event).await.expect("the hook answers");
    response_of(&answer)
}

/// The whole custom flow through one hook: a challenge, a wrong answer, a right one, tokens;
/// and three wrong answers end in failure.
async fn custom_flow(hook: &Hook) {
    // No session yet: a custom challenge.
    let r = respond(hook, define(vec![])).await;
    assert_eq!(r["challengeName"], "CUSTOM_CHALLENGE", "{r}");
    assert_eq!(r["issueTokens"], false);
    assert_eq!(r["failAuthentication"], false);

    // Create: a public hint, the answer kept private, metadata for the session entry.
    let r = respond(hook, create(vec![])).await;
    assert!(r["publicChallengeParameters"]["hint"].is_string(), "{r}");
    assert_eq!(r["privateChallengeParameters"]["answer"], "42");
    assert!(
        r["challengeMetadata"]
            .as_str()
            .is_some_and(|m| m.starts_with("QUESTION")),
        "{r}"
    );
    let private = r["privateChallengeParameters"].clone();

    // Verify: the answer compared with the private parameter.
    let r = respond(hook, verify(private.clone(), "41")).await;
    assert_eq!(r["answerCorrect"], false, "{r}");
    let r = respond(hook, verify(private.clone(), "42")).await;
    assert_eq!(r["answerCorrect"], true, "{r}");

    // A wrong answer then: another challenge.
    let r = respond(hook, define(vec![entry(false, 1)])).await;
    assert_eq!(r["challengeName"], "CUSTOM_CHALLENGE", "{r}");
    assert_eq!(r["issueTokens"], false);
    // The last answer right: tokens.
    let r = respond(hook, define(vec![entry(false, 1), entry(true, 2)])).await;
    assert_eq!(r["issueTokens"], true, "{r}");
    assert_eq!(r["failAuthentication"], false);
    // Three wrong answers: failed.
    let r = respond(
        hook,
        define(vec![entry(false, 1), entry(false, 2), entry(false, 3)]),
    )
    .await;
    assert_eq!(r["failAuthentication"], true, "{r}");
    assert_eq!(r["issueTokens"], false);
}

/// The hooks that parse JSON answer the whole event back, its envelope untouched.
async fn answers_the_event_back(hook: &Hook) {
    let sent = define(vec![]);
    let answer = hook.call(sent.clone()).await.expect("the hook answers");
    let mut back: Value = serde_json::from_str(&answer).expect("JSON");
    let mut sent: Value = serde_json::from_str(&sent).expect("JSON");
    assert_eq!(back["response"]["challengeName"], "CUSTOM_CHALLENGE");
    back["response"] = json!({});
    sent["response"] = json!({});
    assert_eq!(back, sent, "only `response` changes");
}

/// Pre token generation V2: a claim added to both tokens, and `sub` and `act` tried (the
/// service refuses those).
async fn pre_token(hook: &Hook) {
    let e = event(
        "TokenGeneration_Authentication",
        json!({"userAttributes": attributes(), "groupConfiguration": {
                   "groupsToOverride": ["staff"], "iamRolesToOverride": [], "preferredRole": null},
               "scopes": ["openid", "profile"], "clientMetadata": {}}),
    )
    .replace("\"version\":\"1\"", "\"version\":\"2\"");
    let r = respond(hook, e).await;
    let details = &r["claimsAndScopeOverrideDetails"];
    assert_eq!(
        details["idTokenGeneration"]["claimsToAddOrOverride"]["tenant_tier"], "gold",
        "{r}"
    );
    let access = &details["accessTokenGeneration"]["claimsToAddOrOverride"];
    assert_eq!(access["tenant_tier"], "gold");
    assert_eq!(access["sub"], "someone-else");
    assert_eq!(access["act"]["sub"], "intruder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wat_hook_runs_the_custom_flow() {
    custom_flow(wat_hook()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assemblyscript_hook_runs_the_custom_flow_and_pre_token() {
    let hook = assemblyscript_hook();
    custom_flow(hook).await;
    answers_the_event_back(hook).await;
    pre_token(hook).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_hook_runs_the_custom_flow_and_pre_token() {
    let hook = js_hook();
    custom_flow(hook).await;
    answers_the_event_back(hook).await;
    pre_token(hook).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assemblyscript_hook_reads_escapes_and_unicode() {
    // A JSON reader by hand: escapes and non-ASCII text must come through, and the answer
    // compares decoded strings.
    let hook = assemblyscript_hook();
    let private = json!({"answer": "ü\"\\/\u{1F600}"});
    let r = respond(hook, verify(private.clone(), "ü\"\\/\u{1F600}")).await;
    assert_eq!(r["answerCorrect"], true, "{r}");
    let r = respond(hook, verify(private, "u\"\\/\u{1F600}")).await;
    assert_eq!(r["answerCorrect"], false, "{r}");
    let e = event(
        "DefineAuthChallenge_Authentication",
        json!({"userAttributes": {"name": "Zoë \"Z\" Ünal\n\t\u{0001}"}, "session": [],
               "n": [1.5e3, -0.25, 0, true, null]}),
    );
    let answer = hook.call(e.clone()).await.expect("answers");
    let back: Value = serde_json::from_str(&answer).expect("JSON");
    let sent: Value = serde_json::from_str(&e).expect("JSON");
    assert_eq!(back["request"], sent["request"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_refusing_an_event_is_a_refusal() {
    // The JS hook throws on a trigger it does not handle: the world's `err(..)`.
    let failure = js_hook()
        .call(event("UserMigration_Authentication", json!({})))
        .await
        .expect_err("refused");
    match &failure {
        HookFailure::Refused(text) => assert!(text.contains("unsupported trigger"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(failure.reason(), "refused");
    // The core-module hooks have no error channel: they trap.
    for hook in [wat_hook(), assemblyscript_hook()] {
        let failure = hook
            .call(event("UserMigration_Authentication", json!({})))
            .await
            .expect_err("refused");
        assert!(matches!(failure, HookFailure::Trap(_)), "{failure:?}");
    }
    // Not JSON at all.
    let failure = assemblyscript_hook()
        .call("{\"triggerSource\": ".into())
        .await
        .expect_err("refused");
    assert!(matches!(failure, HookFailure::Trap(_)), "{failure:?}");
}
