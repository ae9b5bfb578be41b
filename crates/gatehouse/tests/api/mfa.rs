//! Software tokens (TOTP) and recovery codes in sign-in: enrollment through the API, the
//! `SOFTWARE_TOKEN_MFA` and `MFA_SETUP` challenges, the pool's MFA setting, `disable-mfa`,
//! and the hosted sign-in's code page. Codes come from PyPI `pyotp` (an independent
//! implementation of RFC 6238), run through `tests/peers/totp.py`.

use gatehouse_domain::ids::PoolSlug;
use gatehouse_domain::security_event::EventKind;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::{Value, json};

use crate::code_flow::{Browser, authorize_url, hidden, query_of, web_client};
use crate::common::*;

const USERS: &str = "/api/user-management/users";

/// The code of `secret` at `unix_secs`, computed by pyotp.
pub(crate) fn pyotp_code(secret: &str, unix_secs: i64) -> String {
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/totp.py");
    let out = std::process::Command::new(venv_tool("python3"))
        .arg(script)
        .arg(secret)
        .arg(unix_secs.to_string())
        .output()
        .expect("python3 with pyotp (scripts/test installs it in target/peers-venv)");
    assert!(
        out.status.success(),
        "pyotp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub(crate) fn now(app: &TestApp) -> i64 {
    use gatehouse_domain::time::Clock;
    app.clock.now().as_secs()
}

/// Moves the clock to the start of the next 30-second step, so that a test's codes do not
/// straddle a step boundary by accident.
fn next_step(app: &TestApp) {
    let t = now(app);
    app.clock.advance(30 - t.rem_euclid(30));
}

async fn post_json(
    app: &TestApp,
    path: &str,
    bearer: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = app.http.post(app.pool_url("acme", path)).json(&body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn initiate(
    app: &TestApp,
    c: &ClientCreds,
    username: &str,
    password: &str,
) -> reqwest::Response {
    post_json(
        app,
        "/api/auth/initiate",
        None,
        json!({"flow": "USER_PASSWORD", "client_id": c.id, "client_secret": c.secret,
               "username": username, "password": password}),
    )
    .await
}

async fn respond(
    app: &TestApp,
    c: &ClientCreds,
    challenge: &str,
    session: &str,
    code: &str,
) -> reqwest::Response {
    post_json(
        app,
        "/api/auth/respond",
        None,
        json!({"challenge": challenge, "client_id": c.id, "client_secret": c.secret,
               "session": session, "code": code}),
    )
    .await
}

/// Enrolls a software token for the holder of `token`: its secret and recovery codes.
pub(crate) async fn enroll(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let res = post_json(app, "/api/auth/mfa/totp/associate", Some(token), json!({})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    let uri = body["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/acme:") && uri.contains(&format!("secret={secret}")),
        "{uri}"
    );
    let code = pyotp_code(&secret, now(app));
    let res = post_json(
        app,
        "/api/auth/mfa/totp/verify",
        Some(token),
        json!({"code": code}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

/// The password step for a user with a token: the challenge's session.
async fn password_step(app: &TestApp, c: &ClientCreds, username: &str, password: &str) -> String {
    let res = initiate(app, c, username, password).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["challenge"], "SOFTWARE_TOKEN_MFA", "{body}");
    assert!(body.get("access_token").is_none());
    body["session"].as_str().unwrap().to_owned()
}

async fn set_mfa(app: &TestApp, ada: &str, mode: &str) {
    let res = app
        .http
        .put(app.pool_url("acme", "/api/auth/settings/mfa"))
        .bearer_auth(ada)
        .json(&json!({"MfaConfiguration": mode}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn a_user_enrolls_a_token_and_signs_in_with_a_code_once_per_step() {
    let app = spawn_app().await;
    let (client, _ada) = app.acme_with_ada().await;
    next_step(&app);
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;

    // A pending enrollment is not asked for: a wrong first code confirms nothing.
    let res = post_json(
        &app,
        "/api/auth/mfa/totp/associate",
        Some(&alice),
        json!({}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = post_json(
        &app,
        "/api/auth/mfa/totp/verify",
        Some(&alice),
        json!({"code": "000000"}),
    )
    .await;
    assert_eq!(res.status(), 401);
    let res = initiate(&app, &client, "alice", "alice-password-1").await;
    let body: Value = res.json().await.unwrap();
    assert!(
        body["access_token"].is_string(),
        "pending is not enrolled: {body}"
    );

    let (secret, _codes) = enroll(&app, &alice).await;
    assert_eq!(app.audit_count("acme", "user.mfa_enrolled").await, 1);

    // The code that confirmed the enrollment is spent for its step.
    let session = password_step(&app, &client, "alice", "alice-password-1").await;
    let same_step = pyotp_code(&secret, now(&app));
    let res = respond(&app, &client, "SOFTWARE_TOKEN_MFA", &session, &same_step).await;
    assert_eq!(res.status(), 401, "a code is accepted once per step");

    // The next step's code signs in; the same code again is refused.
    app.clock.advance(30);
    let code = pyotp_code(&secret, now(&app));
    let res = respond(&app, &client, "SOFTWARE_TOKEN_MFA", &session, &code).await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.userinfo_status("acme", access).await, 200);

    let session = password_step(&app, &client, "alice", "alice-password-1").await;
    let res = respond(&app, &client, "SOFTWARE_TOKEN_MFA", &session, &code).await;
    assert_eq!(res.status(), 401, "a code reused in its step");

    // A code of two steps ago is outside the window; one step ago, never used, passes.
    app.clock.advance(60);
    let old = pyotp_code(&secret, now(&app) - 60);
    let res = respond(&app, &client, "SOFTWARE_TOKEN_MFA", &session, &old).await;
    assert_eq!(res.status(), 401, "two steps ago");
    let previous = pyotp_code(&secret, now(&app) - 30);
    let res = respond(&app, &client, "SOFTWARE_TOKEN_MFA", &session, &previous).await;
    assert_eq!(res.status(), 200, "one step ago is within the window");
}

#[tokio::test]
async fn a_challenge_session_is_single_use_and_expires() {
    let app = spawn_app().await;
    let (client, _ada) = app.acme_with_ada().await;
    next_step(&app);
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let (secret, _) = enroll(&app, &alice).await;

    app.clock.advance(30);
    let session = password_step(&app, &client, "alice", "alice-password-1").await;
    let res = respond(
        &app,
        &client,
        "SOFTWARE_TOKEN_MFA",
        &session,
        &pyotp_code(&secret, now(&app)),
    )
    .await;
    assert_eq!(res.status(), 200);
    app.clock.advance(30);
    let res = respond(
        &app,
        &client,
        "SOFTWARE_TOKEN_MFA",
        &session,
        &pyotp_code(&secret, now(&app)),
    )
    .await;
    assert_eq!(res.status(), 401, "a used session");
    let body: Value = res.json().await.unwrap();
    assert!(body.to_string().contains("session"), "{body}");

    // Past three minutes the session is refused even with a good code.
    let session = password_step(&app, &client, "alice", "alice-password-1").await;
    app.clock.advance(181);
    let res = respond(
        &app,
        &client,
        "SOFTWARE_TOKEN_MFA",
        &session,
        &pyotp_code(&secret, now(&app)),
    )
    .await;
    assert_eq!(res.status(), 401, "an expired session");

    // A session of another challenge, or altered, is refused.
    let session = password_step(&app, &client, "alice", "alice-password-1").await;
    let res = respond(
        &app,
        &client,
        "MFA_SETUP",
        &session,
        &pyotp_code(&secret, now(&app)),
    )
    .await;
    assert_eq!(res.status(), 401);
    let mut forged = session.clone();
    forged.pop();
    let res = respond(
        &app,
        &client,
        "SOFTWARE_TOKEN_MFA",
        &forged,
        &pyotp_code(&secret, now(&app)),
    )
    .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn wrong_codes_count_toward_the_lockout() {
    let app = spawn_app().await;
    let (client, _ada) = app.acme_with_ada().await;
    next_step(&app);
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let (secret, codes) = enroll(&app, &alice).await;
    app.clock.advance(30);

    let session = password_step(&app, &client, "alice", "alice-password-1").await;
    let good = pyotp_code(&secret, now(&app));
    let wrong = if good == "123456" { "654321" } else { "123456" };
    let mut throttled = false;
    for _ in 0..20 {
        let res = respond(&app, &client, "SOFTWARE_TOKEN_MFA", &session, wrong).await;
        match res.status().as_u16() {
            401 => continue,
            429 => {
                throttled = true;
                break;
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert!(throttled, "wrong codes lead to the lockout");
    assert!(app.audit_count("acme", "user.sign_in_failed").await >= 1);
    // Locked: neither a good code nor a recovery code gets through.
    let res = respond(&app, &client, "SOFTWARE_TOKEN_MFA", &session, &good).await;
    assert_eq!(res.status(), 429);
    let res = respond(&app, &client, "SOFTWARE_TOKEN_MFA", &session, &codes[0]).await;
    assert_eq!(res.status(), 429, "recovery does not bypass the lockout");
}

#[tokio::test]
async fn the_password_between_wrong_codes_does_not_reset_the_count() {
    let app = spawn_app().await;
    let (client, _ada) = app.acme_with_ada().await;
    next_step(&app);
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let (secret, _) = enroll(&app, &alice).await;
    app.clock.advance(30);
    let good = pyotp_code(&secret, now(&app));
    let wrong = if good == "123456" { "654321" } else { "123456" };
    let mut refused_at = None;
    'rounds: for round in 0..10 {
        // The correct password each round: it must not wipe the wrong codes' count.
        let res = initiate(&app, &client, "alice", "alice-password-1").await;
        if res.status() == 429 {
            refused_at = Some(round);
            break;
        }
        let body: Value = res.json().await.unwrap();
        let session = body["session"].as_str().unwrap().to_owned();
        for _ in 0..3 {
            let res = respond(&app, &client, "SOFTWARE_TOKEN_MFA", &session, wrong).await;
            if res.status() == 429 {
                refused_at = Some(round);
                break 'rounds;
            }
            assert_eq!(res.status(), 401);
        }
    }
    assert!(
        refused_at.is_some_and(|r| r <= 2),
        "the back-off comes after a handful of wrong codes: {refused_at:?}"
    );
}

#[tokio::test]
async fn a_recovery_code_signs_in_once_and_notifies_the_user() {
    let app = spawn_app().await;
    let (client, _ada) = app.acme_with_ada().await;
    next_step(&app);
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let (_secret, codes) = enroll(&app, &alice).await;
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    for c in &codes {
        assert_eq!(c.len(), 11, "ten base32 characters in two groups: {c}");
    }

    let before = app.outbox().len();
    let session = password_step(&app, &client, "alice", "alice-password-1").await;
    // Typed in lower case without the dash: the same code.
    let typed = codes[3].to_lowercase().replace('-', "");
    let res = respond(&app, &client, "SOFTWARE_TOKEN_MFA", &session, &typed).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.audit_count("acme", "mfa.recovery_code_used").await, 1);
    let outbox = app.outbox();
    assert_eq!(outbox.len(), before + 1);
    let notice = outbox.last().unwrap();
    assert_eq!(notice["kind"], "security_notice");
    assert_eq!(notice["to_email"], "alice@example.com");
    assert!(
        !notice.to_string().contains(&codes[3]),
        "the code is not sent"
    );

    let session = password_step(&app, &client, "alice", "alice-password-1").await;
    let res = respond(&app, &client, "SOFTWARE_TOKEN_MFA", &session, &codes[3]).await;
    assert_eq!(res.status(), 401, "a recovery code is single use");
    let res = respond(&app, &client, "SOFTWARE_TOKEN_MFA", &session, "AAAAA-AAAAA").await;
    assert_eq!(res.status(), 401, "a made-up code");
    let res = respond(&app, &client, "SOFTWARE_TOKEN_MFA", &session, &codes[4]).await;
    assert_eq!(res.status(), 200, "another code still works");
}

#[tokio::test]
async fn the_pool_setting_decides_the_mfa_step() {
    let app = spawn_app().await;
    let (client, ada) = app.acme_with_ada().await;
    next_step(&app);

    let res = app
        .http
        .get(app.pool_url("acme", "/api/auth/settings/mfa"))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["MfaConfiguration"],
        "optional"
    );
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let res = app
        .http
        .put(app.pool_url("acme", "/api/auth/settings/mfa"))
        .bearer_auth(&alice)
        .json(&json!({"MfaConfiguration": "off"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "a plain user cannot change it");
    let res = app
        .http
        .put(app.pool_url("acme", "/api/auth/settings/mfa"))
        .bearer_auth(&ada)
        .json(&json!({"MfaConfiguration": "sometimes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // Required: a user without a factor enrolls with its MFA_SETUP session, then is signed in.
    set_mfa(&app, &ada, "required").await;
    let res = initiate(&app, &client, "alice", "alice-password-1").await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["challenge"], "MFA_SETUP", "{body}");
    let session = body["session"].as_str().unwrap().to_owned();
    let res = post_json(&app, "/api/auth/mfa/totp/associate", None, json!({})).await;
    assert_eq!(res.status(), 401, "neither a token nor a session");
    let res = post_json(
        &app,
        "/api/auth/mfa/totp/associate",
        None,
        json!({"client_id": client.id, "client_secret": client.secret, "session": session}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let secret = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = respond(&app, &client, "MFA_SETUP", &session, "000000").await;
    assert_eq!(res.status(), 401);
    let res = respond(
        &app,
        &client,
        "MFA_SETUP",
        &session,
        &pyotp_code(&secret, now(&app)),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["access_token"].is_string(), "{body}");
    assert_eq!(body["recovery_codes"].as_array().unwrap().len(), 10);
    let res = respond(
        &app,
        &client,
        "MFA_SETUP",
        &session,
        &pyotp_code(&secret, now(&app) + 30),
    )
    .await;
    assert_eq!(res.status(), 401, "the setup session is single use");
    // From now on alice answers SOFTWARE_TOKEN_MFA.
    password_step(&app, &client, "alice", "alice-password-1").await;

    // Off: no MFA step, even for an enrolled user.
    set_mfa(&app, &ada, "off").await;
    let res = initiate(&app, &client, "alice", "alice-password-1").await;
    let body: Value = res.json().await.unwrap();
    assert!(body["access_token"].is_string(), "{body}");
    assert!(body.get("challenge").is_none());
}

#[test]
fn the_cli_sets_the_pool_mfa_setting() {
    use crate::cli::{gatehouse, json_of};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    json_of(
        gatehouse(d)
            .args(["pool", "create", "acme", "--json"])
            .output()
            .unwrap(),
    );
    let shown = json_of(
        gatehouse(d)
            .args(["pool", "set", "--pool", "acme", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(shown["mfa"], "optional", "a new pool's default");
    let set = json_of(
        gatehouse(d)
            .args([
                "pool", "set", "--pool", "acme", "--mfa", "required", "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(set["mfa"], "required");
    let refused = gatehouse(d)
        .args(["pool", "set", "--pool", "acme", "--mfa", "sometimes"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let shown = json_of(
        gatehouse(d)
            .args(["pool", "set", "--pool", "acme", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(shown["mfa"], "required");
}

#[tokio::test]
async fn impersonated_tokens_cannot_enroll() {
    let app = spawn_app().await;
    let (_client, ada) = app.acme_with_ada().await;
    let as_alice = app.impersonate("acme", &ada, "alice").await;
    let res = post_json(
        &app,
        "/api/auth/mfa/totp/associate",
        Some(&as_alice),
        json!({}),
    )
    .await;
    assert_eq!(res.status(), 403);
    let res = post_json(
        &app,
        "/api/auth/mfa/totp/verify",
        Some(&as_alice),
        json!({"code": "123456"}),
    )
    .await;
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn disable_mfa_follows_dominance_ends_sessions_and_tells_relying_parties() {
    let app = spawn_app().await;
    let (client, ada) = app.acme_with_ada().await;
    app.create_user(
        "acme",
        "uma",
        &["user:DisableUserMFA", "user:GetUser"],
        "uma-password-123",
    )
    .await;
    next_step(&app);
    let (ada_secret, _) = enroll(&app, &ada).await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let (_alice_secret, alice_codes) = enroll(&app, &alice).await;
    let uma = app
        .sign_in("acme", &client, "uma", "uma-password-123")
        .await;

    // uma may disable MFA, but not of ada, who outranks her.
    let res = post_json(
        &app,
        &format!("{USERS}/ada/actions/disable-mfa"),
        Some(&uma),
        json!({}),
    )
    .await;
    assert_eq!(res.status(), 403);
    app.clock.advance(30);
    let session = password_step(&app, &client, "ada", "ada-password-123").await;
    let res = respond(
        &app,
        &client,
        "SOFTWARE_TOKEN_MFA",
        &session,
        &pyotp_code(&ada_secret, now(&app)),
    )
    .await;
    assert_eq!(res.status(), 200, "ada's token still stands");

    let p = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    let cursor = app
        .gh
        .security_events(&p, 0, 10_000)
        .await
        .unwrap()
        .last()
        .map_or(0, |e| e.seq);
    let res = post_json(
        &app,
        &format!("{USERS}/alice/actions/disable-mfa"),
        Some(&uma),
        json!({}),
    )
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.userinfo_status("acme", &alice).await,
        401,
        "alice's sessions ended"
    );
    let events = app.gh.security_events(&p, cursor, 1000).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e.event.kind, EventKind::CredentialChange { .. })),
        "{events:#?}"
    );
    assert_eq!(app.audit_count("acme", "user.mfa_disabled").await, 1);
    let notice = app.outbox().last().cloned().unwrap();
    assert_eq!(notice["kind"], "security_notice");
    assert_eq!(notice["to_email"], "alice@example.com");
    // No MFA step any more, and the old recovery codes are gone.
    let res = initiate(&app, &client, "alice", "alice-password-1").await;
    let body: Value = res.json().await.unwrap();
    assert!(body["access_token"].is_string(), "{body}");
    let alice = body["access_token"].as_str().unwrap().to_owned();
    let (_, new_codes) = enroll(&app, &alice).await;
    assert!(new_codes.iter().all(|c| !alice_codes.contains(c)));
    let session = password_step(&app, &client, "alice", "alice-password-1").await;
    let res = respond(
        &app,
        &client,
        "SOFTWARE_TOKEN_MFA",
        &session,
        &alice_codes[0],
    )
    .await;
    assert_eq!(res.status(), 401, "the removed recovery codes are refused");
}

#[tokio::test]
async fn the_hosted_sign_in_asks_for_the_code_after_the_password() {
    let app = spawn_app().await;
    let (client_api, _ada) = app.acme_with_ada().await;
    next_step(&app);
    let alice = app
        .sign_in("acme", &client_api, "alice", "alice-password-1")
        .await;
    let (secret, codes) = enroll(&app, &alice).await;
    app.clock.advance(30);
    let client = web_client(&app, "acme", &["authorization_code"]).await;

    let mut browser = Browser::new();
    let url = authorize_url(&app, "acme", &client, "");
    let action = url.split('?').next().unwrap().to_owned();
    let html = browser.get(&url).await.text().await.unwrap();
    let res = browser
        .post(
            &action,
            &[
                ("step", "password"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "alice"),
                ("password", "alice-password-1"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get(LOCATION).is_none(), "not signed in yet");
    let html = res.text().await.unwrap();
    assert!(html.contains("<label for=\"code\">Code</label>"), "{html}");
    assert!(html.contains(">Verify</button>"), "{html}");
    assert!(html.contains("Use a recovery code instead"), "{html}");
    assert!(
        !browser
            .cookies
            .iter()
            .any(|(k, _)| k == "gatehouse_sso_acme")
    );

    // A wrong code shows the page again; the right one signs in.
    let form = |html: &str, code: &str| {
        vec![
            ("step".to_owned(), "mfa_code".to_owned()),
            ("request".to_owned(), hidden(html, "request")),
            ("challenge".to_owned(), hidden(html, "challenge")),
            ("csrf".to_owned(), hidden(html, "csrf")),
            ("code".to_owned(), code.to_owned()),
        ]
    };
    let f = form(&html, "000000");
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = browser.post(&action, &pairs).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let html = res.text().await.unwrap();
    assert!(html.contains("That code is not valid"), "{html}");

    // The recovery page, then back to a code.
    let f = form(&html, "");
    let mut pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs[0].1 = "mfa_recovery";
    let res = browser.post(&action, &pairs).await;
    assert_eq!(res.status(), StatusCode::OK);
    let recovery_html = res.text().await.unwrap();
    assert!(recovery_html.contains("Recovery code"), "{recovery_html}");

    let f = form(&recovery_html, &pyotp_code(&secret, now(&app)));
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = browser.post(&action, &pairs).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    let location = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(query_of(&location).contains_key("code"), "{location}");
    assert!(
        browser
            .cookies
            .iter()
            .any(|(k, _)| k == "gatehouse_sso_acme")
    );

    // A recovery code works on the page too, in a fresh browser.
    let mut other = Browser::new();
    let html = other.get(&url).await.text().await.unwrap();
    let res = other
        .post(
            &action,
            &[
                ("step", "password"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "alice"),
                ("password", "alice-password-1"),
            ],
        )
        .await;
    let html = res.text().await.unwrap();
    let f = form(&html, &codes[0]);
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = other.post(&action, &pairs).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.audit_count("acme", "mfa.recovery_code_used").await, 1);
}

#[tokio::test]
async fn racing_answers_with_one_code_sign_in_once() {
    let app = spawn_app().await;
    let (client, _ada) = app.acme_with_ada().await;
    next_step(&app);
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let (secret, _) = enroll(&app, &alice).await;
    app.clock.advance(30);
    // Two sign-ins, each with its own session, race with the same code of the step.
    let one = password_step(&app, &client, "alice", "alice-password-1").await;
    let two = password_step(&app, &client, "alice", "alice-password-1").await;
    let code = pyotp_code(&secret, now(&app));
    let (a, b) = tokio::join!(
        respond(&app, &client, "SOFTWARE_TOKEN_MFA", &one, &code),
        respond(&app, &client, "SOFTWARE_TOKEN_MFA", &two, &code),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401], "a code is accepted once in its step");
}

#[tokio::test]
async fn a_required_pool_enrolls_a_token_on_the_hosted_pages() {
    let app = spawn_app().await;
    let (_client_api, ada) = app.acme_with_ada().await;
    set_mfa(&app, &ada, "required").await;
    next_step(&app);
    let client = web_client(&app, "acme", &["authorization_code"]).await;
    let mut browser = Browser::new();
    let url = authorize_url(&app, "acme", &client, "");
    let action = url.split('?').next().unwrap().to_owned();
    let html = browser.get(&url).await.text().await.unwrap();
    let res = browser
        .post(
            &action,
            &[
                ("step", "password"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "alice"),
                ("password", "alice-password-1"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("Set up your authenticator app"), "{html}");
    let secret = hidden(&html, "secret");
    assert_eq!(secret.len(), 32, "a 160-bit key in base32");
    assert!(
        hidden(&html, "uri").starts_with(&format!("otpauth://totp/acme:alice?secret={secret}&")),
        "{html}"
    );
    assert!(
        !browser
            .cookies
            .iter()
            .any(|(k, _)| k == "gatehouse_sso_acme"),
        "not signed in before the first code"
    );
    let form = |html: &str, code: &str| {
        vec![
            ("step".to_owned(), "mfa_setup".to_owned()),
            ("request".to_owned(), hidden(html, "request")),
            ("challenge".to_owned(), hidden(html, "challenge")),
            ("secret".to_owned(), hidden(html, "secret")),
            ("uri".to_owned(), hidden(html, "uri")),
            ("csrf".to_owned(), hidden(html, "csrf")),
            ("code".to_owned(), code.to_owned()),
        ]
    };
    // A wrong code shows the page again, with the same key; it counts as a failure.
    let res = post_form(&mut browser, &action, form(&html, "000000")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let again = res.text().await.unwrap();
    assert!(again.contains("That code is not valid"), "{again}");
    assert_eq!(hidden(&again, "secret"), secret);
    // The first valid code enrolls, signs in, and shows the recovery codes once.
    let code = pyotp_code(&secret, now(&app));
    let res = post_form(&mut browser, &action, form(&again, &code)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let codes_html = res.text().await.unwrap();
    assert!(
        codes_html.contains("Save your recovery codes"),
        "{codes_html}"
    );
    assert_eq!(codes_html.matches("<li><code>").count(), 10);
    assert!(
        browser
            .cookies
            .iter()
            .any(|(k, _)| k == "gatehouse_sso_acme")
    );
    let recovery = codes_html
        .split("<li><code>")
        .nth(1)
        .and_then(|s| s.split("</code>").next())
        .unwrap()
        .to_owned();
    // The same challenge again, even with the next step's code: used up.
    let res = post_form(
        &mut browser,
        &action,
        form(&again, &pyotp_code(&secret, now(&app) + 30)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Continue: back to the client with a code.
    let res = browser
        .post(
            &action,
            &[
                ("step", "continue"),
                ("request", &hidden(&codes_html, "request")),
                ("csrf", &hidden(&codes_html, "csrf")),
            ],
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    let location = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(query_of(&location).contains_key("code"), "{location}");
    assert_eq!(app.audit_count("acme", "user.mfa_enrolled").await, 1);

    // "Continue" without a session is refused.
    let mut stranger = Browser::new();
    let html = stranger.get(&url).await.text().await.unwrap();
    let res = stranger
        .post(
            &action,
            &[
                ("step", "continue"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // From now on the token is asked for, and a recovery code works once.
    let mut other = Browser::new();
    let html = other.get(&url).await.text().await.unwrap();
    let res = other
        .post(
            &action,
            &[
                ("step", "password"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "alice"),
                ("password", "alice-password-1"),
            ],
        )
        .await;
    let html = res.text().await.unwrap();
    assert!(html.contains("Enter your code"), "{html}");
    let res = other
        .post(
            &action,
            &[
                ("step", "mfa_code"),
                ("request", &hidden(&html, "request")),
                ("challenge", &hidden(&html, "challenge")),
                ("csrf", &hidden(&html, "csrf")),
                ("code", &recovery),
            ],
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
}

async fn post_form(
    browser: &mut Browser,
    action: &str,
    f: Vec<(String, String)>,
) -> reqwest::Response {
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    browser.post(action, &pairs).await
}
