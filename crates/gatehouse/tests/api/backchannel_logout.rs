//! OpenID Connect Back-Channel Logout: registration, logout tokens (checked by npm `jose`),
//! delivery with retries from the security event log, the delivery status in the admin API,
//! the outbound policy, and a real relying party (npm `express-openid-connect` behind Debian's
//! Chromium) whose session ends on our logout token.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use gatehouse_domain::client::ClientType;
use gatehouse_domain::ids::PoolSlug;
use gatehouse_service::clients::NewAppClient;
use serde_json::{Value, json};

use crate::browser::peers_dir;
use crate::common::{
    Backend, ClientCreds, TestApp, assert_api_error, jwt_claims, jwt_header, spawn_app,
    spawn_app_with, start_talking_peer, verify_logout_token_with_jose,
};

const USERS: &str = "/api/user-management/users";
const CLIENTS: &str = "/api/user-management/app-clients";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a test waits for the worker (it looks every second).
const PATIENCE: Duration = Duration::from_secs(20);

/// A relying party's back-channel logout endpoint: records what it receives and answers with
/// the statuses it is given, then 204. `/redirected` is where its redirects point.
#[derive(Clone, Default)]
struct Receiver {
    inner: Arc<Mutex<ReceiverState>>,
}

#[derive(Default)]
struct ReceiverState {
    answers: VecDeque<u16>,
    /// (content type, body) of each POST to `/bcl`.
    received: Vec<(String, String)>,
    redirected: usize,
}

impl Receiver {
    /// Starts it on a loopback port; returns it and its base URL.
    async fn start(answers: &[u16]) -> (Receiver, String) {
        let receiver = Receiver::default();
        receiver.inner.lock().unwrap().answers = answers.iter().copied().collect();
        let app = axum::Router::new()
            .route("/bcl", post(receive))
            .route("/redirected", post(redirected).get(redirected))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, base)
    }

    fn received(&self) -> Vec<(String, String)> {
        self.inner.lock().unwrap().received.clone()
    }

    fn redirected(&self) -> usize {
        self.inner.lock().unwrap().redirected
    }

    /// The logout tokens received so far.
    fn tokens(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|(_, body)| {
                url::form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "logout_token")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            })
            .collect()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> Response {
    let mut state = r.inner.lock().unwrap();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    state.received.push((content_type, body));
    match state.answers.pop_front() {
        Some(302) => (
            StatusCode::FOUND,
            [(header::LOCATION, "/redirected")],
            "moved",
        )
            .into_response(),
        Some(status) => (
            StatusCode::from_u16(status).unwrap(),
            format!("answer {status}"),
        )
            .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn redirected(State(r): State<Receiver>) -> StatusCode {
    r.inner.lock().unwrap().redirected += 1;
    StatusCode::NO_CONTENT
}

/// A client of `pool` registered (by the operator) with this back-channel logout URI.
async fn bcl_client(app: &TestApp, pool: &str, uri: &str) -> ClientCreds {
    let pool = app.gh.pool(&PoolSlug::parse(pool).unwrap()).await.unwrap();
    let (client, secret) = app
        .gh
        .create_app_client_as_operator(
            &pool,
            NewAppClient {
                name: "relying party".to_owned(),
                backchannel_logout_uri: Some(uri.to_owned()),
                ..NewAppClient::default()
            },
        )
        .await
        .unwrap();
    ClientCreds {
        id: client.client_id.to_string(),
        secret: secret.unwrap().expose().to_owned(),
    }
}

/// The client's deliveries as the admin API lists them (newest first).
async fn deliveries(app: &TestApp, token: &str, client: &str) -> Vec<Value> {
    let res = app
        .http
        .get(app.pool_url(
            "acme",
            &format!("{CLIENTS}/{client}/backchannel-logout/deliveries"),
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["data"].as_array().unwrap().clone()
}

/// Waits until the newest delivery to `client` satisfies `done`; returns it.
async fn wait_for_delivery(
    app: &TestApp,
    token: &str,
    client: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(newest) = deliveries(app, token, client).await.first()
            && done(&newest["attributes"])
        {
            return newest["attributes"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery {what}: {:#?}",
            deliveries(app, token, client).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post_admin(app: &TestApp, path: &str, token: &str) -> u16 {
    app.http
        .post(app.pool_url("acme", path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The user id of `alice` in `acme` (the `sub` of her tokens).
async fn alice_id(app: &TestApp) -> String {
    let client = app.create_client("acme", &[]).await;
    let token = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    jwt_claims(&token)["sub"].as_str().unwrap().to_owned()
}

/// `YYYY-MM-DDTHH:MM:SSZ` as Unix seconds.
fn unix_secs(rfc3339: &str) -> i64 {
    let n = |range: std::ops::Range<usize>| rfc3339[range].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3_600 + n(14..16) * 60 + n(17..19)
}

#[tokio::test]
async fn discovery_advertises_backchannel_logout() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    let meta: Value = app
        .http
        .get(app.pool_url("acme", "/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["backchannel_logout_supported"], true);
    assert_eq!(meta["backchannel_logout_session_supported"], true);
}

#[tokio::test]
async fn registration_checks_the_backchannel_logout_uri() {
    let app = spawn_app().await;
    let (_, ada) = app.acme_with_ada().await;
    let create = |attributes: Value| {
        app.http
            .post(app.pool_url("acme", CLIENTS))
            .bearer_auth(&ada)
            .json(&json!({"data": {"type": "app-client", "attributes": attributes}}))
            .send()
    };
    for bad in [
        json!({"name": "rp", "backchannel_logout_uri": "not a url"}),
        json!({"name": "rp", "backchannel_logout_uri": "ftp://127.0.0.1/bcl"}),
        json!({"name": "rp", "backchannel_logout_uri": "http://127.0.0.1/bcl#frag"}),
        json!({"name": "rp", "backchannel_logout_uri": "http://user:pw@127.0.0.1/bcl"}),
        json!({"name": "rp", "backchannel_logout_uri": "/relative"}),
        json!({"name": "rp", "backchannel_logout_uri": format!("http://127.0.0.1/{}", "a".repeat(2100))}),
        // A private address outside outbound.allow (the tests allow 127.0.0.0/8 only).
        json!({"name": "rp", "backchannel_logout_uri": "http://10.1.2.3/bcl"}),
        json!({"name": "rp", "backchannel_logout_uri": "http://169.254.169.254/latest"}),
        json!({"name": "rp", "backchannel_logout_session_required": true}),
        json!({"name": "rp", "backchannel_logout_uri": 5}),
        json!({"name": "rp", "backchannel_logout_uri": "http://127.0.0.1/bcl", "backchannel_logout_session_required": "yes"}),
    ] {
        let body = assert_api_error(create(bad.clone()).await.unwrap(), 400).await;
        assert!(body["errors"][0]["detail"].is_string(), "{bad}: {body}");
    }
    let res = create(json!({
        "name": "rp",
        "backchannel_logout_uri": "http://127.0.0.1:9/bcl",
        "backchannel_logout_session_required": true,
    }))
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let attributes = &body["data"]["attributes"];
    assert_eq!(
        attributes["backchannel_logout_uri"],
        "http://127.0.0.1:9/bcl"
    );
    assert_eq!(attributes["backchannel_logout_session_required"], true);
    let id = body["data"]["id"].as_str().unwrap();
    let read: Value = app
        .http
        .get(app.pool_url("acme", &format!("{CLIENTS}/{id}")))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        read["data"]["attributes"]["backchannel_logout_uri"],
        "http://127.0.0.1:9/bcl"
    );
    // No deliveries yet; bad limits and unknown clients are refused.
    assert!(deliveries(&app, &ada, id).await.is_empty());
    let url = |q: &str| {
        app.pool_url(
            "acme",
            &format!("{CLIENTS}/{id}/backchannel-logout/deliveries{q}"),
        )
    };
    for q in ["?limit=0", "?limit=101", "?limit=x", "?colour=red"] {
        let res = app.http.get(url(q)).bearer_auth(&ada).send().await.unwrap();
        assert_api_error(res, 400).await;
    }
    let res = app
        .http
        .get(app.pool_url(
            "acme",
            &format!("{CLIENTS}/nosuchclient/backchannel-logout/deliveries"),
        ))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_api_error(res, 404).await;
    let res = app.http.get(url("")).send().await.unwrap();
    assert_api_error(res, 401).await;
}

#[tokio::test]
async fn sign_out_and_disable_send_logout_tokens_that_jose_accepts() {
    let app = spawn_app().await;
    let (_, ada) = app.acme_with_ada().await;
    let (receiver, base) = Receiver::start(&[]).await;
    let rp = bcl_client(&app, "acme", &format!("{base}/bcl")).await;
    let alice_id = alice_id(&app).await;

    // Global sign-out of alice ends her session with the relying party.
    let token = app.sign_in("acme", &rp, "alice", "alice-password-1").await;
    let sid = jwt_claims(&token)["sid"].as_str().unwrap().to_owned();
    assert_eq!(
        post_admin(&app, &format!("{USERS}/alice/actions/sign-out"), &ada).await,
        204
    );
    let delivered = wait_for_delivery(&app, &ada, &rp.id, "delivered", |d| {
        d["state"] == "delivered"
    })
    .await;
    assert_eq!(delivered["status"], 204);
    assert_eq!(delivered["attempts"], 1);
    assert_eq!(delivered["sid"], sid.as_str());
    assert_eq!(delivered["sub"], alice_id.as_str());
    assert!(delivered["next_attempt_at"].is_null());

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].0, "application/x-www-form-urlencoded");
    let logout_token = &receiver.tokens()[0];
    let verified = verify_logout_token_with_jose(&app, "acme", logout_token)
        .await
        .unwrap();
    let (header, claims) = (&verified["header"], &verified["payload"]);
    assert_eq!(header["typ"], "logout+jwt");
    assert_eq!(header["alg"], "RS256");
    // An RSA key of the pool's JWKS (its ID-token key: access tokens are ES256 here).
    let jwks: Value = app
        .http
        .get(app.pool_url("acme", "/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap();
    assert_eq!(key["kty"], "RSA");
    assert_ne!(header["kid"], jwt_header(&token)["kid"]);
    assert_eq!(claims["iss"], app.issuer("acme"));
    assert_eq!(claims["aud"], rp.id.as_str());
    assert_eq!(claims["sub"], alice_id.as_str());
    assert_eq!(claims["sid"], sid.as_str());
    assert_eq!(claims["events"], json!({ EVENT: {} }));
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 20));
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(exp > iat && exp - iat <= 120, "{claims}");
    assert!(claims.get("nonce").is_none());
    // Not a token of any other kind: no access-token or ID-token check accepts it.
    assert_eq!(app.userinfo_status("acme", logout_token).await, 401);

    // Disabling alice ends her new session with the relying party too.
    let token = app.sign_in("acme", &rp, "alice", "alice-password-1").await;
    let second_sid = jwt_claims(&token)["sid"].as_str().unwrap().to_owned();
    assert_eq!(
        post_admin(&app, &format!("{USERS}/alice/actions/disable"), &ada).await,
        204
    );
    let delivered = wait_for_delivery(&app, &ada, &rp.id, "for the disable", |d| {
        d["sid"] == second_sid.as_str() && d["state"] == "delivered"
    })
    .await;
    assert_eq!(delivered["sub"], alice_id.as_str());
    let tokens = receiver.tokens();
    assert_eq!(tokens.len(), 2);
    let claims = verify_logout_token_with_jose(&app, "acme", &tokens[1])
        .await
        .unwrap()["payload"]
        .clone();
    assert_eq!(claims["sid"], second_sid.as_str());
    assert_ne!(claims["jti"], jwt_claims(&tokens[0])["jti"]);
    // Only sessions of this client: ada's own sign-in (another client) went nowhere.
    assert_eq!(deliveries(&app, &ada, &rp.id).await.len(), 2);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_delivered() {
    let app = spawn_app().await;
    let (_, ada) = app.acme_with_ada().await;
    let (receiver, base) = Receiver::start(&[503, 500, 429]).await;
    let rp = bcl_client(&app, "acme", &format!("{base}/bcl")).await;
    app.sign_in("acme", &rp, "alice", "alice-password-1").await;
    assert_eq!(
        post_admin(&app, &format!("{USERS}/alice/actions/sign-out"), &ada).await,
        204
    );
    // Each failure waits twice as long as the one before: 2 s, 4 s, 8 s of the service's clock.
    for (attempts, status, wait) in [(1, 503, 2), (2, 500, 4), (3, 429, 8)] {
        let d = wait_for_delivery(&app, &ada, &rp.id, "retrying", |d| {
            d["attempts"] == attempts
        })
        .await;
        assert_eq!(d["state"], "retrying", "{d}");
        assert_eq!(d["status"], status);
        assert_eq!(d["error"], format!("answer {status}"));
        let next = unix_secs(d["next_attempt_at"].as_str().unwrap());
        let updated = unix_secs(d["updated_at"].as_str().unwrap());
        assert_eq!(next - updated, wait, "{d}");
        assert_eq!(receiver.received().len(), attempts as usize);
        app.clock.advance(wait);
    }
    let d = wait_for_delivery(&app, &ada, &rp.id, "delivered", |d| {
        d["state"] == "delivered"
    })
    .await;
    assert_eq!(d["attempts"], 4);
    assert_eq!(d["status"], 204);
    assert_eq!(receiver.received().len(), 4);
    // Every attempt carried a fresh logout token for the same session.
    let tokens = receiver.tokens();
    let sids: Vec<Value> = tokens
        .iter()
        .map(|t| jwt_claims(t)["sid"].clone())
        .collect();
    assert!(sids.iter().all(|s| *s == sids[0]));
    for t in &tokens {
        verify_logout_token_with_jose(&app, "acme", t)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn client_errors_are_rejected_and_redirects_not_followed() {
    let app = spawn_app().await;
    let (_, ada) = app.acme_with_ada().await;
    // The first logout is answered 400, the second with a redirect, the third 204.
    let (receiver, base) = Receiver::start(&[400, 302]).await;
    let rp = bcl_client(&app, "acme", &format!("{base}/bcl")).await;

    app.sign_in("acme", &rp, "alice", "alice-password-1").await;
    post_admin(&app, &format!("{USERS}/alice/actions/sign-out"), &ada).await;
    let rejected =
        wait_for_delivery(&app, &ada, &rp.id, "rejected", |d| d["state"] == "rejected").await;
    assert_eq!(rejected["status"], 400);
    assert_eq!(rejected["attempts"], 1);
    assert!(rejected["next_attempt_at"].is_null());
    assert_eq!(rejected["error"], "answer 400");

    // A redirect is an answer, not a place to go: the delivery is retried later, at the
    // registered URI.
    app.sign_in("acme", &rp, "alice", "alice-password-1").await;
    post_admin(&app, &format!("{USERS}/alice/actions/sign-out"), &ada).await;
    let moved = wait_for_delivery(&app, &ada, &rp.id, "redirected", |d| d["status"] == 302).await;
    assert_eq!(moved["state"], "retrying");

    // Much later, the redirected delivery is retried (and delivered), the rejected one is not.
    app.clock.advance(60);
    wait_for_delivery(&app, &ada, &rp.id, "retried", |d| d["state"] == "delivered").await;
    app.sign_in("acme", &rp, "alice", "alice-password-1").await;
    post_admin(&app, &format!("{USERS}/alice/actions/sign-out"), &ada).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let all = deliveries(&app, &ada, &rp.id).await;
        if all.len() == 3 && all[0]["attributes"]["state"] == "delivered" {
            let states: Vec<&Value> = all.iter().map(|d| &d["attributes"]["state"]).collect();
            assert_eq!(states, ["delivered", "delivered", "rejected"]);
            assert_eq!(all[2]["attributes"]["attempts"], 1);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{all:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One POST for the rejected logout, two for the redirected one, one for the last.
    assert_eq!(receiver.received().len(), 4);
    assert_eq!(receiver.redirected(), 0);
}

#[tokio::test]
async fn private_targets_outside_outbound_allow_are_refused() {
    // This server allows no private range at all.
    let app = spawn_app_with(Backend::from_env(), |c| c.outbound.allow = Vec::new()).await;
    let (_, ada) = app.acme_with_ada().await;
    let (receiver, base) = Receiver::start(&[]).await;
    // At registration: an address literal is checked at once.
    let res = app
        .http
        .post(app.pool_url("acme", CLIENTS))
        .bearer_auth(&ada)
        .json(&json!({"data": {"type": "app-client", "attributes": {
            "name": "rp", "backchannel_logout_uri": format!("{base}/bcl")}}}))
        .send()
        .await
        .unwrap();
    let body = assert_api_error(res, 400).await;
    assert!(
        body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("outbound.allow"),
        "{body}"
    );
    // At delivery: a name is checked where it resolves (`localhost` is loopback).
    let port = base.rsplit(':').next().unwrap();
    let rp = bcl_client(&app, "acme", &format!("http://localhost:{port}/bcl")).await;
    app.sign_in("acme", &rp, "alice", "alice-password-1").await;
    post_admin(&app, &format!("{USERS}/alice/actions/sign-out"), &ada).await;
    let refused =
        wait_for_delivery(&app, &ada, &rp.id, "refused", |d| d["state"] == "rejected").await;
    assert!(refused["status"].is_null(), "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("outbound.allow"),
        "{refused}"
    );
    assert!(receiver.received().is_empty());
}

/// npm `express-openid-connect`, a real back-channel logout relying party
/// (`tests/peers/bcl-rp.mjs`), with Chromium as its user's browser.
struct ExpressRp {
    child: tokio::process::Child,
    lines: crate::common::PeerLines,
    base_url: String,
    redirect_uri: String,
    backchannel_logout_uri: String,
}

impl ExpressRp {
    async fn start() -> ExpressRp {
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(peers_dir().join("bcl-rp.mjs"));
        let (child, lines, ready) = start_talking_peer(cmd, "express relying party").await;
        let ready: Value = serde_json::from_str(&ready).unwrap();
        let s = |k: &str| ready[k].as_str().unwrap().to_owned();
        ExpressRp {
            base_url: s("base_url"),
            redirect_uri: s("redirect_uri"),
            backchannel_logout_uri: s("backchannel_logout_uri"),
            child,
            lines,
        }
    }

    async fn ok(&mut self, cmd: Value) -> Value {
        use tokio::io::AsyncWriteExt;
        let stdin = self.child.stdin.as_mut().unwrap();
        let mut line = serde_json::to_vec(&cmd).unwrap();
        line.push(b'\n');
        stdin.write_all(&line).await.unwrap();
        stdin.flush().await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["ok"], true, "{cmd} failed: {answer:#}");
        answer
    }

    /// Waits until the relying party's session has ended: `/me` says so and the protected
    /// page sends the browser to sign in again.
    async fn wait_signed_out(&mut self, issuer: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let status = self.ok(json!({"op": "status"})).await;
            if status["authenticated"] == false {
                assert_eq!(status["protected_status"], 302, "{status}");
                let to = status["protected_location"].as_str().unwrap();
                assert!(
                    to.starts_with(&format!("{issuer}/oauth2/authorize")),
                    "{to}"
                );
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the relying party still has a session: {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn express_openid_connect_ends_its_session_on_our_logout_token() {
    // The browser must reach the server at its issuer.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with(Backend::from_env(), |c| {
        c.listen = format!("127.0.0.1:{port}");
        c.public_url = format!("http://127.0.0.1:{port}");
    })
    .await;
    let (_, ada) = app.acme_with_ada().await;
    let issuer = app.issuer("acme");
    let mut rp = ExpressRp::start().await;
    let pool = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    let code_client =
        |name: &str, redirect: &str, bcl: Option<String>, logout: Vec<String>| NewAppClient {
            name: name.to_owned(),
            grant_types: Some(vec!["authorization_code".to_owned()]),
            redirect_uris: Some(vec![redirect.to_owned()]),
            post_logout_redirect_uris: Some(logout),
            client_type: ClientType::Confidential,
            backchannel_logout_uri: bcl,
            backchannel_logout_session_required: true,
            ..NewAppClient::default()
        };
    let (express, secret) = app
        .gh
        .create_app_client_as_operator(
            &pool,
            code_client(
                "express app",
                &rp.redirect_uri,
                Some(rp.backchannel_logout_uri.clone()),
                Vec::new(),
            ),
        )
        .await
        .unwrap();
    // Another application of the pool, whose logout the user starts.
    let portal_return = format!("{}/", rp.base_url);
    let mut portal = code_client("portal", &portal_return, None, vec![portal_return.clone()]);
    portal.backchannel_logout_session_required = false;
    let (portal, _) = app
        .gh
        .create_app_client_as_operator(&pool, portal)
        .await
        .unwrap();
    rp.ok(json!({
        "op": "configure", "issuer": issuer, "client_id": express.client_id.as_str(),
        "client_secret": secret.unwrap().expose(),
    }))
    .await;

    // Signed in through the browser, the relying party shows alice.
    let login = json!({"op": "login", "username": "alice", "password": "alice-password-1"});
    let status = rp.ok(login.clone()).await;
    assert_eq!(status["page_shown"], true);
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(status["protected_status"], 200);
    assert_eq!(status["claims"]["sub"], alice_id(&app).await.as_str());
    let sid = status["claims"]["sid"].as_str().unwrap().to_owned();

    // An administrator signs alice out everywhere: our logout token ends the RP's session.
    assert_eq!(
        post_admin(&app, &format!("{USERS}/alice/actions/sign-out"), &ada).await,
        204
    );
    rp.wait_signed_out(&issuer).await;
    let keys = rp.ok(json!({"op": "logout_keys"})).await;
    assert!(
        keys["keys"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("{issuer}|{sid}"))),
        "the logout token's sid is the ID token's: {keys}"
    );
    let d = wait_for_delivery(&app, &ada, express.client_id.as_str(), "delivered", |d| {
        d["state"] == "delivered"
    })
    .await;
    assert_eq!(d["status"], 204, "express-openid-connect answers 204");

    // Signed in again (a new browser session), then alice signs out at the provider from
    // another application (RP-initiated logout): the express app's session ends with it.
    let status = rp.ok(login).await;
    assert_eq!(status["page_shown"], true, "the first sign-in was ended");
    assert_eq!(status["authenticated"], true, "{status}");
    let second_sid = status["claims"]["sid"].as_str().unwrap().to_owned();
    assert_ne!(second_sid, sid);
    let logout_url = format!(
        "{issuer}/oauth2/logout?client_id={}&post_logout_redirect_uri={}",
        portal.client_id,
        url::form_urlencoded::byte_serialize(portal_return.as_bytes()).collect::<String>()
    );
    let visited = rp
        .ok(json!({"op": "visit", "url": logout_url, "click": "Sign out"}))
        .await;
    assert!(
        visited["url"].as_str().unwrap().starts_with(&rp.base_url),
        "{visited}"
    );
    rp.wait_signed_out(&issuer).await;
    let keys = rp.ok(json!({"op": "logout_keys"})).await;
    assert!(
        keys["keys"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("{issuer}|{second_sid}"))),
        "{keys}"
    );
    let all = deliveries(&app, &ada, express.client_id.as_str()).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all.iter().all(|d| d["attributes"]["state"] == "delivered"));
    assert_eq!(all[0]["attributes"]["sid"], second_sid.as_str());
}

#[test]
fn the_command_line_registers_a_backchannel_logout_uri() {
    use crate::cli::{failure_of, gatehouse, json_of};
    let dir = tempfile::tempdir().unwrap();
    json_of(
        gatehouse(dir.path())
            .args(["pool", "create", "acme", "--json"])
            .output()
            .unwrap(),
    );
    let client = json_of(
        gatehouse(dir.path())
            .args(["client", "create", "--pool", "acme", "--name", "rp"])
            .args(["--backchannel-logout-uri", "https://rp.example/bcl"])
            .args(["--backchannel-logout-session-required", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(client["backchannel_logout_uri"], "https://rp.example/bcl");
    assert_eq!(client["backchannel_logout_session_required"], true);
    // A private address the operator did not allow, and sid without a URI, are refused.
    let refused = failure_of(
        gatehouse(dir.path())
            .args(["client", "create", "--pool", "acme", "--name", "rp"])
            .args(["--backchannel-logout-uri", "https://10.0.0.1/bcl", "--json"])
            .output()
            .unwrap(),
    );
    assert!(refused.contains("outbound.allow"), "{refused}");
    let out = gatehouse(dir.path())
        .args(["client", "create", "--pool", "acme", "--name", "rp"])
        .args(["--backchannel-logout-session-required", "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn ending_an_impersonation_tells_the_client_that_started_it() {
    let app = spawn_app().await;
    let (_, ada) = app.acme_with_ada().await;
    let (receiver, base) = Receiver::start(&[]).await;
    let pool = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    let (support, secret) = app
        .gh
        .create_app_client_as_operator(
            &pool,
            NewAppClient {
                name: "support desk".to_owned(),
                scopes: Some(vec!["user:Impersonate".to_owned()]),
                backchannel_logout_uri: Some(format!("{base}/bcl")),
                ..NewAppClient::default()
            },
        )
        .await
        .unwrap();
    let creds = ClientCreds {
        id: support.client_id.to_string(),
        secret: secret.unwrap().expose().to_owned(),
    };
    let desk = app.client_token("acme", &creds).await;
    let impersonated = app.impersonate("acme", &desk, "alice").await;
    let sid = jwt_claims(&impersonated)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .http
        .delete(app.pool_url(
            "acme",
            &format!("/api/user-management/impersonations/{sid}"),
        ))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let d = wait_for_delivery(&app, &ada, &creds.id, "delivered", |d| {
        d["state"] == "delivered"
    })
    .await;
    assert_eq!(d["sid"], sid.as_str());
    let token = &receiver.tokens()[0];
    let claims = verify_logout_token_with_jose(&app, "acme", token)
        .await
        .unwrap()["payload"]
        .clone();
    assert_eq!(claims["sid"], sid.as_str());
    assert_eq!(claims["sub"], jwt_claims(&impersonated)["sub"]);
    assert_eq!(claims["aud"], creds.id.as_str());
}
