//! The `REFRESH_TOKEN` flow of `/api/auth/initiate`: API sign-ins get refresh tokens when
//! their client holds the grant, and those tokens are the token endpoint's: they rotate on
//! every use, a reused one ends its family (the sign-in's session, so its access tokens turn
//! inactive), and another client cannot use them.

use gatehouse_crypto::secret::Secret;
use gatehouse_domain::client::ClientType;
use gatehouse_domain::ids::PoolSlug;
use gatehouse_domain::user::UserAttributes;
use serde_json::{Value, json};

use crate::code_flow::{refresh, register, web_client};
use crate::common::{ClientCreds, TestApp, jwt_claims, spawn_app};

async fn initiate(app: &TestApp, body: Value) -> reqwest::Response {
    app.http
        .post(app.pool_url("acme", "/api/auth/initiate"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn password_sign_in(app: &TestApp, c: &ClientCreds) -> Value {
    let res = initiate(
        app,
        json!({"flow": "USER_PASSWORD", "client_id": c.id, "client_secret": c.secret,
            "username": "ada", "password": "ada-password-123"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn refresh_flow(app: &TestApp, c: &ClientCreds, token: &str) -> reqwest::Response {
    let mut body = json!({"flow": "REFRESH_TOKEN", "client_id": c.id, "refresh_token": token});
    if !c.secret.is_empty() {
        body["client_secret"] = json!(c.secret);
    }
    initiate(app, body).await
}

async fn error_code(res: reqwest::Response, status: u16) -> String {
    assert_eq!(res.status(), status);
    let body: Value = res.json().await.unwrap();
    body["errors"][0]["code"].as_str().unwrap().to_owned()
}

async fn setup() -> (TestApp, ClientCreds) {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &[], "ada-password-123")
        .await;
    let client = web_client(&app, "acme", &["authorization_code", "refresh_token"]).await;
    (app, client)
}

#[tokio::test]
async fn api_refresh_tokens_rotate_and_a_reused_one_ends_the_sign_in() {
    let (app, client) = setup().await;
    let signed_in = password_sign_in(&app, &client).await;
    let first_access = signed_in["access_token"].as_str().unwrap();
    let first = signed_in["refresh_token"].as_str().unwrap().to_owned();
    let sid = jwt_claims(first_access)["sid"].clone();

    // Twice through the API's flow, each answer with the family's next token.
    let res = refresh_flow(&app, &client, &first).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let second: Value = res.json().await.unwrap();
    let second_token = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_token, first);
    assert_eq!(second["token_type"], "Bearer");
    let claims = jwt_claims(second["access_token"].as_str().unwrap());
    assert_eq!(
        claims["sid"], sid,
        "the refresh continues the sign-in's session"
    );
    assert_eq!(claims["username"], "ada");
    assert!(claims["scope"].is_null(), "{claims}");
    let res = refresh_flow(&app, &client, &second_token).await;
    assert_eq!(res.status(), 200);
    let third: Value = res.json().await.unwrap();
    let third_token = third["refresh_token"].as_str().unwrap().to_owned();
    assert!(third_token != second_token && third_token != first);
    // The same tokens as the token endpoint's: it takes the family's latest one.
    let res = refresh(&app, &client, &third_token).await;
    assert_eq!(res.status(), 200);
    let fourth: Value = res.json().await.unwrap();
    let latest_access = fourth["access_token"].as_str().unwrap().to_owned();
    let latest = fourth["refresh_token"].as_str().unwrap().to_owned();
    for token in [first_access, latest_access.as_str()] {
        assert_eq!(app.introspect("acme", &client, token).await["active"], true);
    }

    // A used token again: refused, and the whole sign-in ends with it.
    let reused = refresh_flow(&app, &client, &second_token).await;
    assert_eq!(error_code(reused, 400).await, "invalid_grant");
    for token in [first_access, latest_access.as_str()] {
        assert_eq!(
            app.introspect("acme", &client, token).await["active"],
            false
        );
    }
    let after = refresh_flow(&app, &client, &latest).await;
    assert_eq!(error_code(after, 400).await, "invalid_grant");
    assert!(app.audit_count("acme", "session.revoked").await >= 1);
}

#[tokio::test]
async fn another_client_cannot_use_a_refresh_token() {
    let (app, client) = setup().await;
    let other = web_client(&app, "acme", &["authorization_code", "refresh_token"]).await;
    let token = password_sign_in(&app, &client).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another client's token: refused, and the owner's family is untouched.
    let res = refresh_flow(&app, &other, &token).await;
    assert_eq!(error_code(res, 400).await, "invalid_grant");
    // A wrong secret, or no such client: 401, as for the other flows.
    let wrong = ClientCreds {
        id: client.id.clone(),
        secret: "not-the-secret".to_owned(),
    };
    assert_eq!(
        error_code(refresh_flow(&app, &wrong, &token).await, 401).await,
        "unauthenticated"
    );
    let unknown = ClientCreds {
        id: "no-such-client".to_owned(),
        secret: "x".to_owned(),
    };
    assert_eq!(refresh_flow(&app, &unknown, &token).await.status(), 401);
    // A confidential client that leaves out its secret is not authenticated.
    let no_secret = ClientCreds {
        id: client.id.clone(),
        secret: String::new(),
    };
    assert_eq!(refresh_flow(&app, &no_secret, &token).await.status(), 401);
    // The owner still refreshes with it: none of the above used it up.
    assert_eq!(refresh_flow(&app, &client, &token).await.status(), 200);
}

#[tokio::test]
async fn a_client_without_the_refresh_grant_gets_no_refresh_token() {
    let (app, with_refresh) = setup().await;
    let without = web_client(&app, "acme", &["authorization_code"]).await;
    let signed_in = password_sign_in(&app, &without).await;
    assert!(signed_in["access_token"].is_string());
    assert!(signed_in.get("refresh_token").is_none(), "{signed_in}");
    // Nor can it refresh with a token of a client that could.
    let token = password_sign_in(&app, &with_refresh).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = refresh_flow(&app, &without, &token).await;
    assert_eq!(error_code(res, 400).await, "unauthorized_client");
    assert_eq!(
        refresh_flow(&app, &with_refresh, &token).await.status(),
        200
    );

    // A public client holding the grant authenticates with its id alone, as at sign-in.
    let public = register(
        &app,
        "acme",
        &["authorization_code", "refresh_token"],
        ClientType::Public,
    )
    .await;
    let signed_in = password_sign_in(&app, &public).await;
    let token = signed_in["refresh_token"].as_str().unwrap();
    assert_eq!(refresh_flow(&app, &public, token).await.status(), 200);
}

#[tokio::test]
async fn a_first_password_set_through_the_api_answers_a_refresh_token() {
    let (app, client) = setup().await;
    let pool = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    let (_, temporary) = app
        .gh
        .create_user_with_password(
            &pool,
            "bob",
            UserAttributes {
                email: "bob@example.com".to_owned(),
                name: "Bob".to_owned(),
                ..UserAttributes::default()
            },
            None::<Secret>,
            None,
        )
        .await
        .unwrap();
    let res = initiate(
        &app,
        json!({"flow": "USER_PASSWORD", "client_id": client.id, "client_secret": client.secret,
            "username": "bob", "password": temporary.unwrap().expose()}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let challenge: Value = res.json().await.unwrap();
    assert_eq!(challenge["challenge"], "NEW_PASSWORD_REQUIRED");
    let res = app
        .http
        .post(app.pool_url("acme", "/api/auth/respond"))
        .json(
            &json!({"challenge": "NEW_PASSWORD_REQUIRED", "client_id": client.id,
            "client_secret": client.secret, "session": challenge["session"],
            "new_password": "bobs-own-password-7"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    let token = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(refresh_flow(&app, &client, token).await.status(), 200);
}

#[tokio::test]
async fn malformed_refresh_requests_are_refused_with_400() {
    let (app, client) = setup().await;
    let token = password_sign_in(&app, &client).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for body in [
        json!({"flow": "REFRESH_TOKEN", "client_id": client.id, "client_secret": client.secret}),
        json!({"flow": "REFRESH_TOKEN", "client_id": client.id, "client_secret": client.secret,
            "refresh_token": token, "username": "ada"}),
        json!({"flow": "USER_PASSWORD", "client_id": client.id, "client_secret": client.secret,
            "username": "ada", "password": "ada-password-123", "refresh_token": token}),
        json!({"flow": "USER_PASSWORD", "client_id": client.id, "client_secret": client.secret,
            "username": "ada"}),
        json!({"flow": "CUSTOM_AUTH", "client_id": client.id, "refresh_token": token}),
        json!({"flow": "REFRESH_TOKEN", "client_id": client.id, "client_secret": client.secret,
            "refresh_token": 7}),
    ] {
        let res = initiate(&app, body.clone()).await;
        assert_eq!(res.status(), 400, "{body}");
    }
    // An unknown token: invalid_grant.
    let res = refresh_flow(&app, &client, "not-a-refresh-token").await;
    assert_eq!(error_code(res, 400).await, "invalid_grant");
    // None of it used the real token up.
    assert_eq!(refresh_flow(&app, &client, &token).await.status(), 200);
}

#[tokio::test]
async fn a_code_flow_refresh_token_refreshes_through_the_api_too() {
    use crate::code_flow::{Browser, VERIFIER, authorize_url, exchange, hidden, query_of};
    let (app, client) = setup().await;
    let mut browser = Browser::new();
    let html = browser
        .get(&authorize_url(&app, "acme", &client, ""))
        .await
        .text()
        .await
        .unwrap();
    let res = browser
        .post(
            &app.pool_url("acme", "/oauth2/authorize"),
            &[
                ("step", "password"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "ada"),
                ("password", "ada-password-123"),
            ],
        )
        .await;
    let code = query_of(res.headers()["location"].to_str().unwrap())["code"].clone();
    let tokens: Value = exchange(&app, &client, &code, Some(VERIFIER))
        .await
        .json()
        .await
        .unwrap();
    let first = tokens["refresh_token"].as_str().unwrap();
    let res = refresh_flow(&app, &client, first).await;
    assert_eq!(res.status(), 200);
    let refreshed: Value = res.json().await.unwrap();
    // The authorization granted openid: an ID token, for the same browser session.
    let id = jwt_claims(refreshed["id_token"].as_str().unwrap());
    assert_eq!(
        id["sid"],
        jwt_claims(tokens["id_token"].as_str().unwrap())["sid"]
    );
    assert_eq!(
        jwt_claims(refreshed["access_token"].as_str().unwrap())["scope"],
        "openid profile email"
    );
    // One family across both endpoints: the first token again ends it.
    let reused = refresh(&app, &client, first).await;
    assert_eq!(reused.status(), 400);
    let next = refreshed["refresh_token"].as_str().unwrap();
    assert_eq!(
        error_code(refresh_flow(&app, &client, next).await, 400).await,
        "invalid_grant"
    );
}
