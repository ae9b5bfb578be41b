//! A user created through the API receives a temporary password, signs in with it, must
//! choose a new one that meets the pool's policy, and is then confirmed.

use serde_json::{Value, json};

use crate::common::spawn_app;

#[tokio::test]
async fn invited_users_set_a_password_at_first_sign_in() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    let client = app.create_client("acme", &[]).await;
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;

    let res = app
        .http
        .put(app.pool_url("acme", "/api/auth/settings/password-policy"))
        .bearer_auth(&admin)
        .json(&json!({"MinimumLength": 10, "RequireNumbers": true, "RequireLowercase": true,
            "RequireUppercase": false, "RequireSymbols": false, "TemporaryPasswordValidityDays": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .http
        .put(app.pool_url("acme", "/api/auth/settings/invitation-messages"))
        .bearer_auth(&admin)
        .json(&json!({"EmailSubject": "Welcome to Acme",
            "EmailMessage": "Hello {username}, your temporary password is {####}.",
            "SMSMessage": "Acme: {username} / {####}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/users"))
        .bearer_auth(&admin)
        .json(&json!({"username": "bob", "attributes": {
            "email": "bob@acme.example", "name": "Bob", "roles": [], "zoneinfo": "Europe/Paris"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["user"]["status"], "FORCE_CHANGE_PASSWORD");
    assert_eq!(created["user"]["attributes"]["zoneinfo"], "Europe/Paris");

    let messages = app.outbox();
    let invitation = messages.last().unwrap();
    assert_eq!(invitation["to_email"], "bob@acme.example");
    assert_eq!(invitation["subject"], "Welcome to Acme");
    let body = invitation["body"].as_str().unwrap();
    let temporary = body
        .strip_prefix("Hello bob, your temporary password is ")
        .and_then(|s| s.strip_suffix('.'))
        .unwrap();
    assert!(temporary.len() >= 10);

    let initiate = |password: &str| {
        app.http
            .post(app.pool_url("acme", "/api/auth/initiate"))
            .json(&json!({"flow": "USER_PASSWORD", "client_id": client.id,
                "client_secret": client.secret, "username": "bob", "password": password}))
            .send()
    };
    assert_eq!(initiate("wrong-password-1").await.unwrap().status(), 401);
    let res = initiate(temporary).await.unwrap();
    assert_eq!(res.status(), 200);
    let challenge: Value = res.json().await.unwrap();
    assert_eq!(challenge["challenge"], "NEW_PASSWORD_REQUIRED");
    assert!(challenge.get("access_token").is_none());
    let session = challenge["session"].as_str().unwrap();

    let respond = |new_password: &str| {
        app.http
            .post(app.pool_url("acme", "/api/auth/respond"))
            .json(
                &json!({"challenge": "NEW_PASSWORD_REQUIRED", "client_id": client.id,
                "client_secret": client.secret, "session": session, "new_password": new_password}),
            )
            .send()
    };
    // The policy is enforced: too short, then no number.
    assert_eq!(respond("short1").await.unwrap().status(), 400);
    assert_eq!(respond("no-numbers-here").await.unwrap().status(), 400);
    let res = respond("bobs-new-password-7").await.unwrap();
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    assert!(tokens["access_token"].is_string());
    // The session answered once cannot be answered again.
    assert_eq!(respond("another-password-8").await.unwrap().status(), 401);

    let res = app
        .http
        .get(app.pool_url("acme", "/api/user-management/users/bob"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let bob: Value = res.json().await.unwrap();
    assert_eq!(bob["status"], "CONFIRMED");
    app.sign_in("acme", &client, "bob", "bobs-new-password-7")
        .await;
}

#[tokio::test]
async fn a_reset_password_is_replaced_with_the_code_sent_to_the_user() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    app.create_user("acme", "bob", &[], "bobs-old-password")
        .await;
    let client = app.create_client("acme", &[]).await;
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    let bob = app
        .sign_in("acme", &client, "bob", "bobs-old-password")
        .await;

    let reset = || {
        app.http
            .post(app.pool_url(
                "acme",
                "/api/user-management/users/bob/actions/reset-password",
            ))
            .bearer_auth(&admin)
            .send()
    };
    let last_code = || {
        let messages = app.outbox();
        let body = messages.last().unwrap()["body"]
            .as_str()
            .unwrap()
            .to_owned();
        body.rsplit(' ')
            .next()
            .unwrap()
            .trim_end_matches('.')
            .to_owned()
    };
    let confirm = |code: String, password: &'static str| {
        app.http
            .post(app.pool_url("acme", "/api/auth/confirm-password-reset"))
            .json(
                &json!({"client_id": client.id, "client_secret": client.secret,
                "username": "bob", "code": code, "new_password": password}),
            )
            .send()
    };

    assert_eq!(reset().await.unwrap().status(), 204);
    // The reset revoked Bob's tokens and his old password.
    assert_eq!(app.introspect("acme", &client, &bob).await["active"], false);
    let old = app
        .http
        .post(app.pool_url("acme", "/api/auth/initiate"))
        .json(&json!({"flow": "USER_PASSWORD", "client_id": client.id,
            "client_secret": client.secret, "username": "bob", "password": "bobs-old-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);

    // A wrong guess, from any client, costs the code one attempt, not its life; a second
    // reset while it is good sends the same code again (the first message stays good).
    let code = last_code();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(
        confirm(wrong.into(), "bobs-new-password")
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(reset().await.unwrap().status(), 204);
    assert_eq!(last_code(), code);
    // Four more wrong guesses: the fifth ends the code, and the right one no longer works.
    for _ in 0..4 {
        assert_eq!(
            confirm(wrong.into(), "bobs-new-password")
                .await
                .unwrap()
                .status(),
            400
        );
    }
    assert_eq!(
        confirm(code.clone(), "bobs-new-password")
            .await
            .unwrap()
            .status(),
        400
    );

    // A new reset, a new code. A password the policy refuses does not spend it.
    assert_eq!(reset().await.unwrap().status(), 204);
    let code = last_code();
    assert_eq!(confirm(code.clone(), "short").await.unwrap().status(), 400);
    assert_eq!(
        confirm(code, "bobs-new-password").await.unwrap().status(),
        204
    );
    app.sign_in("acme", &client, "bob", "bobs-new-password")
        .await;
    let res = app
        .http
        .get(app.pool_url("acme", "/api/user-management/users/bob"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["status"], "CONFIRMED");
    assert_eq!(user["attributes"]["email_verified"], true);
}
