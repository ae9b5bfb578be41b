//! Attempts to break Gatehouse: forged and foreign tokens, wrong secrets, forbidden
//! impersonations, and bad input. Each must fail with a 4xx and the documented body, write
//! nothing, and never answer 5xx.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::common::{ClientCreds, TestApp, assert_api_error, assert_oauth_error, spawn_app};

/// A pool `acme` with an administrator `ada`, a support agent `sam`, a user `alice`, and an
/// app client that may impersonate.
async fn acme() -> (TestApp, ClientCreds) {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    app.create_user("acme", "sam", &["support"], "sam-password-123")
        .await;
    app.create_user("acme", "alice", &[], "alice-password-1")
        .await;
    let client = app.create_client("acme", &["user:Impersonate"]).await;
    (app, client)
}

async fn get_users(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .get(app.pool_url("acme", "/api/user-management/users"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn impersonate(app: &TestApp, token: &str, username: &str) -> reqwest::Response {
    app.http
        .post(app.pool_url(
            "acme",
            &format!("/api/user-management/users/{username}/impersonate"),
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn with_payload(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut payload);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
    format!("{}.{}.{}", parts[0], payload, parts[2])
}

#[tokio::test]
async fn tampered_and_unsigned_tokens_are_refused() {
    let (app, client) = acme().await;
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    assert_eq!(get_users(&app, &admin).await.status(), 200);

    let sam = app
        .sign_in("acme", &client, "sam", "sam-password-123")
        .await;
    // Sam's token rewritten to claim Ada's identity: the signature no longer matches.
    let ada_sub = {
        let parts: Vec<&str> = admin.split('.').collect();
        let p: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        p["sub"].clone()
    };
    let forged = with_payload(&sam, |p| p["sub"] = ada_sub.clone());
    assert_api_error(get_users(&app, &forged).await, 401).await;

    // The same payload with `alg: none` and no signature.
    let parts: Vec<&str> = forged.split('.').collect();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
    let unsigned = format!("{header}.{}.", parts[1]);
    assert_api_error(get_users(&app, &unsigned).await, 401).await;

    // HS256 keyed with the public JWK's bytes.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"at+jwt","kid":"x"}"#);
    let hmac = format!("{header}.{}.{}", parts[1], parts[2]);
    assert_api_error(get_users(&app, &hmac).await, 401).await;

    for bad in [forged.as_str(), unsigned.as_str(), "not-a-token", ""] {
        let res = app.introspect("acme", &client, bad).await;
        assert_eq!(res, json!({"active": false}));
    }
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let (app, client) = acme().await;
    let token = app.client_token("acme", &client).await;
    assert_eq!(
        app.introspect("acme", &client, &token).await["active"],
        true
    );
    app.clock.advance(3601);
    assert_eq!(
        app.introspect("acme", &client, &token).await,
        json!({"active": false})
    );
    assert_api_error(impersonate(&app, &token, "alice").await, 401).await;
}

#[tokio::test]
async fn a_token_of_another_pool_is_refused() {
    let (app, client) = acme().await;
    app.create_pool("globex").await;
    app.create_user("globex", "alice", &[], "alice-password-1")
        .await;
    let globex_client = app.create_client("globex", &["user:Impersonate"]).await;
    let globex_token = app.client_token("globex", &globex_client).await;
    // A globex token presented to acme.
    assert_api_error(impersonate(&app, &globex_token, "alice").await, 401).await;
    assert_eq!(
        app.introspect("acme", &client, &globex_token).await,
        json!({"active": false})
    );
    // Its issuer rewritten to acme's: the signature fails.
    let reissued = with_payload(&globex_token, |p| p["iss"] = json!(app.issuer("acme")));
    assert_api_error(impersonate(&app, &reissued, "alice").await, 401).await;
    assert_eq!(app.audit_count("acme", "impersonation.started").await, 0);
}

#[tokio::test]
async fn a_wrong_client_secret_gets_invalid_client_and_no_token() {
    let (app, client) = acme().await;
    let before = app.audit_count("acme", "token.issued").await;
    let res = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .basic_auth(&client.id, Some("wrong-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("www-authenticate"));
    assert_oauth_error(res, 401, "invalid_client").await;
    let res = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "nosuchclient"),
            ("client_secret", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 401, "invalid_client").await;
    assert_eq!(app.audit_count("acme", "token.issued").await, before);
}

#[tokio::test]
async fn unknown_requested_scopes_are_dropped() {
    let (app, client) = acme().await;
    let res = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client.id.as_str()),
            ("client_secret", client.secret.as_str()),
            ("scope", "user:Impersonate user:CreateUser nonsense"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["scope"], "user:Impersonate");
    assert_eq!(body["token_type"], "Bearer");
    // Issuance is audited (written behind, visible once flushed).
    assert_eq!(app.audit_count("acme", "token.issued").await, 1);
}

#[tokio::test]
async fn impersonating_a_privileged_user_needs_impersonate_privileged() {
    let (app, client) = acme().await;
    let token = app.client_token("acme", &client).await;
    for target in ["ada", "sam"] {
        let body = assert_api_error(impersonate(&app, &token, target).await, 403).await;
        assert!(body.to_string().contains("user:ImpersonatePrivileged"));
    }
    assert_eq!(app.audit_count("acme", "impersonation.denied").await, 2);
    assert_eq!(app.audit_count("acme", "impersonation.started").await, 0);
    // An administrator holds every permission, ImpersonatePrivileged included.
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    assert_eq!(impersonate(&app, &admin, "sam").await.status(), 200);
}

#[tokio::test]
async fn callers_without_the_permission_are_refused() {
    let (app, client) = acme().await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    assert_api_error(impersonate(&app, &alice, "sam").await, 403).await;
    let plain = app.create_client("acme", &[]).await;
    let plain = app.client_token("acme", &plain).await;
    assert_api_error(impersonate(&app, &plain, "alice").await, 403).await;
    assert_api_error(impersonate(&app, "", "alice").await, 401).await;
}

#[tokio::test]
async fn no_chains_and_no_self_impersonation() {
    let (app, client) = acme().await;
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    assert_api_error(impersonate(&app, &admin, "ada").await, 403).await;

    let res = impersonate(&app, &admin, "sam").await;
    let as_sam = res.json::<Value>().await.unwrap()["attributes"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Sam may impersonate, but not through an impersonated token.
    let body = assert_api_error(impersonate(&app, &as_sam, "alice").await, 403).await;
    assert!(body.to_string().contains("impersonated"));
    // Nor through token exchange.
    let res = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("actor_token", as_sam.as_str()),
            (
                "actor_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", "alice"),
            (
                "subject_token_type",
                "urn:gatehouse:params:oauth:token-type:username",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 400, "invalid_grant").await;
    assert_eq!(app.audit_count("acme", "impersonation.started").await, 1);
}

#[tokio::test]
async fn impersonated_tokens_are_refused_by_the_admin_api_and_expire_early() {
    let (app, client) = acme().await;
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/users/sam/impersonate"))
        .bearer_auth(&admin)
        .json(&json!({"expires_in": 100000}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    // Capped at the pool's maximum.
    assert_eq!(body["attributes"]["expires_in"], 900);
    let token = body["attributes"]["token"].as_str().unwrap();
    assert_api_error(get_users(&app, token).await, 403).await;
    let res = app
        .http
        .put(app.pool_url("acme", "/api/auth/settings/password-policy"))
        .bearer_auth(token)
        .json(&json!({"MinimumLength": 6}))
        .send()
        .await
        .unwrap();
    assert_api_error(res, 403).await;
    app.clock.advance(901);
    assert_eq!(
        app.introspect("acme", &client, token).await,
        json!({"active": false})
    );
}

#[tokio::test]
async fn revoked_and_disabled_users_tokens_go_inactive() {
    let (app, client) = acme().await;
    let token = app.client_token("acme", &client).await;
    assert_eq!(app.revoke("acme", &client, &token).await.status(), 200);
    assert_eq!(
        app.introspect("acme", &client, &token).await,
        json!({"active": false})
    );

    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    assert_eq!(
        app.introspect("acme", &client, &alice).await["active"],
        true
    );
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/users/alice/actions/disable"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.introspect("acme", &client, &alice).await,
        json!({"active": false})
    );
}

#[tokio::test]
async fn a_user_cannot_raise_its_own_roles() {
    let (app, client) = acme().await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let res = app
        .http
        .put(app.pool_url("acme", "/api/user-management/users/me"))
        .bearer_auth(&alice)
        .json(&json!({"attributes": {"email": "alice@example.com", "name": "Alice", "roles": ["admin"]}}))
        .send()
        .await
        .unwrap();
    assert_api_error(res, 403).await;
    assert_api_error(get_users(&app, &alice).await, 403).await;
}

#[tokio::test]
async fn bad_input_gets_4xx_with_the_error_body() {
    let (app, client) = acme().await;
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    let users = app.pool_url("acme", "/api/user-management/users");
    let post = |body: Vec<u8>, ct: &'static str| {
        app.http
            .post(&users)
            .bearer_auth(&admin)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    // Malformed JSON, wrong types, missing fields, invalid UTF-8, wrong media type.
    assert_api_error(
        post(b"{\"username\": ".to_vec(), "application/json")
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_api_error(
        post(
            br#"{"username": 5, "attributes": {}}"#.to_vec(),
            "application/json",
        )
        .await
        .unwrap(),
        400,
    )
    .await;
    assert_api_error(
        post(br#"{"username": "bob"}"#.to_vec(), "application/json")
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_api_error(
        post(b"{\"username\": \"\xff\xfe\"}".to_vec(), "application/json")
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_api_error(
        post(
            b"username=bob".to_vec(),
            "application/x-www-form-urlencoded",
        )
        .await
        .unwrap(),
        415,
    )
    .await;
    // A null member: no field is nullable, so it is refused by name, not read as absent.
    let body = json!({"username": "bob", "attributes": {"email": "b@example.com", "name": "B", "roles": [], "phone": null}});
    let err = assert_api_error(
        post(body.to_string().into_bytes(), "application/json")
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(
        err["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("attributes.phone: must not be null"),
        "{err}"
    );
    // Oversized: just over 64 KiB.
    let big = format!(
        r#"{{"username": "bob", "pad": "{}"}}"#,
        "x".repeat(65 * 1024)
    );
    assert_api_error(
        post(big.into_bytes(), "application/json").await.unwrap(),
        413,
    )
    .await;
    // A 129-character username in a body, and 2,049 characters in a path.
    let long = "u".repeat(129);
    let body = json!({"username": long, "attributes": {"email": "b@example.com", "name": "B", "roles": []}});
    assert_api_error(
        post(body.to_string().into_bytes(), "application/json")
            .await
            .unwrap(),
        400,
    )
    .await;
    let res = app
        .http
        .get(format!("{users}/{}", "u".repeat(2049)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_api_error(res, 400).await;
    // Unknown paths and methods.
    let res = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_api_error(res, 404).await;
    let res = app
        .http
        .get(app.pool_url("nosuchpool", "/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_api_error(res, 404).await;
    let res = app
        .http
        .patch(&users)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_api_error(res, 405).await;
    // Nothing was written: still the three users of the fixture.
    let res = get_users(&app, &admin).await;
    let listed: Value = res.json().await.unwrap();
    assert_eq!(listed["users"].as_array().unwrap().len(), 3);
    assert_eq!(app.audit_count("acme", "user.created").await, 3);
}

#[tokio::test]
async fn oauth_endpoints_reject_malformed_requests() {
    let (app, client) = acme().await;
    let token = app.pool_url("acme", "/oauth2/token");
    let res = app
        .http
        .post(&token)
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 400, "invalid_request").await;
    let res = app
        .http
        .post(&token)
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 400, "unsupported_grant_type").await;
    let res = app
        .http
        .post(&token)
        .basic_auth(&client.id, Some(&client.secret))
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 400, "invalid_request").await;
    // RFC 6749 §3.2 forbids repeating any parameter, also one Gatehouse does not read.
    let res = app
        .http
        .post(&token)
        .basic_auth(&client.id, Some(&client.secret))
        .body("grant_type=client_credentials&audience=a&audience=b")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn host_bound_pools_are_served_at_the_host_root() {
    let app = spawn_app().await;
    app.gh
        .create_pool(
            gatehouse_domain::ids::PoolSlug::parse("acme").unwrap(),
            Default::default(),
            vec![gatehouse_domain::pool::HostName::parse("acme.example.com").unwrap()],
            None,
            &Default::default(),
        )
        .await
        .unwrap();
    let client = app.create_client("acme", &[]).await;
    let res = app
        .http
        .post(app.url("/api/auth/oauth2/token"))
        .header("host", "acme.example.com")
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .post(app.url("/api/auth/oauth2/token"))
        .header("host", "other.example.com")
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn group_roles_grant_permissions_read_at_request_time() {
    let (app, client) = acme().await;
    app.create_user("acme", "bob", &[], "bob-password-12").await;
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    assert_api_error(get_users(&app, &alice).await, 403).await;

    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/groups"))
        .bearer_auth(&admin)
        .json(&json!({"name": "helpdesk", "description": "Help desk", "roles": ["support"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let set_groups = |groups: Value| {
        app.http
            .put(app.pool_url("acme", "/api/user-management/users/alice/groups"))
            .bearer_auth(&admin)
            .json(&json!({ "groups": groups }))
            .send()
    };
    assert_eq!(set_groups(json!(["helpdesk"])).await.unwrap().status(), 204);

    // The same token now carries the group's permissions: they are read per request.
    assert_eq!(get_users(&app, &alice).await.status(), 200);
    assert_eq!(impersonate(&app, &alice, "bob").await.status(), 200);
    assert_api_error(impersonate(&app, &alice, "ada").await, 403).await;

    assert_eq!(set_groups(json!([])).await.unwrap().status(), 204);
    assert_api_error(get_users(&app, &alice).await, 403).await;
}

#[tokio::test]
async fn deleting_a_user_revokes_its_tokens_and_impersonations() {
    let (app, client) = acme().await;
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let res = impersonate(&app, &admin, "alice").await;
    let as_alice = res.json::<Value>().await.unwrap()["attributes"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for t in [&alice, &as_alice] {
        assert_eq!(app.introspect("acme", &client, t).await["active"], true);
    }
    let res = app
        .http
        .delete(app.pool_url("acme", "/api/user-management/users/alice"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    for t in [&alice, &as_alice] {
        assert_eq!(
            app.introspect("acme", &client, t).await,
            json!({"active": false})
        );
    }
    // A new user of the same name does not revive them.
    app.create_user("acme", "alice", &[], "alice-password-2")
        .await;
    for t in [&alice, &as_alice] {
        assert_eq!(
            app.introspect("acme", &client, t).await,
            json!({"active": false})
        );
    }
}

#[tokio::test]
async fn events_made_under_impersonation_name_the_impersonator() {
    let (app, client) = acme().await;
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    let res = impersonate(&app, &admin, "sam").await;
    let as_sam = res.json::<Value>().await.unwrap()["attributes"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_api_error(impersonate(&app, &as_sam, "alice").await, 403).await;
    let res = app
        .http
        .get(app.pool_url("acme", "/api/audit/events?action=impersonation.denied"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let events: Value = res.json().await.unwrap();
    let denied = &events["events"][0];
    assert_eq!(denied["actor"]["username"], "sam");
    assert_eq!(denied["impersonator"]["username"], "ada");
    assert_eq!(denied["outcome"], "denied");
}

#[tokio::test]
async fn clients_that_hang_up_mid_request_leave_no_transaction_open() {
    let (app, client) = acme().await;
    let token = app.client_token("acme", &client).await;
    // Callers that give up after 1 to 20 ms: their requests are cut off wherever the server
    // is, often inside the impersonation's write transaction.
    for round in 0..40u64 {
        let impatient = reqwest::Client::builder()
            .timeout(std::time::Duration::from_micros(
                1000 + (round * 487) % 19_000,
            ))
            .build()
            .unwrap();
        let calls: Vec<_> = (0..16)
            .map(|_| {
                impatient
                    .post(app.pool_url("acme", "/api/user-management/users/alice/impersonate"))
                    .bearer_auth(&token)
                    .send()
            })
            .collect();
        for c in calls {
            let _ = c.await;
        }
    }
    // Writes still go through: no abandoned transaction holds the database.
    for _ in 0..5 {
        assert_eq!(impersonate(&app, &token, "alice").await.status(), 200);
    }
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/groups"))
        .bearer_auth(&admin)
        .json(&json!({"name": "after", "description": "written after the hang-ups"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}
