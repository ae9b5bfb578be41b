//! `/oauth2/userinfo` releases `sub` and the claims of the token's scopes, exactly what the
//! ID token of the same grant releases, and nothing else of the profile.

use gatehouse_service::grants::authorization_code::s256;
use reqwest::header::LOCATION;
use serde_json::{Map, Value};

use crate::code_flow::{Browser, REDIRECT, VERIFIER, exchange, hidden, query_of, web_client};
use crate::common::{ClientCreds, TestApp, jwt_claims, spawn_app};

async fn userinfo(app: &TestApp, token: &str) -> Map<String, Value> {
    let res = app
        .http
        .get(app.pool_url("acme", "/oauth2/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Signs ada in through the page for `scope`; answers the token response.
async fn tokens_for(app: &TestApp, client: &ClientCreds, scope: &str) -> Value {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let url = app.pool_url(
        "acme",
        &format!(
            "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}\
             &code_challenge={}&code_challenge_method=S256",
            client.id,
            enc(REDIRECT),
            enc(scope),
            s256(VERIFIER)
        ),
    );
    let mut browser = Browser::new();
    let html = browser.get(&url).await.text().await.unwrap();
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
    assert_eq!(res.status(), 303);
    let code = query_of(res.headers()[LOCATION].to_str().unwrap())["code"].clone();
    let res = exchange(app, client, &code, Some(VERIFIER)).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn keys(m: &Map<String, Value>) -> Vec<&str> {
    let mut k: Vec<&str> = m.keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[tokio::test]
async fn userinfo_releases_only_what_the_scopes_grant() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &[], "ada-password-123")
        .await;
    let client = web_client(&app, "acme", &["authorization_code"]).await;

    // profile without email: a name, no address.
    let tokens = tokens_for(&app, &client, "openid profile").await;
    let info = userinfo(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["name"], "ada");
    assert_eq!(info["preferred_username"], "ada");
    assert!(
        !info.contains_key("email") && !info.contains_key("email_verified"),
        "{info:?}"
    );
    assert!(!info.contains_key("roles"), "{info:?}");
    // The same claims as the ID token of the grant, beside the token's own.
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    for (k, v) in &info {
        assert_eq!(&id[k], v, "{k}");
    }

    // email without profile: the address, no name.
    let tokens = tokens_for(&app, &client, "openid email").await;
    let info = userinfo(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["email"], "ada@example.com");
    assert_eq!(info["email_verified"], false);
    assert!(!info.contains_key("name"), "{info:?}");
    assert_eq!(
        keys(&info),
        [
            "email",
            "email_verified",
            "preferred_username",
            "sub",
            "username"
        ]
    );

    // openid alone: who, and nothing of the profile.
    let tokens = tokens_for(&app, &client, "openid").await;
    let info = userinfo(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(keys(&info), ["preferred_username", "sub", "username"]);
    assert_eq!(
        info["sub"],
        jwt_claims(tokens["id_token"].as_str().unwrap())["sub"]
    );

    // An API sign-in's token grants no scope: the same.
    let api = app.create_client("acme", &[]).await;
    let token = app.sign_in("acme", &api, "ada", "ada-password-123").await;
    assert_eq!(
        keys(&userinfo(&app, &token).await),
        ["preferred_username", "sub", "username"]
    );
}
