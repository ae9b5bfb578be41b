//! A pool's hooks: Cognito's custom authentication flow decided by Define, Create and Verify
//! hooks (WebAssembly in WAT, AssemblyScript and JavaScript, and an HTTPS-style webhook), Pre
//! Token Generation, and every way a hook can go wrong: it loops, allocates without bound,
//! answers nonsense, or tries to set a protected claim. Setting a hook needs every
//! permission.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use gatehouse_domain::client::ClientType;
use gatehouse_hooks::test_support as wasm;
use serde_json::{Value, json};

use crate::cognito::{boto3, call, sign_in_client};
use crate::common::*;

const HOOKS: &str = "/api/auth/settings/hooks";
const CUSTOM_AUTH: [&str; 3] = [
    "define-auth-challenge",
    "create-auth-challenge",
    "verify-auth-challenge",
];

async fn put_wasm(
    app: &TestApp,
    pool: &str,
    token: &str,
    trigger: &str,
    module: Vec<u8>,
) -> reqwest::Response {
    app.http
        .put(app.pool_url(pool, &format!("{HOOKS}/{trigger}")))
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(module)
        .send()
        .await
        .unwrap()
}

/// Sets one module as the pool's Define, Create and Verify hooks.
pub(crate) async fn custom_auth_hooks(app: &TestApp, pool: &str, token: &str, module: Vec<u8>) {
    for trigger in CUSTOM_AUTH {
        let res = put_wasm(app, pool, token, trigger, module.clone()).await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
}

pub(crate) fn initiate(client: &str, username: &str) -> Value {
    json!({"AuthFlow": "CUSTOM_AUTH", "ClientId": client,
           "AuthParameters": {"USERNAME": username}})
}

pub(crate) fn answer(client: &str, username: &str, session: &Value, value: &str) -> Value {
    json!({"ChallengeName": "CUSTOM_CHALLENGE", "ClientId": client, "Session": session,
           "ChallengeResponses": {"USERNAME": username, "ANSWER": value}})
}

/// Runs the custom flow to tokens with the right answer, after one wrong one; checks each
/// step's shape. Answers the access token.
async fn custom_sign_in(app: &TestApp, pool: &str, client: &str, username: &str) -> String {
    let (status, kind, first) = call(app, pool, "InitiateAuth", initiate(client, username)).await;
    assert_eq!(status, 200, "{kind} {first}");
    assert_eq!(first["ChallengeName"], "CUSTOM_CHALLENGE");
    assert_eq!(first["ChallengeParameters"]["USERNAME"], username);
    assert!(first["ChallengeParameters"]["hint"].is_string(), "{first}");
    let (status, _, wrong) = call(
        app,
        pool,
        "RespondToAuthChallenge",
        answer(client, username, &first["Session"], "41"),
    )
    .await;
    assert_eq!(status, 200, "{wrong}");
    assert_eq!(
        wrong["ChallengeName"], "CUSTOM_CHALLENGE",
        "a wrong answer asks again"
    );
    let (status, _, right) = call(
        app,
        pool,
        "RespondToAuthChallenge",
        answer(client, username, &wrong["Session"], "42"),
    )
    .await;
    assert_eq!(status, 200, "{right}");
    let access = right["AuthenticationResult"]["AccessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(jwt_claims(&access)["username"], username);
    access
}

#[tokio::test]
async fn wat_hooks_decide_the_custom_flow_and_its_sessions_are_single_use() {
    let app = spawn_app().await;
    let (oauth_client, ada) = app.acme_with_ada().await;
    let (client, _) = sign_in_client(&app, "acme", ClientType::Public).await;
    // No hooks: the flow is not offered.
    let (status, kind, _) = call(&app, "acme", "InitiateAuth", initiate(&client, "alice")).await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterException"));

    custom_auth_hooks(&app, "acme", &ada, wasm::wat_custom_auth()).await;
    let access = custom_sign_in(&app, "acme", &client, "alice").await;
    assert_eq!(
        app.introspect("acme", &oauth_client, &access).await["active"],
        true
    );

    // A session answers once; a second answer with it is refused, right or wrong.
    let (_, _, first) = call(&app, "acme", "InitiateAuth", initiate(&client, "alice")).await;
    let (status, _, _) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        answer(&client, "alice", &first["Session"], "41"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, kind, body) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        answer(&client, "alice", &first["Session"], "42"),
    )
    .await;
    assert_eq!(
        (status, kind.as_str()),
        (400, "NotAuthorizedException"),
        "{body}"
    );

    // A session expires with the pool's challenge-session lifetime (three minutes).
    let (_, _, first) = call(&app, "acme", "InitiateAuth", initiate(&client, "alice")).await;
    app.clock.advance(181);
    let (status, kind, _) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        answer(&client, "alice", &first["Session"], "42"),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));

    // A session is the client's and the username's: another client or name cannot use it.
    let (other_client, _) = sign_in_client(&app, "acme", ClientType::Public).await;
    let (_, _, first) = call(&app, "acme", "InitiateAuth", initiate(&client, "alice")).await;
    for body in [
        answer(&other_client, "alice", &first["Session"], "42"),
        answer(&client, "ada", &first["Session"], "42"),
    ] {
        let (status, kind, _) = call(&app, "acme", "RespondToAuthChallenge", body).await;
        assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));
    }
    // A tampered session does not open.
    let mut tampered = first["Session"].as_str().unwrap().to_owned();
    tampered.replace_range(10..11, if &tampered[10..11] == "A" { "B" } else { "A" });
    let (status, kind, _) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        answer(&client, "alice", &json!(tampered), "42"),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));

    // A name without a user runs the same challenges, and never gets tokens.
    let (status, _, first) = call(&app, "acme", "InitiateAuth", initiate(&client, "nobody")).await;
    assert_eq!(status, 200);
    assert_eq!(first["ChallengeName"], "CUSTOM_CHALLENGE");
    let (status, kind, _) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        answer(&client, "nobody", &first["Session"], "42"),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));

    // The pool's challenge sessions can last longer (3 to 15 minutes).
    let settings = app.pool_url("acme", "/api/auth/settings/mfa");
    for bad in [
        json!({"AuthSessionValidity": 2}),
        json!({"AuthSessionValidity": 16}),
        json!({}),
    ] {
        let res = app
            .http
            .put(&settings)
            .bearer_auth(&ada)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
    let res = app
        .http
        .put(&settings)
        .bearer_auth(&ada)
        .json(&json!({"AuthSessionValidity": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let got: Value = app
        .http
        .get(&settings)
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        got,
        json!({"MfaConfiguration": "optional", "AuthSessionValidity": 10})
    );
    let (_, _, first) = call(&app, "acme", "InitiateAuth", initiate(&client, "alice")).await;
    app.clock.advance(9 * 60);
    let (status, _, next) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        answer(&client, "alice", &first["Session"], "41"),
    )
    .await;
    assert_eq!(status, 200, "nine minutes in, the session stands: {next}");
    app.clock.advance(10 * 60 + 1);
    let (status, kind, _) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        answer(&client, "alice", &next["Session"], "42"),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));

    // Hooks of one pool decide nothing in another.
    app.create_pool("other").await;
    app.create_user("other", "olga", &[], "olga-password-1")
        .await;
    let (other, _) = sign_in_client(&app, "other", ClientType::Public).await;
    let (status, kind, _) = call(&app, "other", "InitiateAuth", initiate(&other, "olga")).await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterException"));
}

#[tokio::test]
async fn boto3_signs_in_through_custom_auth_hooks() {
    let app = spawn_app().await;
    let (oauth_client, ada) = app.acme_with_ada().await;
    let (client, secret) = sign_in_client(&app, "acme", ClientType::Confidential).await;
    custom_auth_hooks(&app, "acme", &ada, wasm::wat_custom_auth()).await;
    let out = boto3(&json!({
        "flow": "custom_auth",
        "endpoint_url": app.pool_url("acme", "/cognito"),
        "client_id": client,
        "client_secret": secret,
        "username": "alice",
        "answer": "42",
    }))
    .await;
    assert_eq!(out["initiate"]["ChallengeName"], "CUSTOM_CHALLENGE");
    assert_eq!(out["initiate"]["ChallengeParameters"]["USERNAME"], "alice");
    assert_eq!(out["wrong"]["ChallengeName"], "CUSTOM_CHALLENGE");
    assert_eq!(out["reused_session"]["code"], "NotAuthorizedException");
    assert_eq!(out["get_user"], "alice");
    assert!(out["tokens"]["IdToken"].is_string());
    assert_eq!(out["after_sign_out"]["code"], "NotAuthorizedException");
    assert_eq!(out["three_wrong"]["code"], "NotAuthorizedException");
    // GlobalSignOut ended every session: the refreshed token is refused everywhere too.
    let refreshed = out["refreshed"].as_str().unwrap();
    assert_eq!(
        app.introspect("acme", &oauth_client, refreshed).await["active"],
        false
    );
    assert!(app.audit_count("acme", "user.signed_in").await >= 2);
}

#[tokio::test]
async fn hooks_in_assemblyscript_and_javascript_decide_the_custom_flow() {
    let app = spawn_app().await;
    let (_, ada) = app.acme_with_ada().await;
    let (client, _) = sign_in_client(&app, "acme", ClientType::Public).await;
    let module = tokio::task::spawn_blocking(wasm::assemblyscript_custom_auth)
        .await
        .unwrap();
    custom_auth_hooks(&app, "acme", &ada, module).await;
    custom_sign_in(&app, "acme", &client, "alice").await;

    // The JavaScript component compiles for seconds: set through the service, as the CLI
    // does, rather than within one API request's time.
    let module = tokio::task::spawn_blocking(wasm::js_custom_auth)
        .await
        .unwrap();
    let pool = app
        .gh
        .pool(&gatehouse_domain::ids::PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    for trigger in CUSTOM_AUTH {
        let trigger = gatehouse_domain::hooks::Trigger::parse(trigger).unwrap();
        let set = app
            .gh
            .set_hook(
                &pool,
                None,
                trigger,
                gatehouse_service::hooks::HookSource::Wasm(module.clone()),
                &Default::default(),
            )
            .await
            .unwrap();
        assert_eq!(set.kind.map(|k| k.as_str()), Some("component"));
    }
    custom_sign_in(&app, "acme", &client, "alice").await;
    // The JavaScript module is also a pre-token hook: its claim is added, and its attempts
    // at `sub` and `act` are refused and audited.
    let set = app
        .gh
        .set_hook(
            &pool,
            None,
            gatehouse_domain::hooks::Trigger::PreTokenGeneration,
            gatehouse_service::hooks::HookSource::Wasm(module),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(set.runtime, "wasm");
    let access = custom_sign_in(&app, "acme", &client, "alice").await;
    let claims = jwt_claims(&access);
    assert_eq!(claims["tenant_tier"], "gold");
    assert_ne!(claims["sub"], "someone-else");
    assert!(claims.get("act").is_none());
    assert!(app.audit_count("acme", "hook.claim_refused").await >= 1);
}

/// The webhook the tests' pool calls: it checks each call's signature and answers the custom
/// flow (the answer is "42") and pre-token generation.
#[derive(Clone, Default)]
struct Receiver {
    secret: String,
    calls: Arc<Mutex<Vec<(String, bool)>>>,
    /// Answer 503 to this many calls first.
    fail_first: Arc<Mutex<u32>>,
}

async fn webhook(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: String,
) -> (axum::http::StatusCode, String) {
    let signature = headers
        .get("x-gatehouse-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (t, v1) = signature
        .split_once(",v1=")
        .map(|(t, v)| (t.trim_start_matches("t=").to_owned(), v.to_owned()))
        .unwrap_or_default();
    let expected = gatehouse_crypto::secret::hmac_sha256(
        r.secret.as_bytes(),
        format!("{t}.{body}").as_bytes(),
    )
    .iter()
    .map(|b| format!("{b:02x}"))
    .collect::<String>();
    let mut event: Value = serde_json::from_str(&body).unwrap();
    let source = event["triggerSource"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    r.calls
        .lock()
        .unwrap()
        .push((source.clone(), v1 == expected));
    if v1 != expected {
        return (axum::http::StatusCode::UNAUTHORIZED, String::new());
    }
    {
        let mut fail = r.fail_first.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new());
        }
    }
    let request = &event["request"];
    event["response"] = match source.as_str() {
        "DefineAuthChallenge_Authentication" => {
            let session = request["session"].as_array().cloned().unwrap_or_default();
            match session.last() {
                Some(s) if s["challengeResult"] == true => json!({"issueTokens": true}),
                _ if session.len() >= 3 => json!({"failAuthentication": true}),
                _ => json!({"challengeName": "CUSTOM_CHALLENGE"}),
            }
        }
        "CreateAuthChallenge_Authentication" => json!({
            "publicChallengeParameters": {"hint": "six times seven"},
            "privateChallengeParameters": {"answer": "42"},
            "challengeMetadata": "WEBHOOK"}),
        "VerifyAuthChallengeResponse_Authentication" => json!({
            "answerCorrect": request["challengeAnswer"] == request["privateChallengeParameters"]["answer"]}),
        s if s.starts_with("TokenGeneration_") => json!({"claimsAndScopeOverrideDetails": {
            "accessTokenGeneration": {"claimsToAddOrOverride": {
                "tenant_tier": "silver", "sub": "intruder", "iss": "https://evil.example",
                "act": {"sub": "intruder"}}},
            "idTokenGeneration": {"claimsToAddOrOverride": {"tenant_tier": "silver"},
                                  "claimsToSuppress": ["email"]}}}),
        _ => return (axum::http::StatusCode::BAD_REQUEST, String::new()),
    };
    (axum::http::StatusCode::OK, event.to_string())
}

async fn start_receiver(secret: &str) -> (String, Receiver) {
    let receiver = Receiver {
        secret: secret.to_owned(),
        ..Receiver::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/hook", post(webhook))
        .with_state(receiver.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, receiver)
}

async fn put_webhook(
    app: &TestApp,
    token: &str,
    trigger: &str,
    url: &str,
    secret: &str,
) -> reqwest::Response {
    app.http
        .put(app.pool_url("acme", &format!("{HOOKS}/{trigger}")))
        .bearer_auth(token)
        .json(&json!({"url": url, "secret": secret}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_webhook_decides_the_custom_flow_and_shapes_tokens_but_never_protected_claims() {
    let app = spawn_app().await;
    let (oauth_client, ada) = app.acme_with_ada().await;
    let (client, _) = sign_in_client(&app, "acme", ClientType::Public).await;
    let secret = "a-webhook-secret-of-some-length";
    let (url, receiver) = start_receiver(secret).await;
    for trigger in CUSTOM_AUTH.iter().chain(&["pre-token-generation"]) {
        let res = put_webhook(&app, &ada, trigger, &url, secret).await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
    let listed: Value = app
        .http
        .get(app.pool_url("acme", HOOKS))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["hooks"].as_array().unwrap().len(), 4);
    assert_eq!(listed["hooks"][0]["runtime"], "webhook");
    assert!(
        !listed.to_string().contains(secret),
        "the secret is never answered"
    );

    // One 503 first: the call is tried again.
    *receiver.fail_first.lock().unwrap() = 1;
    let access = custom_sign_in(&app, "acme", &client, "alice").await;
    let claims = jwt_claims(&access);
    assert_eq!(claims["tenant_tier"], "silver");
    assert_ne!(claims["sub"], "intruder");
    assert_eq!(claims["iss"], app.issuer("acme"));
    assert!(claims.get("act").is_none());
    assert_eq!(
        app.introspect("acme", &oauth_client, &access).await["active"],
        true
    );
    assert!(app.audit_count("acme", "hook.claim_refused").await >= 1);
    let calls = receiver.calls.lock().unwrap().clone();
    assert!(
        calls.iter().all(|(_, signed)| *signed),
        "every call is signed"
    );
    assert!(
        calls
            .iter()
            .any(|(s, _)| s == "TokenGeneration_Authentication")
    );

    // Client credentials run the hook too (V3's trigger), with the same refusals.
    let token = app.client_token("acme", &oauth_client).await;
    let claims = jwt_claims(&token);
    assert_eq!(claims["tenant_tier"], "silver");
    assert_eq!(claims["sub"], oauth_client.id.as_str());
    assert!(
        receiver
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|(s, _)| s == "TokenGeneration_ClientCredentials")
    );

    // An impersonated token is shaped like the user's own, its `act` left as it is.
    let acting = app.impersonate("acme", &ada, "alice").await;
    let claims = jwt_claims(&acting);
    assert_eq!(claims["tenant_tier"], "silver");
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["act"]["username"], "ada", "{claims}");
    assert_ne!(claims["act"]["sub"], "intruder");
    assert!(
        receiver
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|(s, _)| s == "TokenGeneration_Impersonation")
    );

    // A webhook that answers nothing useful fails the sign-in closed, audited.
    let res = put_webhook(
        &app,
        &ada,
        "define-auth-challenge",
        &format!("{url}-gone"),
        secret,
    )
    .await;
    assert_eq!(res.status(), 200);
    let (status, kind, body) = call(&app, "acme", "InitiateAuth", initiate(&client, "alice")).await;
    assert_eq!(
        (status, kind.as_str()),
        (400, "UnexpectedLambdaException"),
        "{body}"
    );
    assert!(app.audit_count("acme", "hook.failed").await >= 1);
}

#[tokio::test]
async fn runaway_hooks_fail_their_sign_in_closed_and_others_proceed() {
    let app = spawn_app().await;
    let (_, ada) = app.acme_with_ada().await;
    let (client, _) = sign_in_client(&app, "acme", ClientType::Public).await;
    custom_auth_hooks(&app, "acme", &ada, wasm::wat_custom_auth()).await;
    // Two more pools, each with a define hook that never ends well.
    let mut runaways = Vec::new();
    for (pool, module) in [
        ("looping", wasm::infinite_loop()),
        ("hungry", wasm::memory_bomb()),
        ("trapping", wasm::trap()),
        ("babbling", wasm::bad_output()),
        ("verbose", wasm::huge_output()),
    ] {
        app.create_pool(pool).await;
        app.create_user(pool, "root", &["admin"], "root-password-1")
            .await;
        app.create_user(pool, "pat", &[], "pat-password-1").await;
        let oauth = app.create_client(pool, &[]).await;
        let root = app.sign_in(pool, &oauth, "root", "root-password-1").await;
        let res = put_wasm(&app, pool, &root, "define-auth-challenge", module).await;
        assert_eq!(res.status(), 200, "{pool}: {}", res.text().await.unwrap());
        let (pool_client, _) = sign_in_client(&app, pool, ClientType::Public).await;
        runaways.push((pool, pool_client));
    }
    // Every runaway sign-in at once, and a good one beside them.
    let mut tasks = Vec::new();
    for (pool, pool_client) in runaways.clone() {
        let app_url = app.pool_url(pool, "/cognito");
        tasks.push(tokio::spawn(async move {
            let res = reqwest::Client::new()
                .post(app_url)
                .header(
                    "x-amz-target",
                    "AWSCognitoIdentityProviderService.InitiateAuth",
                )
                .header("content-type", "application/x-amz-json-1.1")
                .body(initiate(&pool_client, "pat").to_string())
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            (pool, status, body)
        }));
    }
    let good = tokio::time::timeout(
        Duration::from_secs(30),
        custom_sign_in(&app, "acme", &client, "alice"),
    )
    .await
    .expect("a good sign-in proceeds beside the runaways");
    assert!(!good.is_empty());
    for task in tasks {
        let (pool, status, body) = task.await.unwrap();
        assert_eq!(status, 400, "{pool}: {body}");
        let expected = if matches!(pool, "babbling" | "verbose") {
            "InvalidLambdaResponseException"
        } else {
            "UnexpectedLambdaException"
        };
        assert_eq!(body["__type"], expected, "{pool}: {body}");
    }
    // Each failure is audited with its reason.
    for (pool, reasons) in [
        ("looping", &["deadline", "out_of_fuel"][..]),
        ("hungry", &["memory", "trap"][..]),
        ("trapping", &["trap"][..]),
        ("babbling", &["bad_output"][..]),
        ("verbose", &["bad_output"][..]),
    ] {
        let events = app.audit_details(pool, "hook.failed").await;
        assert_eq!(events.len(), 1, "{pool}: {events:?}");
        let reason = events[0].get("reason").cloned().unwrap_or_default();
        assert!(reasons.contains(&reason.as_str()), "{pool}: {reason}");
    }
    // The server stays healthy.
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn only_a_caller_holding_every_permission_sets_hooks_and_bad_ones_are_refused() {
    let app = spawn_app().await;
    let (oauth_client, ada) = app.acme_with_ada().await;
    // Holding the hook permissions is not enough: a hook decides every sign-in.
    app.create_user(
        "acme",
        "hal",
        &["settings:UpdateHooks", "settings:GetHooks"],
        "hal-password-123",
    )
    .await;
    let hal = app
        .sign_in("acme", &oauth_client, "hal", "hal-password-123")
        .await;
    let res = put_wasm(
        &app,
        "acme",
        &hal,
        "define-auth-challenge",
        wasm::wat_custom_auth(),
    )
    .await;
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .get(app.pool_url("acme", HOOKS))
        .bearer_auth(&hal)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "listing needs only settings:GetHooks");
    let alice = app
        .sign_in("acme", &oauth_client, "alice", "alice-password-1")
        .await;
    let res = put_wasm(
        &app,
        "acme",
        &alice,
        "define-auth-challenge",
        wasm::wat_custom_auth(),
    )
    .await;
    assert_eq!(res.status(), 403);
    // An impersonated administrator's token is not the administrator.
    let impersonated = app.impersonate("acme", &ada, "alice").await;
    let res = put_wasm(
        &app,
        "acme",
        &impersonated,
        "define-auth-challenge",
        wasm::wat_custom_auth(),
    )
    .await;
    assert!(
        res.status() == 403 || res.status() == 401,
        "{}",
        res.status()
    );

    // Modules that are not hooks are refused, with the reason.
    let importing = wat::parse_str(
        r#"(module (import "env" "f" (func)) (memory (export "memory") 1)
             (func (export "alloc") (param i32) (result i32) i32.const 0)
             (func (export "handle") (param i32 i32) (result i64) i64.const 0))"#,
    )
    .unwrap();
    for (module, what) in [
        (b"not wasm at all".to_vec(), "garbage"),
        (importing, "an import"),
        (wat::parse_str("(module)").unwrap(), "no exports"),
    ] {
        let res = put_wasm(&app, "acme", &ada, "define-auth-challenge", module).await;
        assert_eq!(res.status(), 400, "{what}");
    }
    let res = put_wasm(
        &app,
        "acme",
        &ada,
        "post-confirmation",
        wasm::wat_custom_auth(),
    )
    .await;
    assert_eq!(res.status(), 400, "an unknown trigger");
    // Webhooks must pass the outbound policy and carry a real secret.
    for (url, secret) in [
        ("http://10.0.0.1/hook", "a-webhook-secret-of-some-length"),
        (
            "http://169.254.169.254/latest",
            "a-webhook-secret-of-some-length",
        ),
        ("file:///etc/passwd", "a-webhook-secret-of-some-length"),
        ("http://127.0.0.1:9/hook", "short"),
    ] {
        let res = put_webhook(&app, &ada, "define-auth-challenge", url, secret).await;
        assert_eq!(res.status(), 400, "{url}");
    }
    let res = app
        .http
        .put(app.pool_url("acme", &format!("{HOOKS}/define-auth-challenge")))
        .bearer_auth(&ada)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    // Nothing was set by any of that.
    let listed: Value = app
        .http
        .get(app.pool_url("acme", HOOKS))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["hooks"], json!([]));

    // The administrator sets one, and removes it; both are audited.
    let res = put_wasm(
        &app,
        "acme",
        &ada,
        "define-auth-challenge",
        wasm::wat_custom_auth(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let set: Value = res.json().await.unwrap();
    assert_eq!(set["trigger"], "define-auth-challenge");
    assert_eq!(set["kind"], "core-module");
    assert_eq!(set["sha256"].as_str().unwrap().len(), 64);
    let res = app
        .http
        .delete(app.pool_url("acme", &format!("{HOOKS}/define-auth-challenge")))
        .bearer_auth(&hal)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .delete(app.pool_url("acme", &format!("{HOOKS}/define-auth-challenge")))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .http
        .delete(app.pool_url("acme", &format!("{HOOKS}/define-auth-challenge")))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(app.audit_count("acme", "hook.set").await, 1);
    assert_eq!(app.audit_count("acme", "hook.deleted").await, 1);
}

#[tokio::test]
async fn answers_racing_on_one_custom_session_pass_once() {
    let app = spawn_app().await;
    let (_oauth_client, ada) = app.acme_with_ada().await;
    let (client, _) = sign_in_client(&app, "acme", ClientType::Public).await;
    custom_auth_hooks(&app, "acme", &ada, wasm::wat_custom_auth()).await;
    let (_, _, first) = call(&app, "acme", "InitiateAuth", initiate(&client, "alice")).await;
    // Four right answers at once on one session: the session is taken by exactly one.
    let body = answer(&client, "alice", &first["Session"], "42");
    let respond = || call(&app, "acme", "RespondToAuthChallenge", body.clone());
    let (a, b, c, d) = tokio::join!(respond(), respond(), respond(), respond());
    let results = [a, b, c, d];
    let passed: Vec<&Value> = results
        .iter()
        .filter(|(status, _, _)| *status == 200)
        .map(|(_, _, body)| body)
        .collect();
    assert_eq!(passed.len(), 1, "{results:?}");
    assert!(passed[0]["AuthenticationResult"]["AccessToken"].is_string());
    for (status, kind, _) in results.iter().filter(|(status, _, _)| *status != 200) {
        assert_eq!((*status, kind.as_str()), (400, "NotAuthorizedException"));
    }
    assert_eq!(
        app.audit_count("acme", "user.signed_in").await,
        2,
        "ada's, then alice's once"
    );
}

#[tokio::test]
async fn a_flood_on_one_pools_hooks_is_cut_off_by_its_time_budget_and_others_proceed() {
    // A budget that earns back almost nothing: what a pool spends is gone for the test.
    let app = spawn_app_with(Backend::from_env(), |config| {
        config.limits.hook_time_ms_per_second = 1;
        config.limits.hook_time_burst_ms = 50;
    })
    .await;
    let (_, ada) = app.acme_with_ada().await;
    let (client, _) = sign_in_client(&app, "acme", ClientType::Public).await;
    custom_auth_hooks(&app, "acme", &ada, wasm::wat_custom_auth()).await;
    app.create_pool("looping").await;
    app.create_user("looping", "root", &["admin"], "root-password-1")
        .await;
    let oauth = app.create_client("looping", &[]).await;
    let root = app
        .sign_in("looping", &oauth, "root", "root-password-1")
        .await;
    let res = put_wasm(
        &app,
        "looping",
        &root,
        "define-auth-challenge",
        wasm::infinite_loop(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let (looping_client, _) = sign_in_client(&app, "looping", ClientType::Public).await;

    // Abandoned sign-ins for made-up usernames, one after another: each runs the hook until
    // the pool's time is spent, then none runs.
    let mut ran = 0;
    let mut refused = None;
    for i in 0..20 {
        let res = app
            .http
            .post(app.pool_url("looping", "/cognito"))
            .header(
                "x-amz-target",
                "AWSCognitoIdentityProviderService.InitiateAuth",
            )
            .header("content-type", "application/x-amz-json-1.1")
            .body(initiate(&looping_client, &format!("nobody{i}")).to_string())
            .send()
            .await
            .unwrap();
        let retry_after = res.headers().get("retry-after").cloned();
        let body: Value = res.json().await.unwrap();
        if body["__type"] == "TooManyRequestsException" {
            refused = Some(retry_after);
            break;
        }
        assert_eq!(body["__type"], "UnexpectedLambdaException", "{body}");
        ran += 1;
    }
    let retry_after =
        refused.unwrap_or_else(|| panic!("the flood is not cut off after {ran} runs"));
    assert!(retry_after.is_some(), "the refusal says when to come back");
    assert!(ran >= 1, "the budget lets the first calls run");
    assert_eq!(
        app.audit_details("looping", "hook.failed").await.len(),
        ran,
        "a refused call never ran the hook"
    );
    // The other pool's sign-ins proceed on their own budget.
    let access = custom_sign_in(&app, "acme", &client, "alice").await;
    assert!(!access.is_empty());
}
