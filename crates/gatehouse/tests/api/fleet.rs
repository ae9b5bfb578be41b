//! The promise, end to end: two Gatehouse instances on one PostgreSQL database, and three
//! services built on `gatehouse-verify` (the example service, as separate processes) that
//! follow the revocation feed of different instances. A user's still-unexpired token is
//! refused by every service once it is signed out, its impersonation ended, the user disabled,
//! or its refresh token reused — acted through either instance — and after an instance
//! restarts mid-stream, its services resume from their cursor and miss nothing. The services
//! call Gatehouse for the feed only, never per request. (How fast they refuse is measured by
//! `bench/run.py`, against its one-second budget.)

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::code_flow::web_client;
use crate::common::*;

const USERS: &str = "/api/user-management/users";

/// The example service's binary, built once for the suite.
fn example_binary() -> &'static std::path::Path {
    static BUILT: OnceLock<std::path::PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            // The workspace's features, as the suite is built with: the build is then the
            // suite's own (nothing to do) instead of one with other features.
            .args([
                "build",
                "--locked",
                "--workspace",
                "--all-features",
                "--example",
                "protected_service",
            ])
            .status()
            .unwrap();
        assert!(status.success(), "building the example service failed");
        // The test binary is target/{profile}/deps/api-…; the example sits beside deps.
        let exe = std::env::current_exe().unwrap();
        exe.parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("examples")
            .join("protected_service")
    })
}

/// One example service, reaching the issuer's host at one instance.
struct Service {
    child: tokio::process::Child,
    base: String,
    http: reqwest::Client,
}

impl Service {
    async fn start(issuer: &str, instance: &str, reader: &ClientCreds) -> Service {
        let host = reqwest::Url::parse(issuer).unwrap();
        let at = instance.trim_start_matches("http://");
        let mut child = tokio::process::Command::new(example_binary())
            .args([
                "--issuer",
                issuer,
                "--client-id",
                &reader.id,
                "--client-secret",
                &reader.secret,
                "--listen",
                "127.0.0.1:0",
                "--resolve",
                &format!("{}={at}", host.host_str().unwrap()),
            ])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next_line().await.unwrap().unwrap();
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the service said {first:?}"))
            .to_owned();
        Service {
            child,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    async fn status(&self, token: &str) -> u16 {
        self.http
            .get(format!("{}/whoami", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn health(&self) -> Value {
        self.http
            .get(format!("{}/health", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Waits (at most 20 s, a deadline for a hung test, not a budget) until every service follows
/// the feed's stream.
async fn all_streaming(services: &[Service]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for s in services {
        loop {
            let health = s.health().await;
            if health["state"] == "streaming" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a service never streamed: {health}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Every service accepts `token`, and asking costs no call to Gatehouse.
async fn all_accept(services: &[Service], token: &str) {
    for s in services {
        let before = s.health().await["calls"].clone();
        for _ in 0..20 {
            assert_eq!(s.status(token).await, 200, "{}", s.health().await);
        }
        let after = s.health().await["calls"].clone();
        assert_eq!(
            before, after,
            "twenty verifications made calls to Gatehouse"
        );
    }
}

/// Every service refuses `token`, once its feed carried the revocation (polled; the deadline
/// only keeps a broken test from hanging).
async fn all_refuse(services: &[Service], token: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for s in services {
        while s.status(token).await != 401 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: a service still accepts the token: {}",
                s.health().await
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for s in services {
        assert_eq!(s.health().await["calls"]["introspections"], 0, "{what}");
    }
}

async fn post(http: &reqwest::Client, url: String, token: &str) -> u16 {
    http.post(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn services_on_two_instances_refuse_revoked_tokens_and_resume_after_a_restart() {
    let app = spawn_app_on(Backend::Postgres).await;
    let (b_addr, b_stop) = app.second_instance().await;
    let (_, ada) = app.acme_with_ada().await;
    let web = web_client(&app, "acme", &["authorization_code", "refresh_token"]).await;
    let reader = app
        .create_client("acme", &["auth:RetrieveRevocations"])
        .await;
    let impersonator = app.create_client("acme", &["user:Impersonate"]).await;
    let issuer = app.issuer("acme");
    // Through instance A (the app's address) or instance B.
    let at_a = |path: &str| app.pool_url("acme", path);
    let at_b = |path: &str| at_a(path).replacen(&app.addr, &b_addr, 1);

    let mut services = vec![
        Service::start(&issuer, &app.addr, &reader).await,
        Service::start(&issuer, &app.addr, &reader).await,
        Service::start(&issuer, &b_addr, &reader).await,
    ];
    all_streaming(&services).await;

    let sign_in = || async {
        let res = app
            .http
            .post(at_a("/api/auth/initiate"))
            .json(&json!({"flow": "USER_PASSWORD", "client_id": web.id,
                "client_secret": web.secret, "username": "alice",
                "password": "alice-password-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()
    };
    // A user-wide revocation refuses tokens issued up to its second: each scenario signs in
    // a second later than the one before.
    let next_second = || app.clock.advance(2);

    // 1. Signed out through instance B: the services of A and of B refuse.
    let token = sign_in().await["access_token"].as_str().unwrap().to_owned();
    all_accept(&services, &token).await;
    assert_eq!(
        post(
            &app.http,
            at_b(&format!("{USERS}/alice/actions/sign-out")),
            &ada
        )
        .await,
        204
    );
    all_refuse(&services, &token, "sign-out").await;

    // 2. An impersonation ended through instance A.
    next_second();
    let client_token = app.client_token("acme", &impersonator).await;
    let impersonated = app.impersonate("acme", &client_token, "alice").await;
    all_accept(&services, &impersonated).await;
    let sid = jwt_claims(&impersonated)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .http
        .delete(at_a(&format!("/api/user-management/impersonations/{sid}")))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    all_refuse(&services, &impersonated, "impersonation ended").await;

    // 3. A reused refresh token, presented at instance B, ends its sign-in.
    next_second();
    let signed_in = sign_in().await;
    let access = signed_in["access_token"].as_str().unwrap().to_owned();
    let refresh = signed_in["refresh_token"].as_str().unwrap().to_owned();
    all_accept(&services, &access).await;
    let refresh_at_b = |token: String| {
        let app = &app;
        let web = &web;
        let url = at_b("/api/auth/initiate");
        async move {
            app.http
                .post(url)
                .json(&json!({"flow": "REFRESH_TOKEN", "client_id": web.id,
                    "client_secret": web.secret, "refresh_token": token}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(refresh_at_b(refresh.clone()).await, 200);
    assert_ne!(refresh_at_b(refresh).await, 200, "a reused refresh token");
    all_refuse(&services, &access, "refresh token reused").await;

    // 4. Instance B stops mid-stream; while it is down the user is disabled through A, and
    // B's service cannot hear of it. B restarts where it was: its service resumes from its
    // cursor and refuses too.
    next_second();
    let token = sign_in().await["access_token"].as_str().unwrap().to_owned();
    all_accept(&services, &token).await;
    let cursor_before = services[2].health().await["cursor"].as_i64().unwrap();
    drop(b_stop);
    // B is down once its address refuses connections.
    let b_listen = b_addr.trim_start_matches("http://").to_owned();
    loop {
        if tokio::net::TcpStream::connect(&b_listen).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        post(
            &app.http,
            at_a(&format!("{USERS}/alice/actions/disable")),
            &ada
        )
        .await,
        204
    );
    all_refuse(&services[..2], &token, "disabled, A's services").await;
    let (_b_again, _b_stop_again) = app.instance_on(&b_listen).await;
    all_refuse(
        &services[2..],
        &token,
        "disabled, B's service after B's restart",
    )
    .await;
    let health = services[2].health().await;
    assert!(
        health["cursor"].as_i64().unwrap() > cursor_before,
        "resumed past its cursor: {health}"
    );
    assert!(
        health["calls"]["snapshot"] == 1,
        "resumed from its cursor, without reading the snapshot again: {health}"
    );
    assert_eq!(health["sets_rejected"], 0, "{health}");

    for s in &mut services {
        let _ = s.child.kill().await;
    }
}
