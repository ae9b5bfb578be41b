//! The product page's flow, end to end over HTTP: an app client gets a token with its id and
//! secret, impersonates a user, and uses the returned token as that user.

use serde_json::{Value, json};

use crate::common::{Backend, ClientCreds, jwt_header, spawn_app, spawn_app_on, verify_with_jose};

async fn product_page_flow(backend: Backend) {
    let app = spawn_app_on(backend).await;

    // Bootstrap: the first staff administrator, created the way the CLI does.
    app.create_user("staff", "root", &["admin"], "staff-admin-password-1")
        .await;
    let staff_client = app.create_client("staff", &[]).await;
    let staff = app
        .sign_in("staff", &staff_client, "root", "staff-admin-password-1")
        .await;

    // A client pool, created over the API by staff.
    let res = app
        .http
        .post(app.url("/api/pools"))
        .bearer_auth(&staff)
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());

    // An app client with user:Impersonate, created by staff in the client pool.
    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/app-clients"))
        .bearer_auth(&staff)
        .header("content-type", "application/vnd.api+json")
        .body(
            json!({"data": {"type": "app-client", "attributes": {
                "name": "support console", "scopes": ["user:Impersonate"]}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/vnd.api+json")
    );
    let body: Value = res.json().await.unwrap();
    let client = ClientCreds {
        id: body["data"]["id"].as_str().unwrap().to_owned(),
        secret: body["data"]["attributes"]["secret"]
            .as_str()
            .unwrap()
            .to_owned(),
    };

    // An administrator and a user.
    for (username, roles) in [("ada", json!(["admin"])), ("alice", json!([]))] {
        let res = app
            .http
            .post(app.pool_url("acme", "/api/user-management/users"))
            .bearer_auth(&staff)
            .json(&json!({"username": username, "attributes": {
                "email": format!("{username}@acme.example"), "name": username, "roles": roles}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }

    // Step 1: a token from the client's id and secret.
    let client_token = app.client_token("acme", &client).await;

    // Step 2: the user's credentials from the impersonate endpoint.
    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/users/alice/impersonate"))
        .bearer_auth(&client_token)
        .json(&json!({"reason": "reproduce ticket 4711"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], "alice");
    assert_eq!(body["type"], "access-token");
    let token = body["attributes"]["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("eyJ"));
    assert_eq!(body["attributes"]["impersonator"], client.id.as_str());
    let impersonation_id = body["attributes"]["impersonation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let expires_in = body["attributes"]["expires_in"].as_u64().unwrap();
    assert!(expires_in > 0 && expires_in <= 900);

    // The token verifies against the published JWKS with an independent JOSE library.
    let verified = verify_with_jose(&app, "acme", &token).await.unwrap();
    assert_eq!(verified["header"]["typ"], "at+jwt");
    assert_eq!(verified["header"]["alg"], "ES256");
    let claims = &verified["payload"];
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["iss"], app.issuer("acme"));
    assert_eq!(claims["act"]["sub"], client.id.as_str());
    assert_eq!(claims["act"]["client_id"], client.id.as_str());
    assert_eq!(claims["act"]["pool"], "acme");
    assert_eq!(claims["sid"], impersonation_id.as_str());
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 900);

    // Step 3: the token acts as the user on ordinary APIs...
    let res = app
        .http
        .get(app.pool_url("acme", "/oauth2/userinfo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["username"], "alice");

    // ...but the admin API refuses it, even for an impersonated administrator.
    let res = app
        .http
        .get(app.pool_url("acme", "/api/user-management/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // Introspection shows the impersonation while it lasts.
    let active = app.introspect("acme", &client, &token).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["act"]["sub"], client.id.as_str());

    // The start is in the audit log, with its reason.
    let res = app
        .http
        .get(app.pool_url("acme", "/api/audit/events?action=impersonation.started"))
        .bearer_auth(&staff)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let events: Value = res.json().await.unwrap();
    let started = &events["events"][0];
    assert_eq!(started["subject"], "alice");
    assert_eq!(started["actor"]["id"], client.id.as_str());
    assert_eq!(started["details"]["reason"], "reproduce ticket 4711");

    // Ending the impersonation makes its token inactive at once.
    let res = app
        .http
        .delete(app.pool_url(
            "acme",
            &format!("/api/user-management/impersonations/{impersonation_id}"),
        ))
        .bearer_auth(&client_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let inactive = app.introspect("acme", &client, &token).await;
    assert_eq!(inactive, json!({"active": false}));
    let res = app
        .http
        .get(app.pool_url("acme", "/oauth2/userinfo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(app.audit_count("acme", "impersonation.ended").await, 1);
}

#[tokio::test]
async fn product_page_flow_on_sqlite() {
    product_page_flow(Backend::Sqlite).await;
}

#[tokio::test]
async fn product_page_flow_on_postgres() {
    product_page_flow(Backend::Postgres).await;
}

#[tokio::test]
async fn all_three_impersonation_forms_mint_the_same_token() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    app.create_user("acme", "alice", &[], "alice-password-1")
        .await;
    let client = app.create_client("acme", &["user:Impersonate"]).await;
    let admin = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;

    // The reference's body form, called by an administrator's user token.
    let res = app
        .http
        .post(app.pool_url("acme", "/api/auth/impersonate"))
        .bearer_auth(&admin)
        .json(&json!({"username": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let by_body: Value = res.json().await.unwrap();
    let t1 = by_body["access_token"].as_str().unwrap();

    // RFC 8693 token exchange.
    let res = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("actor_token", admin.as_str()),
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
    assert_eq!(res.status(), 200);
    let exchanged: Value = res.json().await.unwrap();
    assert_eq!(
        exchanged["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert!(exchanged.get("refresh_token").is_none());
    let t2 = exchanged["access_token"].as_str().unwrap();

    for t in [t1, t2] {
        let claims = verify_with_jose(&app, "acme", t).await.unwrap()["payload"].clone();
        assert_eq!(claims["username"], "alice");
        assert_eq!(claims["act"]["username"], "ada");
        assert_eq!(claims["act"]["pool"], "acme");
    }
    assert_eq!(app.audit_count("acme", "impersonation.started").await, 2);
}

#[tokio::test]
async fn pools_can_sign_with_rs256_and_eddsa() {
    let app = spawn_app().await;
    app.create_user("staff", "root", &["admin"], "staff-admin-password-1")
        .await;
    let staff_client = app.create_client("staff", &[]).await;
    let staff = app
        .sign_in("staff", &staff_client, "root", "staff-admin-password-1")
        .await;
    for (pool, alg, kty) in [("rsa-pool", "RS256", "RSA"), ("ed-pool", "EdDSA", "OKP")] {
        let res = app
            .http
            .post(app.url("/api/pools"))
            .bearer_auth(&staff)
            .json(&json!({"name": pool, "alg": alg}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let jwks: Value = app
            .http
            .get(app.pool_url(pool, "/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let client = app.create_client(pool, &[]).await;
        let token = app.client_token(pool, &client).await;
        // The key that signed it (the JWKS also has the pool's RS256 ID-token key).
        let signer = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == jwt_header(&token)["kid"])
            .unwrap();
        assert_eq!(signer["kty"], kty);
        let verified = verify_with_jose(&app, pool, &token).await.unwrap();
        assert_eq!(verified["header"]["alg"], alg);
        assert_eq!(verified["payload"]["client_id"], client.id.as_str());
    }
    let res = app
        .http
        .post(app.url("/api/pools"))
        .bearer_auth(&staff)
        .json(&json!({"name": "hs-pool", "alg": "HS256"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn staff_work_in_client_pools_until_the_pool_turns_staff_access_off() {
    let app = spawn_app().await;
    app.create_user("staff", "sue", &["support"], "sue-staff-password-1")
        .await;
    let staff_client = app.create_client("staff", &[]).await;
    let sue = app
        .sign_in("staff", &staff_client, "sue", "sue-staff-password-1")
        .await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    app.create_user("acme", "alice", &[], "alice-password-1")
        .await;
    let client = app.create_client("acme", &[]).await;
    let ada = app
        .sign_in("acme", &client, "ada", "ada-password-123")
        .await;
    let impersonate = |token: String| {
        app.http
            .post(app.pool_url("acme", "/api/user-management/users/alice/impersonate"))
            .bearer_auth(token)
            .send()
    };

    // A staff support agent impersonates in a client pool with its single staff profile.
    let res = impersonate(sue.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["attributes"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let claims = verify_with_jose(&app, "acme", &token).await.unwrap()["payload"].clone();
    assert_eq!(claims["act"]["username"], "sue");
    assert_eq!(claims["act"]["pool"], "staff");
    // Support may read users here, but not change them.
    let users = app.pool_url("acme", "/api/user-management/users");
    let res = app.http.get(&users).bearer_auth(&sue).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .delete(format!("{users}/alice"))
        .bearer_auth(&sue)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // The pool's administrator turns staff access off: staff tokens are refused at once.
    let setting = app.pool_url("acme", "/api/auth/settings/staff-access");
    let res = app
        .http
        .put(&setting)
        .bearer_auth(&ada)
        .json(&json!({"StaffAccessEnabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(impersonate(sue.clone()).await.unwrap().status(), 401);
    let res = app
        .http
        .get(&setting)
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"StaffAccessEnabled": false})
    );

    let res = app
        .http
        .put(&setting)
        .bearer_auth(&ada)
        .json(&json!({"StaffAccessEnabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(impersonate(sue).await.unwrap().status(), 200);
}
