use reqwest::Method;
use serde_json::{Value, json};

use super::*;
use crate::common::assert_api_error;

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
    app.create_oidc_provider("acme", "Google", "https://accounts.google.com")
        .await;
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
    // Holding the permission alone lists the sessions of users it dominates, not of an
    // administrator.
    app.create_user(
        "acme",
        "lister",
        &["user:RetrieveUserSessions"],
        "lister-password-1",
    )
    .await;
    let lister = app
        .sign_in("acme", &client, "lister", "lister-password-1")
        .await;
    let res = call(&app, Method::GET, &sessions_path, &lister, None).await;
    assert_eq!(res.status(), 200);
    let res = call(
        &app,
        Method::GET,
        &format!("{USERS}/ada/sessions"),
        &lister,
        None,
    )
    .await;
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

    // A wrong guess costs the code one attempt; the fifth ends it, and then the right code
    // is refused too.
    let right = code(&sent);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let guess = |c: &str| json!({"attribute": "email", "verification_code": c});
    for _ in 0..5 {
        let res = call(&app, Method::POST, &verify, &alice, Some(guess(wrong))).await;
        assert_api_error(res, 400).await;
    }
    let res = call(&app, Method::POST, &verify, &alice, Some(guess(&right))).await;
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
