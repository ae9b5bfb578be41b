//! Discovery tells the truth (every field held against what the endpoints do), host-bound
//! pools have one issuer at their root and under `/pools/{pool}`, and re-binding a pool's
//! hosts says what it does to tokens already issued.

use gatehouse_domain::ids::PoolSlug;
use gatehouse_domain::pool::{PoolSettings, SigningAlg};
use serde_json::{Value, json};

use crate::common::*;

async fn get_json(app: &TestApp, url: &str, host: Option<&str>) -> Value {
    let mut req = app.http.get(url);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    res.json().await.unwrap()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// Where a URL the pool published is served on the test server.
fn served_at(app: &TestApp, pool: &str, issuer: &str, url: &str) -> String {
    let path = url
        .strip_prefix(issuer)
        .expect("endpoints live under the issuer");
    app.pool_url(pool, path)
}

/// Holds every field of the pool's metadata against the endpoints it describes.
async fn check_metadata(app: &TestApp, pool: &str, issuer: &str, alg: &str) {
    let doc = get_json(
        app,
        &app.pool_url(pool, "/.well-known/openid-configuration"),
        None,
    )
    .await;
    let oauth = get_json(
        app,
        &app.pool_url(pool, "/.well-known/oauth-authorization-server"),
        None,
    )
    .await;
    assert_eq!(doc, oauth);
    assert_eq!(doc["issuer"], issuer);

    // Every endpoint is under the issuer and is routed.
    for field in [
        "token_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
    ] {
        let url = served_at(app, pool, issuer, doc[field].as_str().unwrap());
        let res = app.http.post(&url).send().await.unwrap();
        assert!(res.status().is_client_error(), "{field}");
        assert_ne!(res.status(), 404, "{field}");
        assert_ne!(res.status(), 405, "{field}");
    }
    let userinfo = served_at(
        app,
        pool,
        issuer,
        doc["userinfo_endpoint"].as_str().unwrap(),
    );
    assert_eq!(app.http.get(&userinfo).send().await.unwrap().status(), 401);
    let jwks = get_json(
        app,
        &served_at(app, pool, issuer, doc["jwks_uri"].as_str().unwrap()),
        None,
    )
    .await;

    // The algorithms are the pool's: its access-token key in its algorithm, and its ID-token
    // key, a key of its own even when both are RS256.
    assert_eq!(
        strings(&doc["access_token_signing_alg_values_supported"]),
        [alg]
    );
    assert_eq!(
        strings(&doc["id_token_signing_alg_values_supported"]),
        ["RS256"]
    );
    let mut published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    published.sort_unstable();
    let mut expected = vec![alg, "RS256"];
    expected.sort_unstable();
    assert_eq!(published, expected);
    // The code flow: its endpoint answers (a request naming no client is refused on a page),
    // with the response type, mode and PKCE method it supports; logout answers too.
    assert_eq!(strings(&doc["response_types_supported"]), ["code"]);
    assert_eq!(strings(&doc["response_modes_supported"]), ["query"]);
    assert_eq!(strings(&doc["code_challenge_methods_supported"]), ["S256"]);
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    let authorize = served_at(
        app,
        pool,
        issuer,
        doc["authorization_endpoint"].as_str().unwrap(),
    );
    let res = app
        .http
        .get(format!("{authorize}?response_type=code"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("names no application"));
    let logout = served_at(
        app,
        pool,
        issuer,
        doc["end_session_endpoint"].as_str().unwrap(),
    );
    assert_eq!(app.http.get(&logout).send().await.unwrap().status(), 200);

    let token_endpoint = served_at(app, pool, issuer, doc["token_endpoint"].as_str().unwrap());
    let client = app.create_client(pool, &["user:GetUser", "openid"]).await;

    // Each listed client authentication method works; nothing else is listed.
    // `none` is for public clients of the code flow (`code_flow.rs`); a confidential client
    // must authenticate, as below.
    let methods = strings(&doc["token_endpoint_auth_methods_supported"]);
    assert_eq!(
        methods,
        ["client_secret_basic", "client_secret_post", "none"]
    );
    for field in [
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ] {
        assert_eq!(
            strings(&doc[field]),
            ["client_secret_basic", "client_secret_post"]
        );
    }
    let basic = app
        .http
        .post(&token_endpoint)
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let issued: Value = basic.json().await.unwrap();
    assert!(issued.get("id_token").is_none());
    let token = issued["access_token"].as_str().unwrap();
    let header: Value = {
        use base64::Engine;
        let h = token.split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(header["alg"], alg);
    assert_eq!(jwt_claims(token)["iss"], issuer);
    let post = app
        .http
        .post(&token_endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client.id),
            ("client_secret", &client.secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    let none = app
        .http
        .post(&token_endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client.id),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(none, 401, "invalid_client").await;

    // Listed grants are served; unlisted ones are unsupported.
    let grants = strings(&doc["grant_types_supported"]);
    assert_eq!(
        grants,
        [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ]
    );
    // Served, but not to a client registered without them.
    for grant in ["authorization_code", "refresh_token"] {
        let res = app
            .http
            .post(&token_endpoint)
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[("grant_type", grant), ("code", "x"), ("refresh_token", "x")])
            .send()
            .await
            .unwrap();
        assert_oauth_error(res, 400, "unauthorized_client").await;
    }
    for grant in [
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] {
        let res = app
            .http
            .post(&token_endpoint)
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[("grant_type", grant)])
            .send()
            .await
            .unwrap();
        assert_oauth_error(res, 400, "unsupported_grant_type").await;
    }
    let exchange = app
        .http
        .post(&token_endpoint)
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", grants[3])])
        .send()
        .await
        .unwrap();
    assert_oauth_error(exchange, 400, "invalid_request").await;

    // Every API identifier among the scopes names the token's audience.
    let scopes = strings(&doc["scopes_supported"]);
    for s in ["openid", "user:Impersonate", "user:GetUser"] {
        assert!(scopes.contains(&s), "{s}");
    }
    let apis: Vec<&str> = scopes
        .iter()
        .copied()
        .filter(|s| s.ends_with("/api"))
        .collect();
    assert!(apis.contains(&format!("{}/pools/{pool}/api", app.public_url).as_str()));
    for api in apis {
        let res = app
            .http
            .post(&token_endpoint)
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[("grant_type", "client_credentials"), ("scope", api)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{api}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["scope"], "user:GetUser");
        assert_eq!(
            jwt_claims(body["access_token"].as_str().unwrap())["aud"],
            api
        );
    }
}

#[tokio::test]
async fn discovery_says_exactly_what_a_path_pool_does() {
    let app = spawn_app().await;
    app.gh
        .create_pool(
            PoolSlug::parse("beta").unwrap(),
            PoolSettings {
                signing_alg: SigningAlg::RS256,
                ..PoolSettings::default()
            },
            Vec::new(),
            None,
            &Default::default(),
        )
        .await
        .unwrap();
    let issuer = app.issuer("beta");
    check_metadata(&app, "beta", &issuer, "RS256").await;
}

#[tokio::test]
async fn a_host_bound_pool_has_one_issuer_at_its_root_and_its_path() {
    let app = spawn_app().await;
    app.create_host_pool("acme", &["acme.example.test", "www.acme.example.test"])
        .await;
    // The public URL's scheme, the first host.
    check_metadata(&app, "acme", "http://acme.example.test", "ES256").await;
    let at_path = get_json(
        &app,
        &app.pool_url("acme", "/.well-known/openid-configuration"),
        None,
    )
    .await;
    for host in ["acme.example.test", "www.acme.example.test:443"] {
        let at_root = get_json(
            &app,
            &app.url("/.well-known/openid-configuration"),
            Some(host),
        )
        .await;
        assert_eq!(at_root, at_path, "{host}");
    }
    let scopes = strings(&at_path["scopes_supported"]);
    for api in [
        "https://acme.example.test/api",
        "http://acme.example.test/api",
        "https://www.acme.example.test/api",
        "http://www.acme.example.test/api",
    ] {
        assert!(scopes.contains(&api), "{api}");
    }
    let jwks_root = get_json(
        &app,
        &app.url("/.well-known/jwks.json"),
        Some("acme.example.test"),
    )
    .await;
    let jwks_path = get_json(&app, &app.pool_url("acme", "/.well-known/jwks.json"), None).await;
    assert_eq!(jwks_root, jwks_path);
}

async fn put_hosts(app: &TestApp, token: &str, pool: &str, body: Value) -> reqwest::Response {
    app.http
        .put(app.url(&format!("/api/pools/{pool}/hosts")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn rebinding_hosts_moves_the_issuer_and_says_what_happens_to_tokens() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_host_pool("beta", &["beta.example.test"]).await;
    let root = app.staff_member("root", &["admin"]).await;
    let client = app.create_client("acme", &["user:GetUser"]).await;
    let before = app.client_token("acme", &client).await;
    assert_eq!(jwt_claims(&before)["iss"], app.issuer("acme"));

    // Binding a host moves the issuer to it, and the answer says so.
    let res = put_hosts(
        &app,
        &root,
        "acme",
        json!({"hosts": ["acme.example.test", "Login.Acme.Example.Test"]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["issuer"], "http://acme.example.test");
    assert_eq!(body["previous_issuer"], app.issuer("acme"));
    assert_eq!(body["issuer_changed"], true);
    assert_eq!(
        strings(&body["hosts"]),
        ["acme.example.test", "login.acme.example.test"]
    );
    assert!(body["tokens"].as_str().unwrap().contains("refused"));

    // As it says: the old token is refused, a new one carries the new issuer.
    let res = app.introspect("acme", &client, &before).await;
    assert_eq!(res["active"], false);
    let after = app.client_token("acme", &client).await;
    assert_eq!(jwt_claims(&after)["iss"], "http://acme.example.test");
    assert_eq!(
        app.introspect("acme", &client, &after).await["active"],
        true
    );
    let doc = get_json(
        &app,
        &app.url("/.well-known/openid-configuration"),
        Some("login.acme.example.test"),
    )
    .await;
    assert_eq!(doc["issuer"], "http://acme.example.test");

    // Adding a second host behind the first keeps the issuer and the tokens.
    let res = put_hosts(
        &app,
        &root,
        "acme",
        json!({"hosts": ["acme.example.test", "third.example.test"]}),
    )
    .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["issuer_changed"], false);
    assert_eq!(
        app.introspect("acme", &client, &after).await["active"],
        true
    );
    assert_eq!(app.audit_count("acme", "pool.hosts_changed").await, 2);

    // A host bound to another pool, a malformed host, an unknown pool: 4xx, nothing changed.
    let res = put_hosts(&app, &root, "acme", json!({"hosts": ["beta.example.test"]})).await;
    assert_api_error(res, 409).await;
    let res = put_hosts(&app, &root, "acme", json!({"hosts": ["bad host"]})).await;
    assert_api_error(res, 400).await;
    let res = put_hosts(&app, &root, "acme", json!({"hosts": "acme.example.test"})).await;
    assert_api_error(res, 400).await;
    let res = put_hosts(&app, &root, "nope", json!({"hosts": []})).await;
    assert_api_error(res, 404).await;
    assert_eq!(
        app.introspect("acme", &client, &after).await["active"],
        true
    );

    // Unbinding returns the pool to its path issuer.
    let res = put_hosts(&app, &root, "acme", json!({"hosts": []})).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["issuer"], app.issuer("acme"));
    assert_eq!(body["issuer_changed"], true);
    assert_eq!(
        app.introspect("acme", &client, &after).await["active"],
        false
    );
}

#[tokio::test]
async fn only_staff_holding_update_pool_rebind_hosts() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    let support = app.staff_member("sue", &["support"]).await;
    let res = put_hosts(
        &app,
        &support,
        "acme",
        json!({"hosts": ["acme.example.test"]}),
    )
    .await;
    assert_api_error(res, 403).await;
    let creator = app.staff_member("cree", &["pool:CreatePool"]).await;
    let res = put_hosts(
        &app,
        &creator,
        "acme",
        json!({"hosts": ["acme.example.test"]}),
    )
    .await;
    assert_api_error(res, 403).await;
    // A client pool's administrator is not staff, whatever it holds.
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    let acme_client = app.create_client("acme", &[]).await;
    let ada = app
        .sign_in("acme", &acme_client, "ada", "ada-password-123")
        .await;
    let res = put_hosts(&app, &ada, "acme", json!({"hosts": ["acme.example.test"]})).await;
    assert_api_error(res, 401).await;
    let res = app
        .http
        .put(app.url("/api/pools/acme/hosts"))
        .json(&json!({"hosts": []}))
        .send()
        .await
        .unwrap();
    assert_api_error(res, 401).await;
    let pool = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    assert!(pool.hosts.is_empty());
}
