//! RFC 8693 token exchange: the client that authenticates at the token endpoint owns the
//! impersonation (the token's, the session's and the audit event's `client_id`, and the right
//! to revoke it), the actor token's client stays in `act`, and a failure of ours answers
//! `server_error` without a word of what failed.

use serde_json::{Value, json};
use sqlx::{Connection, Executor};

use crate::common::{ClientCreds, TestApp, assert_oauth_error, jwt_claims, spawn_app};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const USERNAME: &str = "urn:gatehouse:params:oauth:token-type:username";

/// `client` exchanges `actor` (an access token) for an impersonation of `subject` in `pool`.
async fn exchange(
    app: &TestApp,
    pool: &str,
    client: &ClientCreds,
    actor: &str,
    subject: &str,
) -> reqwest::Response {
    app.http
        .post(app.pool_url(pool, "/oauth2/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", EXCHANGE),
            ("actor_token", actor),
            ("actor_token_type", ACCESS_TOKEN),
            ("subject_token", subject),
            ("subject_token_type", USERNAME),
            ("reason", "ticket 4711"),
        ])
        .send()
        .await
        .unwrap()
}

/// The access token of a successful exchange.
async fn exchanged_token(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN);
    body["access_token"].as_str().unwrap().to_owned()
}

/// `path` of the pool's admin API, read with `token`.
async fn admin_get(app: &TestApp, pool: &str, token: &str, path: &str) -> Value {
    let res = app
        .http
        .get(app.pool_url(pool, path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Asserts that the impersonation of `username` is recorded against `client`: its session and
/// its `impersonation.started` event (read with `admin`, a token that may read both).
async fn assert_recorded_against(
    app: &TestApp,
    pool: &str,
    admin: &str,
    username: &str,
    client: &ClientCreds,
) {
    let sessions = admin_get(
        app,
        pool,
        admin,
        &format!("/api/user-management/users/{username}/sessions"),
    )
    .await;
    let sessions: Vec<&Value> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "impersonation")
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["client_id"], client.id.as_str());

    let events = admin_get(
        app,
        pool,
        admin,
        "/api/audit/events?action=impersonation.started",
    )
    .await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["subject"], username);
    assert_eq!(events[0]["client_id"], client.id.as_str());
}

/// An app client of `acme` with these grant types, created by `admin` through the API.
async fn client_with_grants(app: &TestApp, admin: &str, grant_types: &[&str]) -> ClientCreds {
    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/app-clients"))
        .bearer_auth(admin)
        .json(&json!({"data": {"type": "app-client",
            "attributes": {"name": "support desk", "grant_types": grant_types}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    ClientCreds {
        id: created["data"]["id"].as_str().unwrap().to_owned(),
        secret: created["data"]["attributes"]["secret"]
            .as_str()
            .unwrap()
            .to_owned(),
    }
}

/// A pool `acme` with an administrator `ada` (signed in through `web`, the client users sign
/// in through), a user `alice`, and `desk`, a support tool that may only exchange tokens.
struct Acme {
    app: TestApp,
    web: ClientCreds,
    desk: ClientCreds,
    ada: String,
}

async fn acme() -> Acme {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &["admin"], "ada-password-123")
        .await;
    app.create_user("acme", "alice", &[], "alice-password-1")
        .await;
    let web = app.create_client("acme", &[]).await;
    let ada = app.sign_in("acme", &web, "ada", "ada-password-123").await;
    let desk = client_with_grants(&app, &ada, &[EXCHANGE]).await;
    Acme {
        app,
        web,
        desk,
        ada,
    }
}

#[tokio::test]
async fn the_exchanging_client_owns_the_impersonation_and_may_revoke_it() {
    let Acme {
        app,
        web,
        desk,
        ada,
    } = acme().await;

    // `desk` exchanges a token issued to `web`.
    let token = exchanged_token(exchange(&app, "acme", &desk, &ada, "alice").await).await;
    let claims = jwt_claims(&token);
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["client_id"], desk.id.as_str());
    assert_eq!(claims["act"]["username"], "ada");
    assert_eq!(claims["act"]["client_id"], web.id.as_str());
    assert_recorded_against(&app, "acme", &ada, "alice", &desk).await;
    let active = app.introspect("acme", &desk, &token).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["client_id"], desk.id.as_str());

    // The actor token's client does not own it...
    let res = app.revoke("acme", &web, &token).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    assert_eq!(app.introspect("acme", &desk, &token).await["active"], true);

    // ...the client that exchanged it does, and revoking it ends the impersonation.
    let res = app.revoke("acme", &desk, &token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.introspect("acme", &desk, &token).await,
        json!({"active": false})
    );
    assert_eq!(app.audit_count("acme", "impersonation.ended").await, 1);
}

#[tokio::test]
async fn a_pool_client_may_revoke_what_it_exchanged_for_a_staff_actor() {
    let Acme { app, desk, .. } = acme().await;
    app.create_user("staff", "root", &["admin"], "staff-admin-password-1")
        .await;
    let staff_client = app.create_client("staff", &[]).await;
    let root = app
        .sign_in("staff", &staff_client, "root", "staff-admin-password-1")
        .await;

    let token = exchanged_token(exchange(&app, "acme", &desk, &root, "alice").await).await;
    let claims = jwt_claims(&token);
    assert_eq!(claims["iss"], app.issuer("acme"));
    assert_eq!(claims["client_id"], desk.id.as_str());
    assert_eq!(claims["act"]["username"], "root");
    assert_eq!(claims["act"]["pool"], "staff");
    assert_eq!(claims["act"]["client_id"], staff_client.id.as_str());
    assert_recorded_against(&app, "acme", &root, "alice", &desk).await;

    let res = app.revoke("acme", &desk, &token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.introspect("acme", &desk, &token).await,
        json!({"active": false})
    );
}

#[tokio::test]
async fn only_clients_holding_the_grant_may_exchange() {
    let Acme { app, ada, .. } = acme().await;
    let service = client_with_grants(&app, &ada, &["client_credentials"]).await;
    let res = exchange(&app, "acme", &service, &ada, "alice").await;
    assert_oauth_error(res, 400, "unauthorized_client").await;
    assert_eq!(app.audit_count("acme", "impersonation.started").await, 0);
}

#[tokio::test]
async fn an_actor_token_that_proves_nobody_is_invalid_grant() {
    let Acme {
        app,
        web,
        desk,
        ada,
    } = acme().await;
    let res = exchange(&app, "acme", &desk, "not-a-token", "alice").await;
    assert_oauth_error(res, 400, "invalid_grant").await;

    // Revoked by the client it was issued to: it no longer proves ada.
    let res = app.revoke("acme", &web, &ada).await;
    assert_eq!(res.status(), 200);
    let res = exchange(&app, "acme", &desk, &ada, "alice").await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("actor_token: "),
        "{body}"
    );
    assert_eq!(app.audit_count("acme", "impersonation.started").await, 0);
}

#[tokio::test]
async fn a_database_failure_during_token_exchange_answers_500_without_its_text() {
    let Acme { app, desk, ada, .. } = acme().await;
    exchanged_token(exchange(&app, "acme", &desk, &ada, "alice").await).await;

    // Break the database under the running server, behind its back: the table that checking
    // the actor token reads (sessions: ada's token names hers) is gone, while the pool and
    // the client it reads first are still there. Closing the whole connection pool would fail
    // those first reads instead, or not at all while they are cached.
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .unwrap();
    // PostgreSQL drops the foreign keys that point at it too (federated_sessions' among them).
    let drop = if app.database_url.starts_with("postgres") {
        "DROP TABLE sessions CASCADE"
    } else {
        "DROP TABLE sessions"
    };
    conn.execute(drop).await.unwrap();
    conn.close().await.unwrap();

    let res = exchange(&app, "acme", &desk, &ada, "alice").await;
    assert_eq!(res.status(), 500);
    assert_eq!(
        res.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    let body = res.text().await.unwrap();
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"], "server_error", "{body}");
    let lower = body.to_ascii_lowercase();
    for word in [
        "sqlite",
        "postgres",
        "pool",
        "connection",
        "database",
        "revoked_tokens",
        "table",
        "relation",
    ] {
        assert!(!lower.contains(word), "{word:?} in {body}");
    }
}
