//! The pool's API as a resource server (SPEC §4): its identifiers as scopes and as RFC 8707
//! `resource`, `invalid_scope` for requests that name nothing known, and the habits of
//! BriteCore's SDK (raw Basic credentials, `Content-Type: application/json` without a body).

use base64::Engine;
use serde_json::Value;

use crate::common::*;

/// A pool `acme` bound to `acme.example.test`, with a client holding two API permissions
/// and an OIDC scope, and a user to impersonate.
async fn bound_acme() -> (TestApp, ClientCreds) {
    let app = spawn_app().await;
    app.create_host_pool("acme", &["acme.example.test", "login.acme.example.test"])
        .await;
    app.create_user("acme", "alice", &[], "alice-password-1")
        .await;
    let client = app
        .create_client("acme", &["user:Impersonate", "user:GetUser", "openid"])
        .await;
    (app, client)
}

async fn token_request(app: &TestApp, c: &ClientCreds, form: &[(&str, &str)]) -> reqwest::Response {
    let mut body = vec![("grant_type", "client_credentials")];
    body.extend_from_slice(form);
    app.http
        .post(app.pool_url("acme", "/oauth2/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .form(&body)
        .send()
        .await
        .unwrap()
}

async fn granted(res: reqwest::Response) -> (Value, Value) {
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let claims = jwt_claims(body["access_token"].as_str().unwrap());
    (body, claims)
}

#[tokio::test]
async fn every_api_identifier_as_a_scope_grants_exactly_the_clients_api_permissions() {
    let (app, client) = bound_acme().await;
    let identifiers = [
        "https://acme.example.test/api".to_owned(),
        "http://acme.example.test/api".to_owned(),
        "https://login.acme.example.test/api".to_owned(),
        "http://login.acme.example.test/api".to_owned(),
        format!("{}/pools/acme/api", app.public_url),
    ];
    for id in &identifiers {
        let (body, claims) = granted(token_request(&app, &client, &[("scope", id)]).await).await;
        assert_eq!(body["scope"], "user:Impersonate user:GetUser", "{id}");
        assert_eq!(claims["scope"], "user:Impersonate user:GetUser", "{id}");
        assert_eq!(claims["aud"], id.as_str());
        assert_eq!(claims["iss"], "http://acme.example.test");
    }
    // Another held scope next to the identifier is granted too; an unknown one is dropped.
    let (body, claims) = granted(
        token_request(
            &app,
            &client,
            &[("scope", "openid https://ACME.example.test:443/api no:Such")],
        )
        .await,
    )
    .await;
    assert_eq!(body["scope"], "user:Impersonate user:GetUser openid");
    assert_eq!(claims["aud"], "https://acme.example.test/api");

    // The token works on the API it names.
    let token = body["access_token"].as_str().unwrap();
    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/users/alice/impersonate"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn the_resource_parameter_names_the_api_too() {
    let (app, client) = bound_acme().await;
    let api = "https://acme.example.test/api";
    let (body, claims) = granted(token_request(&app, &client, &[("resource", api)]).await).await;
    assert_eq!(body["scope"], "user:Impersonate user:GetUser");
    assert_eq!(claims["aud"], api);
    // The same resource twice (scope and parameter, or the parameter repeated) is one.
    let (_, claims) = granted(
        token_request(
            &app,
            &client,
            &[("resource", api), ("resource", api), ("scope", api)],
        )
        .await,
    )
    .await;
    assert_eq!(claims["aud"], api);

    // A resource the pool does not serve, or two different ones, are refused.
    for form in [
        vec![("resource", "https://beta.example.test/api")],
        vec![("resource", "not a uri")],
        vec![
            ("resource", api),
            ("resource", "http://acme.example.test/api"),
        ],
        vec![("resource", api), ("scope", "http://acme.example.test/api")],
    ] {
        let res = token_request(&app, &client, &form).await;
        assert_oauth_error(res, 400, "invalid_target").await;
    }
}

#[tokio::test]
async fn a_request_whose_every_scope_is_unknown_is_invalid_scope() {
    let (app, client) = bound_acme().await;
    for scope in [
        "no:Such",
        "https://beta.example.test/api",
        "user:DeleteUser",
        "https://acme.example.test/api/",
    ] {
        let res = token_request(&app, &client, &[("scope", scope)]).await;
        assert_oauth_error(res, 400, "invalid_scope").await;
    }
    // Asking for nothing still means every scope the client holds, for the issuer.
    let (body, claims) = granted(token_request(&app, &client, &[]).await).await;
    assert_eq!(body["scope"], "user:Impersonate user:GetUser openid");
    assert_eq!(claims["aud"], "http://acme.example.test");
    // A known scope among unknown ones is granted alone.
    let (body, _) =
        granted(token_request(&app, &client, &[("scope", "no:Such user:GetUser")]).await).await;
    assert_eq!(body["scope"], "user:GetUser");
}

#[tokio::test]
async fn an_identifier_of_another_pool_grants_nothing_here() {
    let (app, client) = bound_acme().await;
    app.create_pool("beta").await;
    let beta_api = format!("{}/pools/beta/api", app.public_url);
    let res = token_request(&app, &client, &[("scope", &beta_api)]).await;
    assert_oauth_error(res, 400, "invalid_scope").await;
    let res = token_request(&app, &client, &[("resource", &beta_api)]).await;
    assert_oauth_error(res, 400, "invalid_target").await;
}

/// What BriteCore's SDK sends, byte for byte in the parts that matter: the bound host in
/// `Host`, Basic credentials that were not form-encoded, the API as scope, then a bodiless
/// POST with `Content-Type: application/json`.
#[tokio::test]
async fn the_sdk_request_shapes_are_accepted() {
    let (app, client) = bound_acme().await;
    let raw = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", client.id, client.secret));
    let res = app
        .http
        .post(app.url("/api/auth/oauth2/token"))
        .header("host", "acme.example.test")
        .header("authorization", format!("Basic {raw}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=https%3A%2F%2Facme.example.test%2Fapi")
        .send()
        .await
        .unwrap();
    let (body, _) = granted(res).await;
    let token = body["access_token"].as_str().unwrap();
    let res = app
        .http
        .post(app.url("/api/user-management/users/alice/impersonate"))
        .header("host", "acme.example.test")
        .header("content-type", "application/json")
        .header("accept", "*/*")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], "alice");
    assert_eq!(body["type"], "access-token");
    assert!(body["attributes"]["token"].is_string());
}

#[tokio::test]
async fn staff_page_through_the_pools() {
    let app = crate::common::spawn_app().await;
    let staff = app.staff_member("root", &["admin"]).await;
    for slug in ["delta", "alpha", "echo", "charlie", "bravo"] {
        app.create_pool(slug).await;
    }
    let get = |url: String| {
        let http = app.http.clone();
        let staff = staff.clone();
        async move {
            let res = http.get(url).bearer_auth(staff).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.json::<serde_json::Value>().await.unwrap()
        }
    };
    let mut seen = Vec::new();
    let mut url = app.url("/api/pools?limit=2");
    let mut pages = 0;
    loop {
        let page = get(url).await;
        pages += 1;
        let pools = page["pools"].as_array().unwrap();
        assert!(pools.len() <= 2);
        seen.extend(pools.iter().map(|p| p["name"].as_str().unwrap().to_owned()));
        let next = page["next"].as_str().unwrap();
        if next.is_empty() {
            break;
        }
        // The next link is absolute, under the public URL: follow it on this server.
        url = app.url(next.strip_prefix(&app.public_url).unwrap());
    }
    assert_eq!(
        seen,
        ["alpha", "bravo", "charlie", "delta", "echo", "staff"]
    );
    assert_eq!(pages, 3);
    // A bad cursor or limit is a 400, not a 500.
    for bad in ["/api/pools?limit=0", "/api/pools?cursor=Not%20A%20Slug"] {
        let res = app
            .http
            .get(app.url(bad))
            .bearer_auth(&staff)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
}
