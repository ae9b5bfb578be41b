//! Takeover attempts (security review 1: F1, F2, F3(b)). Each refusal is checked by its status
//! and by re-reading the target: nothing may have changed.
//!
//! - Dominance (SPEC §9): acting on an existing user needs every permission it holds, for
//!   removals as for additions; a partial administrator cannot take over or demote a fuller
//!   one, in a client pool or in the staff pool, as a user or as an app client.
//! - Reads that decide a write happen inside the transaction that writes: a compromised
//!   account looping `PUT /users/me` cannot undo an administrator's disable or reset.
//! - A reset code sent soon after an e-mail change is announced to the previous address.
//! - Disabling or deleting a user ends the impersonations it started, in every pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{ClientCreds, TestApp, assert_api_error, spawn_app};

const USERS: &str = "/api/user-management/users";
/// The review's `helpdesk`: may edit and reset users, not hold what an administrator holds.
const HELPDESK: &[&str] = &["user:UpdateUser", "user:ResetUserPassword", "user:GetUser"];

async fn call(
    app: &TestApp,
    pool: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app
        .http
        .request(method, app.pool_url(pool, path))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

/// A user as the admin API shows it, read with `token`.
async fn user(app: &TestApp, pool: &str, token: &str, username: &str) -> Value {
    let res = call(
        app,
        pool,
        Method::GET,
        &format!("{USERS}/{username}"),
        token,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn action(
    app: &TestApp,
    pool: &str,
    token: &str,
    username: &str,
    name: &str,
) -> reqwest::Response {
    call(
        app,
        pool,
        Method::POST,
        &format!("{USERS}/{username}/actions/{name}"),
        token,
        None,
    )
    .await
}

async fn put_user(
    app: &TestApp,
    pool: &str,
    token: &str,
    username: &str,
    attributes: Value,
) -> reqwest::Response {
    call(
        app,
        pool,
        Method::PUT,
        &format!("{USERS}/{username}"),
        token,
        Some(json!({ "attributes": attributes })),
    )
    .await
}

/// The status of a password sign-in.
async fn sign_in_status(
    app: &TestApp,
    pool: &str,
    client: &ClientCreds,
    username: &str,
    password: &str,
) -> u16 {
    app.http
        .post(app.pool_url(pool, "/api/auth/initiate"))
        .json(&json!({"flow": "USER_PASSWORD", "client_id": client.id,
            "client_secret": client.secret, "username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Messages in the outbox sent to this address.
fn mail_to(app: &TestApp, email: &str) -> Vec<Value> {
    app.outbox()
        .into_iter()
        .filter(|m| m["to_email"] == email)
        .collect()
}

/// The attempts of the review's F1 by `attacker` against `target` (an administrator) in
/// `pool`: rewrite its e-mail and mark it verified, strip its roles, reset its password. Each
/// must be refused with 403, and the target must be as it was, still signing in with its
/// password, with no reset code sent anywhere.
#[allow(clippy::too_many_arguments)]
async fn takeover_is_refused(
    app: &TestApp,
    pool: &str,
    reader: &str,
    attacker: &str,
    target: &str,
    client: &ClientCreds,
    password: &str,
) {
    let before = user(app, pool, reader, target).await;
    let res = put_user(
        app,
        pool,
        attacker,
        target,
        json!({"email": "attacker@evil.test", "email_verified": true, "name": "Owned",
            "roles": before["attributes"]["roles"]}),
    )
    .await;
    let body = assert_api_error(res, 403).await;
    assert!(
        body.to_string()
            .contains("the user holds permissions the caller does not"),
        "{body}"
    );
    let res = put_user(
        app,
        pool,
        attacker,
        target,
        json!({"email": before["attributes"]["email"], "name": "Demoted", "roles": []}),
    )
    .await;
    assert_api_error(res, 403).await;
    assert_api_error(
        action(app, pool, attacker, target, "reset-password").await,
        403,
    )
    .await;

    assert_eq!(user(app, pool, reader, target).await, before);
    assert_eq!(
        sign_in_status(app, pool, client, target, password).await,
        200
    );
    assert!(mail_to(app, "attacker@evil.test").is_empty());
    assert!(
        !app.outbox()
            .iter()
            .any(|m| m["kind"] == "password_reset" && m["username"] == target),
        "no reset code was sent"
    );
}

/// `acme` with an administrator `alice`, the review's `helpdesk`, a plain user `carol`, and a
/// sign-in client; returns alice's and helpdesk's tokens.
async fn acme() -> (TestApp, ClientCreds, String, String) {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "alice", &["admin"], "alice-password-1")
        .await;
    app.create_user("acme", "helpdesk", HELPDESK, "helpdesk-password-1")
        .await;
    app.create_user("acme", "carol", &[], "carol-password-1")
        .await;
    let client = app.create_client("acme", &[]).await;
    let admin = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let helpdesk = app
        .sign_in("acme", &client, "helpdesk", "helpdesk-password-1")
        .await;
    (app, client, admin, helpdesk)
}

#[tokio::test]
async fn helpdesk_cannot_take_over_an_administrator_in_a_client_pool() {
    let (app, client, admin, helpdesk) = acme().await;
    takeover_is_refused(
        &app,
        "acme",
        &admin,
        &helpdesk,
        "alice",
        &client,
        "alice-password-1",
    )
    .await;

    // An app client holding the same scopes meets the same rule.
    let scoped = app.create_client("acme", HELPDESK).await;
    let scoped = app.client_token("acme", &scoped).await;
    takeover_is_refused(
        &app,
        "acme",
        &admin,
        &scoped,
        "alice",
        &client,
        "alice-password-1",
    )
    .await;
    assert_eq!(app.audit_count("acme", "user.updated").await, 0);
    assert_eq!(app.audit_count("acme", "user.password_reset").await, 0);
}

#[tokio::test]
async fn helpdesk_cannot_take_over_the_staff_administrator() {
    let app = spawn_app().await;
    app.create_user("staff", "root", &["admin"], "staff-admin-password-1")
        .await;
    app.create_user("staff", "sh", HELPDESK, "staff-helpdesk-password-1")
        .await;
    let staff_client = app.create_client("staff", &[]).await;
    let root = app
        .sign_in("staff", &staff_client, "root", "staff-admin-password-1")
        .await;
    let sh = app
        .sign_in("staff", &staff_client, "sh", "staff-helpdesk-password-1")
        .await;

    // In the staff pool, against the staff administrator.
    takeover_is_refused(
        &app,
        "staff",
        &root,
        &sh,
        "root",
        &staff_client,
        "staff-admin-password-1",
    )
    .await;
    assert_eq!(app.audit_count("staff", "user.updated").await, 0);

    // With the staff token in a client pool, against that pool's administrator.
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    app.create_user("acme", "carol", &[], "carol-password-1")
        .await;
    let client = app.create_client("acme", &[]).await;
    let ada = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    takeover_is_refused(&app, "acme", &ada, &sh, "ada", &client, "ada-password-123").await;
    // The same staff user still serves the pool's plain users.
    let res = put_user(
        &app,
        "acme",
        &sh,
        "carol",
        json!({"email": "carol@example.com", "name": "Carol (staff edit)", "roles": []}),
    )
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        user(&app, "acme", &ada, "carol").await["attributes"]["name"],
        "Carol (staff edit)"
    );
}

#[tokio::test]
async fn removing_roles_needs_dominance_too() {
    let (app, client, admin, _) = acme().await;
    app.create_user("acme", "ed", &["user:UpdateUser"], "ed-password-123")
        .await;
    app.create_user("acme", "dora", &["user:DeleteUser"], "dora-password-1")
        .await;
    app.create_user("acme", "gina", &[], "gina-password-1")
        .await;
    let ed = app.sign_in("acme", &client, "ed", "ed-password-123").await;
    // Gina is an administrator through a group: dominance counts the groups' roles.
    let res = call(
        &app,
        "acme",
        Method::POST,
        "/api/user-management/groups",
        &admin,
        Some(json!({"name": "admins", "description": "Everything", "roles": ["admin"]})),
    )
    .await;
    assert_eq!(res.status(), 201);
    let res = call(
        &app,
        "acme",
        Method::PUT,
        &format!("{USERS}/gina/groups"),
        &admin,
        Some(json!({"groups": ["admins"]})),
    )
    .await;
    assert_eq!(res.status(), 204);

    for (target, email) in [
        ("alice", "alice@example.com"),
        ("dora", "dora@example.com"),
        ("gina", "gina@example.com"),
    ] {
        let before = user(&app, "acme", &admin, target).await;
        let res = put_user(
            &app,
            "acme",
            &ed,
            target,
            json!({"email": email, "name": target, "roles": []}),
        )
        .await;
        assert_api_error(res, 403).await;
        assert_eq!(user(&app, "acme", &admin, target).await, before);
    }
    // Alice is still an administrator.
    let res = call(&app, "acme", Method::GET, USERS, &admin, None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        user(&app, "acme", &admin, "alice").await["attributes"]["roles"],
        json!(["admin"])
    );
    assert_eq!(app.audit_count("acme", "user.updated").await, 0);

    // Ed may still edit a user holding nothing beyond self-service.
    let res = put_user(
        &app,
        "acme",
        &ed,
        "carol",
        json!({"email": "carol@example.com", "name": "Carol", "roles": []}),
    )
    .await;
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn helpdesk_serves_plain_users_and_administrators_act_on_helpdesk() {
    let (app, client, admin, helpdesk) = acme().await;

    // Helpdesk dominates carol: it edits her (a verified flag included) and resets her.
    let res = put_user(
        &app,
        "acme",
        &helpdesk,
        "carol",
        json!({"email": "carol@new.example", "email_verified": true, "name": "Carol C.",
            "roles": []}),
    )
    .await;
    assert_eq!(res.status(), 204);
    let carol = user(&app, "acme", &helpdesk, "carol").await;
    assert_eq!(carol["attributes"]["email"], "carol@new.example");
    assert_eq!(carol["attributes"]["email_verified"], true);
    assert_eq!(carol["attributes"]["name"], "Carol C.");
    assert_eq!(
        action(&app, "acme", &helpdesk, "carol", "reset-password")
            .await
            .status(),
        204
    );
    assert_eq!(
        user(&app, "acme", &helpdesk, "carol").await["status"],
        "RESET_REQUIRED"
    );
    assert_eq!(
        sign_in_status(&app, "acme", &client, "carol", "carol-password-1").await,
        401
    );
    let sent = mail_to(&app, "carol@new.example");
    assert_eq!(sent.last().unwrap()["kind"], "password_reset");

    // An app client with the same scopes does as much.
    let scoped = app.create_client("acme", HELPDESK).await;
    let scoped = app.client_token("acme", &scoped).await;
    let res = put_user(
        &app,
        "acme",
        &scoped,
        "carol",
        json!({"email": "carol@new.example", "name": "Carol by client", "roles": []}),
    )
    .await;
    assert_eq!(res.status(), 204);

    // The administrator dominates helpdesk: every action on it goes through.
    let res = put_user(
        &app,
        "acme",
        &admin,
        "helpdesk",
        json!({"email": "helpdesk@example.com", "name": "helpdesk",
            "roles": ["user:UpdateUser", "user:GetUser"]}),
    )
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        user(&app, "acme", &admin, "helpdesk").await["attributes"]["roles"],
        json!(["user:UpdateUser", "user:GetUser"])
    );
    for name in [
        "sign-out",
        "disable-mfa",
        "reset-password",
        "disable",
        "enable",
    ] {
        assert_eq!(
            action(&app, "acme", &admin, "helpdesk", name)
                .await
                .status(),
            204,
            "{name}"
        );
    }
    app.create_oidc_provider("acme", "Google", "https://accounts.google.com")
        .await;
    let res = call(
        &app,
        "acme",
        Method::POST,
        &format!("{USERS}/helpdesk/actions/link-to-provider"),
        &admin,
        Some(json!({"provider_name": "Google", "provider_user_id": "42"})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let res = call(
        &app,
        "acme",
        Method::DELETE,
        &format!("{USERS}/helpdesk"),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 204);
}

#[derive(Clone, Copy, Debug)]
enum AdminAction {
    Disable,
    Reset,
}

/// The F2 race: the victim's 16 looping `PUT /users/me` against one administrator action, 4
/// rounds. Every round must end in the administrator's state, with the old password refused.
async fn self_service_loop_cannot_undo(kind: AdminAction) {
    const TASKS: usize = 16;
    const LOOPS: usize = 300;
    const BEFORE_ACTION: usize = 2 * TASKS;
    let (app, client, admin, _) = acme().await;
    for round in 0..4 {
        let victim = format!("victim{round}");
        let password = "victim-password-1";
        app.create_user("acme", &victim, &[], password).await;
        let token = app.sign_in("acme", &client, &victim, password).await;
        let email = format!("{victim}@example.com");
        let url = app.pool_url("acme", &format!("{USERS}/me"));
        let done = Arc::new(AtomicUsize::new(0));
        let loopers: Vec<_> = (0..TASKS)
            .map(|t| {
                let (http, url, token, email) =
                    (app.http.clone(), url.clone(), token.clone(), email.clone());
                let done = done.clone();
                tokio::spawn(async move {
                    let mut statuses = Vec::new();
                    for i in 0..LOOPS {
                        let res = http
                            .put(&url)
                            .bearer_auth(&token)
                            .json(&json!({"attributes": {"email": email,
                                "name": format!("Victim {t}.{i}"), "roles": []}}))
                            .send()
                            .await
                            .unwrap();
                        let status = res.status().as_u16();
                        statuses.push(status);
                        if status == 204 {
                            done.fetch_add(1, Ordering::SeqCst);
                        } else {
                            break;
                        }
                    }
                    statuses
                })
            })
            .collect();

        // The administrator acts while the loops run.
        let deadline = Instant::now() + Duration::from_secs(30);
        while done.load(Ordering::SeqCst) < BEFORE_ACTION {
            assert!(Instant::now() < deadline, "the loops did not get going");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let name = match kind {
            AdminAction::Disable => "disable",
            AdminAction::Reset => "reset-password",
        };
        assert_eq!(
            action(&app, "acme", &admin, &victim, name).await.status(),
            204
        );

        for looper in loopers {
            let statuses = looper.await.unwrap();
            // Each loop was cut off by the action: only successes, then one 401.
            let (last, before) = statuses.split_last().unwrap();
            assert_eq!(*last, 401, "round {round}: {statuses:?}");
            assert!(before.iter().all(|s| *s == 204), "{statuses:?}");
        }
        let got = user(&app, "acme", &admin, &victim).await;
        match kind {
            AdminAction::Disable => assert_eq!(got["enabled"], false, "round {round}: {got}"),
            AdminAction::Reset => {
                assert_eq!(got["status"], "RESET_REQUIRED", "round {round}: {got}");
            }
        }
        assert_eq!(
            sign_in_status(&app, "acme", &client, &victim, password).await,
            401,
            "round {round}: the old password still signs in"
        );
        assert_eq!(
            app.introspect("acme", &client, &token).await,
            json!({"active": false})
        );
        // The stolen token writes nothing more.
        let res = app
            .http
            .put(&url)
            .bearer_auth(&token)
            .json(&json!({"attributes": {"email": email, "name": "After", "roles": []}}))
            .send()
            .await
            .unwrap();
        assert_api_error(res, 401).await;
        assert_eq!(user(&app, "acme", &admin, &victim).await, got);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_looping_self_service_update_cannot_undo_a_disable() {
    self_service_loop_cannot_undo(AdminAction::Disable).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_looping_self_service_update_cannot_undo_a_password_reset() {
    self_service_loop_cannot_undo(AdminAction::Reset).await;
}

#[tokio::test]
async fn a_reset_soon_after_an_e_mail_change_is_announced_to_the_previous_address() {
    let (app, client, admin, _) = acme().await;
    let res = put_user(
        &app,
        "acme",
        &admin,
        "carol",
        json!({"email": "carol@new.example", "name": "carol", "roles": []}),
    )
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        action(&app, "acme", &admin, "carol", "reset-password")
            .await
            .status(),
        204
    );
    let outbox = app.outbox();
    let notice = outbox
        .iter()
        .position(|m| m["to_email"] == "carol@example.com")
        .expect("the previous address is told");
    let code = outbox
        .iter()
        .position(|m| m["to_email"] == "carol@new.example")
        .expect("the code goes to the current address");
    assert!(notice < code, "the notice goes out first");
    let body = outbox[notice]["body"].as_str().unwrap();
    assert!(
        !body.chars().any(|c| c.is_ascii_digit()),
        "no code in the notice: {body}"
    );
    assert_eq!(outbox[notice]["kind"], "password_reset");
    assert!(
        outbox[code]["body"]
            .as_str()
            .unwrap()
            .contains("reset code is")
    );

    // 25 hours later the change is old news: only the current address hears of a reset.
    app.clock.advance(25 * 3600);
    let admin = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let to_previous = mail_to(&app, "carol@example.com").len();
    let to_current = mail_to(&app, "carol@new.example").len();
    assert_eq!(
        action(&app, "acme", &admin, "carol", "reset-password")
            .await
            .status(),
        204
    );
    assert_eq!(mail_to(&app, "carol@example.com").len(), to_previous);
    assert_eq!(mail_to(&app, "carol@new.example").len(), to_current + 1);

    // A self-service change counts too.
    app.create_user("acme", "dave", &[], "dave-password-1")
        .await;
    let dave = app
        .sign_in("acme", &client, "dave", "dave-password-1")
        .await;
    let res = call(
        &app,
        "acme",
        Method::PUT,
        &format!("{USERS}/me"),
        &dave,
        Some(json!({"attributes": {"email": "dave@new.example", "name": "dave", "roles": []}})),
    )
    .await;
    assert_eq!(res.status(), 204);
    assert!(mail_to(&app, "dave@example.com").is_empty());
    assert_eq!(
        action(&app, "acme", &admin, "dave", "reset-password")
            .await
            .status(),
        204
    );
    let notices = mail_to(&app, "dave@example.com");
    assert_eq!(notices.len(), 1);
    assert!(
        !notices[0]["body"]
            .as_str()
            .unwrap()
            .chars()
            .any(|c| c.is_ascii_digit())
    );
}

/// `staff` with an administrator `root` and a sign-in client, and `acme` with an
/// administrator `ada`, a plain user `alice` and a client; returns root's and ada's tokens.
async fn staff_and_acme() -> (TestApp, ClientCreds, String, ClientCreds, String) {
    let app = spawn_app().await;
    app.create_user("staff", "root", &["admin"], "staff-admin-password-1")
        .await;
    let staff_client = app.create_client("staff", &[]).await;
    let root = app
        .sign_in("staff", &staff_client, "root", "staff-admin-password-1")
        .await;
    let (client, ada) = app.acme_with_ada().await;
    (app, staff_client, root, client, ada)
}

/// The `impersonation.ended` events of acme, oldest first.
async fn ended_in_acme(app: &TestApp, ada: &str) -> Vec<Value> {
    let res = call(
        app,
        "acme",
        Method::GET,
        "/api/audit/events?action=impersonation.ended",
        ada,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["events"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn disabling_or_deleting_a_staff_user_ends_its_impersonations_in_client_pools() {
    let (app, staff_client, root, client, ada) = staff_and_acme().await;
    for (who, how) in [("sue", "disable"), ("sam", "delete")] {
        let password = format!("{who}-staff-password-1");
        app.create_user("staff", who, &["support"], &password).await;
        let staff_token = app.sign_in("staff", &staff_client, who, &password).await;
        let as_alice = app.impersonate("acme", &staff_token, "alice").await;
        // A control: the pool's own administrator's impersonation is not the staff user's.
        let by_ada = app.impersonate("acme", &ada, "alice").await;
        assert_eq!(app.userinfo_status("acme", &as_alice).await, 200);
        assert_eq!(
            app.introspect("acme", &client, &as_alice).await["active"],
            true
        );

        let res = match how {
            "disable" => action(&app, "staff", &root, who, "disable").await,
            _ => {
                call(
                    &app,
                    "staff",
                    Method::DELETE,
                    &format!("{USERS}/{who}"),
                    &root,
                    None,
                )
                .await
            }
        };
        assert_eq!(res.status(), 204);
        assert_eq!(
            app.introspect("acme", &client, &as_alice).await,
            json!({"active": false}),
            "{how}"
        );
        assert_eq!(app.userinfo_status("acme", &as_alice).await, 401);
        assert_eq!(app.userinfo_status("acme", &by_ada).await, 200);
        // The end is recorded in the pool where the impersonation ran.
        let ended = ended_in_acme(&app, &ada).await;
        let event = ended.last().unwrap();
        assert_eq!(event["subject"], "alice", "{event}");
        assert_eq!(event["details"]["impersonator"], who, "{event}");
        assert_eq!(
            event["details"]["via"],
            format!("impersonator {how}"),
            "{event}"
        );
    }
    assert_eq!(app.audit_count("acme", "impersonation.ended").await, 2);
    assert_eq!(app.audit_count("staff", "impersonation.ended").await, 0);

    // Enabling sue again does not revive what ended.
    assert_eq!(
        action(&app, "staff", &root, "sue", "enable").await.status(),
        204
    );
    assert_eq!(app.audit_count("acme", "impersonation.ended").await, 2);
}

#[tokio::test]
async fn disabling_a_client_pool_user_ends_its_impersonations() {
    let (app, _, _, client, ada) = staff_and_acme().await;
    app.create_user("acme", "bob", &["support"], "bob-password-123")
        .await;
    let bob = app
        .sign_in("acme", &client, "bob", "bob-password-123")
        .await;
    let as_alice = app.impersonate("acme", &bob, "alice").await;
    let by_ada = app.impersonate("acme", &ada, "alice").await;
    assert_eq!(app.userinfo_status("acme", &as_alice).await, 200);

    assert_eq!(
        action(&app, "acme", &ada, "bob", "disable").await.status(),
        204
    );
    assert_eq!(
        app.introspect("acme", &client, &as_alice).await,
        json!({"active": false})
    );
    assert_eq!(app.userinfo_status("acme", &as_alice).await, 401);
    assert_eq!(app.userinfo_status("acme", &bob).await, 401);
    assert_eq!(app.userinfo_status("acme", &by_ada).await, 200);
    let ended = ended_in_acme(&app, &ada).await;
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["details"]["impersonator"], "bob");
    assert_eq!(ended[0]["details"]["via"], "impersonator disable");
}
