//! The admin API over HTTP: users, groups, app clients, settings, sessions, sign-out and the
//! audit log, with the reference's shapes and status codes, and the rules that keep callers
//! from handing out power they do not hold or locking themselves out.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{ClientCreds, TestApp, assert_api_error, spawn_app};

const USERS: &str = "/api/user-management/users";
const GROUPS: &str = "/api/user-management/groups";
const CLIENTS: &str = "/api/user-management/app-clients";

/// A pool `acme` with an administrator `ada`, a user `alice`, and a sign-in client; returns
/// the administrator's token too.
async fn acme() -> (TestApp, ClientCreds, String) {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    app.create_user("acme", "alice", &[], "alice-password-1")
        .await;
    let client = app.create_client("acme", &[]).await;
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    (app, client, admin)
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app
        .http
        .request(method, app.pool_url("acme", path))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn json_of(res: reqwest::Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let body = res.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn user_body(username: &str, roles: &[&str]) -> Value {
    json!({"username": username, "attributes": {
        "email": format!("{username}@acme.example"), "name": username, "roles": roles}})
}

/// A `next` link points at the public URL; the test server listens elsewhere.
fn follow(app: &TestApp, next: &str) -> String {
    assert!(next.starts_with(&app.public_url), "{next}");
    next.replacen(&app.public_url, &app.addr, 1)
}

#[tokio::test]
async fn users_are_created_read_updated_paged_and_deleted() {
    let (app, _, admin) = acme().await;

    let res = call(
        &app,
        Method::POST,
        USERS,
        &admin,
        Some(user_body("bob", &["claims"])),
    )
    .await;
    assert_eq!(
        res.headers()["location"],
        "http://gatehouse.test/pools/acme/api/user-management/users/bob"
    );
    let created = json_of(res, 201).await;
    assert_eq!(
        created,
        json!({"user": {"username": "bob", "enabled": true, "status": "FORCE_CHANGE_PASSWORD",
            "attributes": {"email": "bob@acme.example", "name": "bob", "roles": ["claims"],
                "updated_at": created["user"]["attributes"]["updated_at"]}}})
    );
    let invitation = app.outbox().pop().unwrap();
    assert_eq!(invitation["kind"], "invitation");
    assert_eq!(invitation["to_email"], "bob@acme.example");

    // The same username again is a conflict; an unknown user is not found.
    let res = call(
        &app,
        Method::POST,
        USERS,
        &admin,
        Some(user_body("bob", &[])),
    )
    .await;
    assert_api_error(res, 409).await;
    let res = call(&app, Method::GET, &format!("{USERS}/nobody"), &admin, None).await;
    assert_api_error(res, 404).await;
    // `me` is not a username anyone can take.
    let res = call(
        &app,
        Method::POST,
        USERS,
        &admin,
        Some(user_body("me", &[])),
    )
    .await;
    assert_api_error(res, 400).await;

    // PUT replaces the attributes; contact_id appears when set.
    let res = call(
        &app,
        Method::POST,
        USERS,
        &admin,
        Some(
            json!({"username": "carl", "contact_id": "C-42", "attributes": {
            "email": "carl@acme.example", "name": "Carl", "roles": []}}),
        ),
    )
    .await;
    assert_eq!(json_of(res, 201).await["user"]["contact_id"], "C-42");
    let res = call(
        &app,
        Method::PUT,
        &format!("{USERS}/bob"),
        &admin,
        Some(
            json!({"attributes": {"email": "bob@acme.example", "name": "Robert",
            "roles": [], "locale": "fr-FR", "email_verified": true}}),
        ),
    )
    .await;
    assert_eq!(res.status(), 204);
    let bob = json_of(
        call(&app, Method::GET, &format!("{USERS}/bob"), &admin, None).await,
        200,
    )
    .await;
    assert_eq!(bob["attributes"]["name"], "Robert");
    assert_eq!(bob["attributes"]["locale"], "fr-FR");
    assert_eq!(bob["attributes"]["roles"], json!([]));
    assert_eq!(bob["attributes"]["email_verified"], true);
    let res = call(
        &app,
        Method::PUT,
        &format!("{USERS}/nobody"),
        &admin,
        Some(json!({"attributes": {"email": "n@acme.example", "name": "N", "roles": []}})),
    )
    .await;
    assert_api_error(res, 404).await;

    // Pages of two: ada, alice | bob, carl | (end).
    let first = json_of(
        call(&app, Method::GET, &format!("{USERS}?limit=2"), &admin, None).await,
        200,
    )
    .await;
    let names = |page: &Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&first), ["ada", "alice"]);
    assert_eq!(
        first["next"],
        "http://gatehouse.test/pools/acme/api/user-management/users?cursor=alice&limit=2"
    );
    let res = app
        .http
        .get(follow(&app, first["next"].as_str().unwrap()))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let second = json_of(res, 200).await;
    assert_eq!(names(&second), ["bob", "carl"]);
    assert_eq!(second["next"], "");
    let all = json_of(call(&app, Method::GET, USERS, &admin, None).await, 200).await;
    assert_eq!(names(&all).len(), 4);
    assert_eq!(all["next"], "");
    for bad in ["?limit=0", "?limit=1001", "?limit=ten"] {
        let res = call(&app, Method::GET, &format!("{USERS}{bad}"), &admin, None).await;
        assert_api_error(res, 400).await;
    }

    let res = call(&app, Method::DELETE, &format!("{USERS}/bob"), &admin, None).await;
    assert_eq!(res.status(), 204);
    let res = call(&app, Method::DELETE, &format!("{USERS}/bob"), &admin, None).await;
    assert_api_error(res, 404).await;
    assert_eq!(app.audit_count("acme", "user.deleted").await, 1);
}

#[tokio::test]
async fn callers_cannot_grant_what_they_do_not_hold() {
    let (app, client, admin) = acme().await;
    app.create_user(
        "acme",
        "clerk",
        &[
            "user:CreateUser",
            "user:UpdateUser",
            "user:UpdateUserGroupMembership",
            "app-client:Create",
        ],
        "clerk-password-1",
    )
    .await;
    let clerk = app
        .sign_in("acme", &client, "clerk", "clerk-password-1")
        .await;

    // Roles that carry no Gatehouse permission, or only permissions the clerk holds, are fine.
    let res = call(
        &app,
        Method::POST,
        USERS,
        &clerk,
        Some(user_body("bob", &["claims-adjuster"])),
    )
    .await;
    assert_eq!(res.status(), 201);
    let res = call(
        &app,
        Method::POST,
        USERS,
        &clerk,
        Some(user_body("cy", &["user:CreateUser"])),
    )
    .await;
    assert_eq!(res.status(), 201);
    for roles in [&["admin"][..], &["support"], &["user:DeleteUser"]] {
        let res = call(
            &app,
            Method::POST,
            USERS,
            &clerk,
            Some(user_body("dee", roles)),
        )
        .await;
        assert_api_error(res, 403).await;
    }
    let res = call(
        &app,
        Method::PUT,
        &format!("{USERS}/alice"),
        &clerk,
        Some(json!({"attributes": {"email": "alice@example.com", "name": "alice", "roles": ["admin"]}})),
    )
    .await;
    assert_api_error(res, 403).await;

    // Joining a group counts its roles.
    let res = call(
        &app,
        Method::POST,
        GROUPS,
        &admin,
        Some(json!({"name": "admins", "description": "Everything", "roles": ["admin"]})),
    )
    .await;
    assert_eq!(res.status(), 201);
    let res = call(
        &app,
        Method::POST,
        GROUPS,
        &admin,
        Some(json!({"name": "adjusters", "description": "Claims"})),
    )
    .await;
    assert_eq!(res.status(), 201);
    let membership = format!("{USERS}/alice/groups");
    let res = call(
        &app,
        Method::PUT,
        &membership,
        &clerk,
        Some(json!({"groups": ["admins"]})),
    )
    .await;
    assert_api_error(res, 403).await;
    let res = call(
        &app,
        Method::PUT,
        &membership,
        &clerk,
        Some(json!({"groups": ["adjusters"]})),
    )
    .await;
    assert_eq!(res.status(), 204);

    // A client cannot be given a permission scope the caller lacks.
    let res = app
        .http
        .post(app.pool_url("acme", CLIENTS))
        .bearer_auth(&clerk)
        .json(&json!({"data": {"type": "app-client", "attributes": {
            "name": "escalator", "scopes": ["user:DeleteUser"]}}}))
        .send()
        .await
        .unwrap();
    assert_api_error(res, 403).await;

    // Nothing refused was written.
    let alice = json_of(
        call(&app, Method::GET, &format!("{USERS}/alice"), &admin, None).await,
        200,
    )
    .await;
    assert_eq!(alice["attributes"]["roles"], json!([]));
    let res = call(&app, Method::GET, &format!("{USERS}/dee"), &admin, None).await;
    assert_api_error(res, 404).await;
}

#[tokio::test]
async fn actions_change_status_and_revoke_tokens() {
    let (app, client, admin) = acme().await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let action = |name: &str| format!("{USERS}/alice/actions/{name}");

    // An administrator cannot delete or disable itself.
    let res = call(&app, Method::DELETE, &format!("{USERS}/ada"), &admin, None).await;
    assert_api_error(res, 409).await;
    let res = call(
        &app,
        Method::POST,
        &format!("{USERS}/ada/actions/disable"),
        &admin,
        None,
    )
    .await;
    assert_api_error(res, 409).await;

    // Disable, then enable: old tokens stay dead, new sign-ins work.
    assert_eq!(
        call(&app, Method::POST, &action("disable"), &admin, None)
            .await
            .status(),
        204
    );
    let got = json_of(
        call(&app, Method::GET, &format!("{USERS}/alice"), &admin, None).await,
        200,
    )
    .await;
    assert_eq!(got["enabled"], false);
    assert_eq!(
        app.introspect("acme", &client, &alice).await["active"],
        false
    );
    assert_eq!(
        call(&app, Method::POST, &action("enable"), &admin, None)
            .await
            .status(),
        204
    );
    assert_eq!(
        app.introspect("acme", &client, &alice).await["active"],
        false
    );
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    assert_eq!(
        app.introspect("acme", &client, &alice).await["active"],
        true
    );

    assert_eq!(
        call(&app, Method::POST, &action("disable-mfa"), &admin, None)
            .await
            .status(),
        204
    );
    assert_eq!(app.audit_count("acme", "user.mfa_disabled").await, 1);

    // Reset: the password is gone, tokens are revoked, a code is sent.
    assert_eq!(
        call(&app, Method::POST, &action("reset-password"), &admin, None)
            .await
            .status(),
        204
    );
    let got = json_of(
        call(&app, Method::GET, &format!("{USERS}/alice"), &admin, None).await,
        200,
    )
    .await;
    assert_eq!(got["status"], "RESET_REQUIRED");
    assert_eq!(
        app.introspect("acme", &client, &alice).await["active"],
        false
    );
    let message = app.outbox().pop().unwrap();
    assert_eq!(message["kind"], "password_reset");
    assert_eq!(message["to_email"], "alice@example.com");
    let res = app
        .http
        .post(app.pool_url("acme", "/api/auth/initiate"))
        .json(&json!({"flow": "USER_PASSWORD", "client_id": client.id,
            "client_secret": client.secret, "username": "alice", "password": "alice-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Resetting again is allowed from RESET_REQUIRED.
    assert_eq!(
        call(&app, Method::POST, &action("reset-password"), &admin, None)
            .await
            .status(),
        204
    );
    let res = call(
        &app,
        Method::POST,
        &format!("{USERS}/nobody/actions/reset-password"),
        &admin,
        None,
    )
    .await;
    assert_api_error(res, 404).await;

    // Link to a provider identity, once.
    let link = json!({"provider_name": "Google", "provider_user_id": "1234567890"});
    let res = call(
        &app,
        Method::POST,
        &action("link-to-provider"),
        &admin,
        Some(link.clone()),
    )
    .await;
    assert_eq!(res.status(), 204);
    let res = call(
        &app,
        Method::POST,
        &format!("{USERS}/ada/actions/link-to-provider"),
        &admin,
        Some(link),
    )
    .await;
    assert_api_error(res, 409).await;
    let res = call(
        &app,
        Method::POST,
        &action("link-to-provider"),
        &admin,
        Some(json!({"provider_name": "Google"})),
    )
    .await;
    assert_api_error(res, 400).await;
}

#[tokio::test]
async fn sessions_are_listed_and_global_sign_out_ends_them() {
    let (app, client, admin) = acme().await;
    let first = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let second = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let sessions_path = format!("{USERS}/alice/sessions");
    let listed = json_of(
        call(&app, Method::GET, &sessions_path, &admin, None).await,
        200,
    )
    .await;
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0]["kind"], "sign_in");
    assert_eq!(sessions[0]["client_id"], client.id.as_str());

    // Alice may not list her sessions through the admin API, nor sign others out.
    let res = call(&app, Method::GET, &sessions_path, &first, None).await;
    assert_api_error(res, 403).await;
    let res = call(
        &app,
        Method::POST,
        &format!("{USERS}/ada/actions/sign-out"),
        &first,
        None,
    )
    .await;
    assert_api_error(res, 403).await;

    let res = call(
        &app,
        Method::POST,
        &format!("{USERS}/alice/actions/sign-out"),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 204);
    for token in [&first, &second] {
        assert_eq!(
            app.introspect("acme", &client, token).await,
            json!({"active": false})
        );
    }
    let listed = json_of(
        call(&app, Method::GET, &sessions_path, &admin, None).await,
        200,
    )
    .await;
    assert_eq!(listed["sessions"], json!([]));
    assert_eq!(app.audit_count("acme", "user.signed_out").await, 1);
    assert_eq!(app.audit_count("acme", "session.revoked").await, 2);
    // The administrator's own token is untouched.
    assert_eq!(
        call(&app, Method::GET, USERS, &admin, None).await.status(),
        200
    );
    let res = call(
        &app,
        Method::GET,
        &format!("{USERS}/nobody/sessions"),
        &admin,
        None,
    )
    .await;
    assert_api_error(res, 404).await;
}

#[tokio::test]
async fn users_manage_their_own_profile_but_not_their_roles() {
    let (app, client, _) = acme().await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let me = json_of(
        call(&app, Method::GET, &format!("{USERS}/me"), &alice, None).await,
        200,
    )
    .await;
    assert_eq!(me["username"], "alice");

    // A new address becomes unverified and gets a code; a claimed verified flag is ignored.
    let update = |email: &str| {
        json!({"attributes": {"email": email, "name": "Alice A.", "roles": [],
            "email_verified": true}})
    };
    let res = call(
        &app,
        Method::PUT,
        &format!("{USERS}/me"),
        &alice,
        Some(update("alice@new.example")),
    )
    .await;
    assert_eq!(res.status(), 204);
    let me = json_of(
        call(&app, Method::GET, &format!("{USERS}/me"), &alice, None).await,
        200,
    )
    .await;
    assert_eq!(me["attributes"]["name"], "Alice A.");
    assert_eq!(me["attributes"]["email"], "alice@new.example");
    assert_eq!(me["attributes"]["email_verified"], false);
    let sent = app.outbox().pop().unwrap();
    assert_eq!(sent["kind"], "attribute_verification");
    assert_eq!(sent["to_email"], "alice@new.example");
    let code = |m: &Value| -> String {
        m["body"]
            .as_str()
            .unwrap()
            .chars()
            .filter(char::is_ascii_digit)
            .collect()
    };
    let verify = format!("{USERS}/me/actions/verify-attribute");

    // A wrong guess uses the code up.
    let right = code(&sent);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let res = call(
        &app,
        Method::POST,
        &verify,
        &alice,
        Some(json!({"attribute": "email", "verification_code": wrong})),
    )
    .await;
    assert_api_error(res, 400).await;
    let res = call(
        &app,
        Method::POST,
        &verify,
        &alice,
        Some(json!({"attribute": "email", "verification_code": right})),
    )
    .await;
    assert_api_error(res, 400).await;

    let res = call(
        &app,
        Method::PUT,
        &format!("{USERS}/me"),
        &alice,
        Some(update("alice@newer.example")),
    )
    .await;
    assert_eq!(res.status(), 204);
    let right = code(&app.outbox().pop().unwrap());
    let res = call(
        &app,
        Method::POST,
        &verify,
        &alice,
        Some(json!({"attribute": "email", "verification_code": right})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let me = json_of(
        call(&app, Method::GET, &format!("{USERS}/me"), &alice, None).await,
        200,
    )
    .await;
    assert_eq!(me["attributes"]["email_verified"], true);
    let res = call(
        &app,
        Method::POST,
        &verify,
        &alice,
        Some(json!({"attribute": "shoe_size", "verification_code": "1"})),
    )
    .await;
    assert_api_error(res, 400).await;

    // Roles cannot change here, not even by dropping one.
    app.create_user("acme", "sam", &["support"], "sam-password-123")
        .await;
    let sam = app
        .sign_in("acme", &client, "sam", "sam-password-123")
        .await;
    let res = call(
        &app,
        Method::PUT,
        &format!("{USERS}/me"),
        &sam,
        Some(json!({"attributes": {"email": "sam@example.com", "name": "Sam", "roles": []}})),
    )
    .await;
    assert_api_error(res, 403).await;

    // An app client has no profile.
    let creds = app.create_client("acme", &["user:UpdateOwnUser"]).await;
    let client_token = app.client_token("acme", &creds).await;
    let res = call(
        &app,
        Method::GET,
        &format!("{USERS}/me"),
        &client_token,
        None,
    )
    .await;
    assert_api_error(res, 403).await;
    let res = call(
        &app,
        Method::PUT,
        &format!("{USERS}/me"),
        &client_token,
        Some(update("x@y.example")),
    )
    .await;
    assert_api_error(res, 403).await;
}

#[tokio::test]
async fn groups_and_memberships() {
    let (app, _, admin) = acme().await;
    for (name, description) in [
        ("adjusters", "Claims adjusters"),
        ("brokers", "Brokers"),
        ("clerks", "Clerks"),
    ] {
        let res = call(
            &app,
            Method::POST,
            GROUPS,
            &admin,
            Some(json!({"name": name, "description": description})),
        )
        .await;
        let group = json_of(res, 201).await;
        assert_eq!(
            group,
            json!({"name": name, "description": description, "roles": []})
        );
    }
    let res = call(
        &app,
        Method::POST,
        GROUPS,
        &admin,
        Some(json!({"name": "adjusters"})),
    )
    .await;
    assert_api_error(res, 409).await;
    let res = call(
        &app,
        Method::POST,
        GROUPS,
        &admin,
        Some(json!({"description": "no name"})),
    )
    .await;
    assert_api_error(res, 400).await;

    let page = json_of(
        call(
            &app,
            Method::GET,
            &format!("{GROUPS}?limit=2"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(page["groups"].as_array().unwrap().len(), 2);
    assert_eq!(
        page["next"],
        "http://gatehouse.test/pools/acme/api/user-management/groups?cursor=brokers&limit=2"
    );
    let res = app
        .http
        .get(follow(&app, page["next"].as_str().unwrap()))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let rest = json_of(res, 200).await;
    assert_eq!(rest["groups"][0]["name"], "clerks");
    assert_eq!(rest["next"], "");

    let res = call(
        &app,
        Method::PUT,
        &format!("{GROUPS}/brokers"),
        &admin,
        Some(json!({"description": "Independent brokers", "roles": ["support"]})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let brokers = json_of(
        call(
            &app,
            Method::GET,
            &format!("{GROUPS}/brokers"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        brokers,
        json!({"name": "brokers", "description": "Independent brokers", "roles": ["support"]})
    );
    let res = call(
        &app,
        Method::PUT,
        &format!("{GROUPS}/brokers"),
        &admin,
        Some(json!({})),
    )
    .await;
    assert_api_error(res, 400).await;
    let res = call(&app, Method::GET, &format!("{GROUPS}/nobody"), &admin, None).await;
    assert_api_error(res, 404).await;

    // Memberships, both ways.
    let res = call(
        &app,
        Method::PUT,
        &format!("{USERS}/alice/groups"),
        &admin,
        Some(json!({"groups": ["brokers", "adjusters"]})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let res = call(
        &app,
        Method::PUT,
        &format!("{USERS}/ada/groups"),
        &admin,
        Some(json!({"groups": ["brokers"]})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let of_alice = json_of(
        call(
            &app,
            Method::GET,
            &format!("{USERS}/alice/groups?limit=1"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(of_alice["groups"][0]["name"], "adjusters");
    assert_eq!(
        of_alice["next"],
        "http://gatehouse.test/pools/acme/api/user-management/users/alice/groups?cursor=adjusters&limit=1"
    );
    let members = json_of(
        call(
            &app,
            Method::GET,
            &format!("{GROUPS}/brokers/users"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    let names: Vec<&str> = members["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ada", "alice"]);
    assert_eq!(members["next"], "");
    let res = call(
        &app,
        Method::PUT,
        &format!("{USERS}/alice/groups"),
        &admin,
        Some(json!({"groups": ["nonexistent"]})),
    )
    .await;
    assert_api_error(res, 404).await;
    let res = call(
        &app,
        Method::GET,
        &format!("{GROUPS}/nobody/users"),
        &admin,
        None,
    )
    .await;
    assert_api_error(res, 404).await;

    // Deleting a group ends its memberships.
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("{GROUPS}/brokers"),
            &admin,
            None
        )
        .await
        .status(),
        204
    );
    let res = call(
        &app,
        Method::DELETE,
        &format!("{GROUPS}/brokers"),
        &admin,
        None,
    )
    .await;
    assert_api_error(res, 404).await;
    let of_alice = json_of(
        call(
            &app,
            Method::GET,
            &format!("{USERS}/alice/groups"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(of_alice["groups"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn app_clients_speak_json_api() {
    let (app, _, admin) = acme().await;
    let post = |body: Value, content_type: &'static str| {
        app.http
            .post(app.pool_url("acme", CLIENTS))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
    };
    let res = post(
        json!({"data": {"type": "app-client", "attributes": {"name": "billing"}}}),
        "application/vnd.api+json",
    )
    .await
    .unwrap();
    assert_eq!(res.headers()["content-type"], "application/vnd.api+json");
    let created = json_of(res, 201).await;
    let data = &created["data"];
    let id = data["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 26);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_eq!(data["type"], "app-client");
    assert_eq!(data["attributes"]["name"], "billing");
    assert_eq!(data["attributes"]["secret"].as_str().unwrap().len(), 43);
    assert_eq!(
        data["attributes"]["grant_types"],
        json!([
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert_eq!(
        data["links"]["self"],
        format!("http://gatehouse.test/pools/acme/api/user-management/app-clients/{id}")
    );
    // The secret works, and is never shown again.
    let creds = ClientCreds {
        id: id.clone(),
        secret: data["attributes"]["secret"].as_str().unwrap().to_owned(),
    };
    let client_token = app.client_token("acme", &creds).await;
    let one = json_of(
        call(&app, Method::GET, &format!("{CLIENTS}/{id}"), &admin, None).await,
        200,
    )
    .await;
    assert!(one["data"]["attributes"].get("secret").is_none());
    let all = json_of(call(&app, Method::GET, CLIENTS, &admin, None).await, 200).await;
    assert!(
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id.as_str())
    );

    // Plain JSON is accepted; bad documents are refused with JSON:API errors.
    let res = post(
        json!({"data": {"type": "app-client", "attributes": {"name": "web",
            "grant_types": ["authorization_code"], "redirect_uris": ["https://web.acme.example/cb"],
            "scopes": ["openid", "email"]}}}),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(
        json_of(res, 201).await["data"]["attributes"]["scopes"],
        json!(["openid", "email"])
    );
    for bad in [
        json!({"data": {"type": "app-client", "attributes": {}}}),
        json!({"data": {"type": "app-client", "attributes": {"name": ""}}}),
        json!({"data": {"type": "app-client", "attributes": {"name": "x", "scopes": ["root"]}}}),
        json!({"data": {"type": "app-client", "attributes": {"name": "x", "grant_types": ["implicit"]}}}),
        json!({"data": {"type": "app-client", "attributes": {"name": "x",
            "grant_types": ["authorization_code"]}}}),
        json!({"data": {"type": "app-client", "attributes": {"name": "x",
            "redirect_uris": ["http://evil.example/cb"]}}}),
        json!({"data": {"type": "app-client", "attributes": {"name": "x", "colour": "red"}}}),
    ] {
        let res = post(bad.clone(), "application/vnd.api+json").await.unwrap();
        assert_eq!(
            res.headers()["content-type"],
            "application/vnd.api+json",
            "{bad}"
        );
        assert_api_error(res, 400).await;
    }
    let res = post(
        json!({"data": {"type": "user", "attributes": {"name": "x"}}}),
        "application/vnd.api+json",
    )
    .await
    .unwrap();
    assert_api_error(res, 409).await;

    // Deleting a client ends its own tokens.
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("{CLIENTS}/{id}"),
            &admin,
            None
        )
        .await
        .status(),
        204
    );
    let res = call(&app, Method::GET, &format!("{CLIENTS}/{id}"), &admin, None).await;
    assert_api_error(res, 404).await;
    let res = call(
        &app,
        Method::DELETE,
        &format!("{CLIENTS}/{id}"),
        &admin,
        None,
    )
    .await;
    assert_api_error(res, 404).await;
    let res = call(&app, Method::GET, USERS, &client_token, None).await;
    assert_api_error(res, 401).await;
}

#[tokio::test]
async fn settings_follow_the_reference() {
    let (app, client, admin) = acme().await;
    let policy = "/api/auth/settings/password-policy";
    let templates = "/api/auth/settings/invitation-messages";

    // The policy is public.
    let res = app
        .http
        .get(app.pool_url("acme", policy))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(res, 200).await,
        json!({"MinimumLength": 8, "RequireLowercase": false, "RequireNumbers": false,
            "RequireSymbols": false, "RequireUppercase": false, "TemporaryPasswordValidityDays": 7})
    );
    let res = call(
        &app,
        Method::PUT,
        policy,
        &admin,
        Some(json!({"MinimumLength": 14, "RequireSymbols": true})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let got = json_of(
        app.http
            .get(app.pool_url("acme", policy))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(got["MinimumLength"], 14);
    assert_eq!(got["RequireSymbols"], true);
    assert_eq!(got["TemporaryPasswordValidityDays"], 7);
    for bad in [
        json!({"MinimumLength": 3}),
        json!({"MinimumLength": 300}),
        json!({"MinimumLength": "8"}),
        json!({"TemporaryPasswordValidityDays": 0}),
        json!({"minimumLength": 8}),
    ] {
        let res = call(&app, Method::PUT, policy, &admin, Some(bad)).await;
        assert_api_error(res, 400).await;
    }

    // A temporary password meets the new policy.
    let res = call(
        &app,
        Method::POST,
        USERS,
        &admin,
        Some(user_body("bob", &[])),
    )
    .await;
    assert_eq!(res.status(), 201);
    let body = app.outbox().pop().unwrap()["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let temporary = body
        .strip_prefix("Your username is bob and temporary password is ")
        .and_then(|s| s.strip_suffix('.'))
        .unwrap();
    assert!(temporary.chars().count() >= 14);
    assert!(
        temporary
            .chars()
            .any(|c| "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+-".contains(c))
    );

    // Templates need authentication and both placeholders.
    let res = app
        .http
        .get(app.pool_url("acme", templates))
        .send()
        .await
        .unwrap();
    assert_api_error(res, 401).await;
    let got = json_of(call(&app, Method::GET, templates, &admin, None).await, 200).await;
    assert_eq!(got["EmailSubject"], "Your temporary password");
    let res = call(
        &app,
        Method::PUT,
        templates,
        &admin,
        Some(json!({"EmailMessage": "Hi {username}, no password here"})),
    )
    .await;
    assert_api_error(res, 400).await;
    let res = call(
        &app,
        Method::PUT,
        templates,
        &admin,
        Some(json!({"SMSMessage": "{username}: {####}"})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let got = json_of(call(&app, Method::GET, templates, &admin, None).await, 200).await;
    assert_eq!(got["SMSMessage"], "{username}: {####}");

    // Changing settings needs the permission.
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let res = call(
        &app,
        Method::PUT,
        policy,
        &alice,
        Some(json!({"MinimumLength": 6})),
    )
    .await;
    assert_api_error(res, 403).await;
    assert_eq!(app.audit_count("acme", "pool.settings_updated").await, 2);
}

#[tokio::test]
async fn the_audit_log_is_filtered_and_paged() {
    let (app, client, admin) = acme().await;
    for name in ["bob", "cy", "dee"] {
        let res = call(
            &app,
            Method::POST,
            USERS,
            &admin,
            Some(user_body(name, &[])),
        )
        .await;
        assert_eq!(res.status(), 201);
    }
    let events = "/api/audit/events";
    let page = json_of(
        call(
            &app,
            Method::GET,
            &format!("{events}?action=user.created&limit=3"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    let listed = page["events"].as_array().unwrap();
    // ada and alice (created by the operator), then bob by the administrator.
    let subjects: Vec<&str> = listed
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["ada", "alice", "bob"]);
    assert!(listed[0]["actor"].is_null());
    let bob = &listed[2];
    assert_eq!(bob["action"], "user.created");
    assert_eq!(bob["outcome"], "success");
    assert_eq!(bob["actor"]["kind"], "user");
    assert_eq!(bob["actor"]["username"], "ada");
    assert_eq!(bob["actor"]["pool"], "acme");
    assert_eq!(bob["client_id"], client.id.as_str());
    assert!(bob["time"].as_str().unwrap().ends_with('Z'));
    assert!(bob["impersonator"].is_null());
    let next = page["next"].as_str().unwrap();
    assert!(next.contains("action=user.created"), "{next}");
    let res = app
        .http
        .get(follow(&app, next))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let rest = json_of(res, 200).await;
    let subjects: Vec<&str> = rest["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["cy", "dee"]);
    assert_eq!(rest["next"], "");

    // By actor and subject, and by time.
    let actor = bob["actor"]["id"].as_str().unwrap();
    let by_actor = json_of(
        call(
            &app,
            Method::GET,
            &format!("{events}?actor={actor}&subject=cy"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(by_actor["events"].as_array().unwrap().len(), 1);
    let future = json_of(
        call(
            &app,
            Method::GET,
            &format!("{events}?since=2999-01-01T00:00:00Z"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(future["events"], json!([]));
    let past = json_of(
        call(
            &app,
            Method::GET,
            &format!("{events}?until=0"),
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(past["events"], json!([]));

    for bad in [
        "?action=user.exploded",
        "?since=yesterday",
        "?cursor=abc",
        "?colour=red",
        "?limit=0",
    ] {
        let res = call(&app, Method::GET, &format!("{events}{bad}"), &admin, None).await;
        assert_api_error(res, 400).await;
    }
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let res = call(&app, Method::GET, events, &alice, None).await;
    assert_api_error(res, 403).await;
}
