//! The admin API over HTTP: users, groups, app clients, settings, sessions, sign-out and the
//! audit log, with the reference's shapes and status codes, and the rules that keep callers
//! from handing out power they do not hold or locking themselves out.

mod app_clients;
mod audit;
mod groups;
mod identity_providers;
mod settings;
mod users;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{ClientCreds, TestApp, spawn_app};

pub const USERS: &str = "/api/user-management/users";
pub const GROUPS: &str = "/api/user-management/groups";
pub const CLIENTS: &str = "/api/user-management/app-clients";

/// A pool `acme` with an administrator `ada`, a user `alice`, and a sign-in client; returns
/// the administrator's token too.
pub async fn acme() -> (TestApp, ClientCreds, String) {
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

pub async fn call(
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

pub async fn json_of(res: reqwest::Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let body = res.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

pub fn user_body(username: &str, roles: &[&str]) -> Value {
    json!({"username": username, "attributes": {
        "email": format!("{username}@acme.example"), "name": username, "roles": roles}})
}

/// A `next` link points at the public URL; the test server listens elsewhere.
pub fn follow(app: &TestApp, next: &str) -> String {
    assert!(next.starts_with(&app.public_url), "{next}");
    next.replacen(&app.public_url, &app.addr, 1)
}
