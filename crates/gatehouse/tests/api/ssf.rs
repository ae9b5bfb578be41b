//! The SSF 1.0 transmitter of each pool, checked module by module against the OpenID SSF
//! conformance suite's transmitter test plan (metadata, stream control and its negative
//! cases, subject control, verification over push and poll, poll with acknowledgement,
//! long polling, paused and disabled streams, unique poll URLs, CAEP interoperability and
//! the SET checks), all through the HTTP interface; and a receiver written on npm `jose`
//! that runs the whole exchange as a third party would.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const USERS: &str = "/api/user-management/users";
const PUSH: &str = "urn:ietf:rfc:8935";
const POLL: &str = "urn:ietf:rfc:8936";
const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

/// `acme` with ada and alice, and a receiver client holding `scopes`; returns its token.
async fn receiver(app: &TestApp, scopes: &[&str]) -> (ClientCreds, String) {
    let c = app.create_client("acme", scopes).await;
    let t = app.client_token("acme", &c).await;
    (c, t)
}

async fn setup(app: &TestApp) -> (ClientCreds, String, String) {
    let (_, ada) = app.acme_with_ada().await;
    let (c, t) = receiver(app, &["ssf.manage"]).await;
    (c, t, ada)
}

fn ssf(app: &TestApp, path: &str) -> String {
    app.pool_url("acme", &format!("/api/ssf/{path}"))
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    assert_eq!(
        res.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "every SSF answer is no-store"
    );
    res
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let res = call(
        app,
        reqwest::Method::POST,
        &ssf(app, "streams"),
        token,
        Some(body),
    )
    .await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

/// Polls `url` (the stream's poll endpoint) with `body`; returns the answer.
async fn poll(app: &TestApp, token: &str, url: &str, body: Value) -> Value {
    let url = url.replacen(&app.public_url, &app.addr, 1);
    let res = call(app, reqwest::Method::POST, &url, token, Some(body)).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn sign_out(app: &TestApp, ada: &str, who: &str) {
    let res = app
        .http
        .post(app.pool_url("acme", &format!("{USERS}/{who}/actions/sign-out")))
        .bearer_auth(ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

fn event_type(claims: &Value) -> String {
    let events = claims["events"].as_object().unwrap();
    assert_eq!(events.len(), 1, "exactly one event per SET: {claims}");
    events.keys().next().unwrap().clone()
}

/// The conformance suite's SET checks, and npm `jose` verifying the signature against the
/// pool's JWKS. Returns the claims.
async fn check_set(app: &TestApp, set: &str, aud: &str) -> Value {
    let verified = verify_set_with_jose(app, "acme", set).await.unwrap();
    let (header, claims) = (&verified["header"], &verified["payload"]);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "secevent+jwt");
    assert!(claims.get("exp").is_none(), "no exp: {claims}");
    assert!(claims.get("sub").is_none(), "no sub: {claims}");
    event_type(claims);
    assert!(claims["iat"].as_i64().unwrap() <= app.gh.now().as_secs());
    assert_eq!(claims["iss"], app.issuer("acme"));
    assert_eq!(claims["aud"], aud);
    assert!(claims["txn"].is_string() && claims["jti"].is_string());
    claims.clone()
}

/// A push as received: its `Authorization`, its `Content-Type` and its body.
type Pushed = (Option<String>, String, String);

/// A push receiver on loopback: records each request's `Authorization` and body, and
/// answers from a script (then 202).
struct PushReceiver {
    url: String,
    got: Arc<Mutex<Vec<Pushed>>>,
    script: Arc<Mutex<VecDeque<(u16, String)>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl PushReceiver {
    async fn start() -> Self {
        let got: Arc<Mutex<Vec<Pushed>>> = Arc::default();
        let script: Arc<Mutex<VecDeque<(u16, String)>>> = Arc::default();
        let (g, s) = (got.clone(), script.clone());
        let app = axum::Router::new().route(
            "/events",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let (g, s) = (g.clone(), s.clone());
                async move {
                    let h = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
                    g.lock().unwrap().push((
                        h("authorization"),
                        h("content-type").unwrap_or_default(),
                        body,
                    ));
                    let (status, body) = s
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or((202, String::new()));
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        [("content-type", "application/json")],
                        body,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            url,
            got,
            script,
            _stop: tx,
        }
    }

    fn answer(&self, status: u16, body: &str) {
        self.script
            .lock()
            .unwrap()
            .push_back((status, body.to_owned()));
    }

    fn bodies(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|g| g.2.clone())
            .collect()
    }

    /// Waits (with a deadline) until `n` requests came.
    async fn wait_for(&self, n: usize) -> Vec<Pushed> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver got {} of {n} pushes",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn metadata_is_served_at_the_ssf_path_of_the_issuer() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    let res = app
        .http
        .get(app.url("/.well-known/ssf-configuration/pools/acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let m: Value = res.json().await.unwrap();
    let issuer = app.issuer("acme");
    assert_eq!(m["issuer"], issuer, "byte-identical to the pool's issuer");
    assert_eq!(m["spec_version"], "1_0");
    assert_eq!(m["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    assert_eq!(m["delivery_methods_supported"], json!([PUSH, POLL]));
    for e in [
        "configuration_endpoint",
        "status_endpoint",
        "add_subject_endpoint",
        "remove_subject_endpoint",
        "verification_endpoint",
    ] {
        assert!(m[e].as_str().unwrap().starts_with(&issuer), "{e}: {m}");
    }
    assert_eq!(
        m["authorization_schemes"],
        json!([{"spec_urn": "urn:ietf:rfc:6749"}])
    );
    assert_eq!(m["default_subjects"], "ALL");
    // The JWKS it names holds the key SETs are signed with (an RSA key).
    let jwks: Value = app
        .http
        .get(app.pool_url("acme", "/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kty"] == "RSA")
    );
    // Unknown pools are 404.
    let res = app
        .http
        .get(app.url("/.well-known/ssf-configuration/pools/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_host_bound_pool_serves_its_metadata_at_the_root() {
    let app = spawn_app().await;
    app.create_host_pool("acme", &["id.acme.test"]).await;
    let m: Value = app
        .http
        .get(app.url("/.well-known/ssf-configuration"))
        .header("host", "id.acme.test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["issuer"], "http://id.acme.test");
    assert_eq!(
        m["configuration_endpoint"],
        "http://id.acme.test/api/ssf/streams"
    );
}

#[tokio::test]
async fn stream_control_happy_path() {
    let app = spawn_app().await;
    let (c, t, _) = setup(&app).await;
    // Created without a delivery: poll, with the transmitter's poll URL.
    let s = create(&app, &t, json!({"description": "first"})).await;
    let id = s["stream_id"].as_str().unwrap().to_owned();
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    );
    assert_eq!(s["iss"], app.issuer("acme"));
    assert_eq!(s["aud"], c.id);
    assert_eq!(s["delivery"]["method"], POLL);
    assert_eq!(
        s["delivery"]["endpoint_url"],
        format!("{}/api/ssf/poll/{id}", app.issuer("acme"))
    );
    assert!(
        s["events_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(SESSION_REVOKED))
    );
    assert_eq!(s["events_delivered"], s["events_supported"]);
    assert_eq!(s["description"], "first");

    // Read by id, and as a list.
    let url = format!("{}?stream_id={id}", ssf(&app, "streams"));
    let read: Value = call(&app, reqwest::Method::GET, &url, &t, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, s);
    let list: Value = call(&app, reqwest::Method::GET, &ssf(&app, "streams"), &t, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([s]));

    // Update: what is sent changes, the rest stays; events_delivered = supported ∩ requested.
    let res = call(
        &app,
        reqwest::Method::PATCH,
        &ssf(&app, "streams"),
        &t,
        Some(
            json!({"stream_id": id, "events_requested": [SESSION_REVOKED, "urn:example:unknown"]}),
        ),
    )
    .await;
    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.unwrap();
    assert_eq!(patched["events_delivered"], json!([SESSION_REVOKED]));
    assert_eq!(patched["description"], "first");

    // Replace: what is left out goes; transmitter fields echoed unchanged are accepted.
    let res = call(
        &app,
        reqwest::Method::PUT,
        &ssf(&app, "streams"),
        &t,
        Some(
            json!({"stream_id": id, "iss": app.issuer("acme"), "aud": c.id,
                    "delivery": {"method": POLL}}),
        ),
    )
    .await;
    assert_eq!(res.status(), 200);
    let replaced: Value = res.json().await.unwrap();
    assert!(replaced.get("description").is_none());
    assert_eq!(replaced["events_delivered"], s["events_supported"]);

    // Status: read, pause, read.
    let status_url = format!("{}?stream_id={id}", ssf(&app, "status"));
    let st: Value = call(&app, reqwest::Method::GET, &status_url, &t, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(st, json!({"stream_id": id, "status": "enabled"}));
    let res = call(
        &app,
        reqwest::Method::POST,
        &ssf(&app, "status"),
        &t,
        Some(json!({"stream_id": id, "status": "paused", "reason": "maintenance"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let st: Value = call(&app, reqwest::Method::GET, &status_url, &t, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        st,
        json!({"stream_id": id, "status": "paused", "reason": "maintenance"})
    );

    // Delete; then it is gone, and a new one may be created.
    let del = format!("{}?stream_id={id}", ssf(&app, "streams"));
    assert_eq!(
        call(&app, reqwest::Method::DELETE, &del, &t, None)
            .await
            .status(),
        204
    );
    assert_eq!(
        call(&app, reqwest::Method::GET, &url, &t, None)
            .await
            .status(),
        404
    );
    create(&app, &t, json!({})).await;
}

#[tokio::test]
async fn stream_control_refuses_broken_input() {
    let app = spawn_app().await;
    let (_, t, _) = setup(&app).await;
    let post = |body: Value| {
        let (app, t) = (&app, t.clone());
        async move {
            call(
                app,
                reqwest::Method::POST,
                &ssf(app, "streams"),
                &t,
                Some(body),
            )
            .await
        }
    };
    for body in [
        json!({"delivery": {"method": "urn:example:carrier-pigeon"}}),
        json!({"delivery": {"method": PUSH, "endpoint_url": "ftp://127.0.0.1/x"}}),
        json!({"delivery": {"method": PUSH}}),
        json!({"delivery": {"method": PUSH, "endpoint_url": "http://user:pw@127.0.0.1/x"}}),
        json!({"delivery": {"method": POLL, "endpoint_url": "https://elsewhere.example/poll"}}),
        json!({"delivery": "poll"}),
        json!({"events_requested": "all"}),
        json!({"description": 7}),
        json!({"colour": "blue"}),
        json!({"stream_id": "mine"}),
        json!({"iss": "https://other.example"}),
    ] {
        assert_api_error(post(body.clone()).await, 400).await;
    }
    // Not JSON, and not an object.
    for raw in ["{", "[]", "\"x\""] {
        let res = app
            .http
            .post(ssf(&app, "streams"))
            .bearer_auth(&t)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_api_error(res, 400).await;
    }
    // A push endpoint outside what the operator allows.
    let res =
        post(json!({"delivery": {"method": PUSH, "endpoint_url": "http://10.1.2.3/x"}})).await;
    assert_api_error(res, 400).await;

    // Transmitter-set fields that do not match the stream on update.
    let s = create(&app, &t, json!({})).await;
    let id = s["stream_id"].as_str().unwrap();
    for body in [
        json!({"stream_id": id, "aud": "someone-else"}),
        json!({"stream_id": id, "iss": "https://other.example"}),
        json!({"stream_id": id, "events_supported": []}),
        json!({"stream_id": id, "min_verification_interval": 1}),
        json!({"stream_id": id, "delivery": {"method": POLL, "endpoint_url": "https://x.example/p"}}),
    ] {
        let res = call(
            &app,
            reqwest::Method::PATCH,
            &ssf(&app, "streams"),
            &t,
            Some(body),
        )
        .await;
        assert_api_error(res, 400).await;
    }
    // Status values and subjects that do not parse.
    for body in [
        json!({"stream_id": id, "status": "asleep"}),
        json!({"stream_id": id}),
        json!({"stream_id": id, "status": "paused", "extra": 1}),
    ] {
        let res = call(
            &app,
            reqwest::Method::POST,
            &ssf(&app, "status"),
            &t,
            Some(body),
        )
        .await;
        assert_api_error(res, 400).await;
    }
    for body in [
        json!({"stream_id": id}),
        json!({"stream_id": id, "subject": {"format": "carrier_pigeon"}}),
        json!({"stream_id": id, "subject": {"format": "iss_sub", "iss": "x"}}),
        json!({"stream_id": id, "subject": "alice"}),
    ] {
        let res = call(
            &app,
            reqwest::Method::POST,
            &ssf(&app, "subjects/add"),
            &t,
            Some(body),
        )
        .await;
        assert_api_error(res, 400).await;
    }
    // A poll body that does not parse.
    let poll_url =
        s["delivery"]["endpoint_url"]
            .as_str()
            .unwrap()
            .replacen(&app.public_url, &app.addr, 1);
    for body in [
        json!({"maxEvents": -1}),
        json!({"ack": "x"}),
        json!({"setErrs": {"j": "bad"}}),
        json!({"returnImmediately": "yes"}),
        json!({"wait": true}),
    ] {
        let res = call(&app, reqwest::Method::POST, &poll_url, &t, Some(body)).await;
        assert_api_error(res, 400).await;
    }
}

#[tokio::test]
async fn receivers_must_present_a_valid_token_in_the_header_with_the_scope() {
    let app = spawn_app().await;
    let (_, t, ada) = setup(&app).await;
    let url = ssf(&app, "streams");

    // No token.
    let res = app.http.get(&url).send().await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_api_error(res, 401).await;
    // A token that is not one.
    let res = app
        .http
        .get(&url)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_api_error(res, 401).await;
    // A token in the query string, with or without the header.
    let res = app
        .http
        .get(format!("{url}?access_token={t}"))
        .send()
        .await
        .unwrap();
    assert_api_error(res, 401).await;
    let res = app
        .http
        .get(format!("{url}?access_token={t}"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_api_error(res, 401).await;
    // A user's token (even an administrator's) is not a receiver's.
    let res = app.http.get(&url).bearer_auth(&ada).send().await.unwrap();
    assert_api_error(res, 401).await;
    // A client token without either scope.
    let (_, none) = receiver(&app, &[]).await;
    let res = app.http.get(&url).bearer_auth(&none).send().await.unwrap();
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"insufficient_scope\"")
    );
    assert_api_error(res, 403).await;

    // A read-only token reads but writes nothing.
    let (_, ro) = receiver(&app, &["ssf.read"]).await;
    assert_eq!(
        app.http
            .get(&url)
            .bearer_auth(&ro)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = app
        .http
        .post(&url)
        .bearer_auth(&ro)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("ssf.manage"),
        "{challenge}"
    );
    assert_api_error(res, 403).await;
    for path in ["status", "subjects/add", "subjects/remove", "verify"] {
        let res = app
            .http
            .post(ssf(&app, path))
            .bearer_auth(&ro)
            .json(&json!({"stream_id": "x"}))
            .send()
            .await
            .unwrap();
        assert_api_error(res, 403).await;
    }
}

#[tokio::test]
async fn unknown_streams_are_not_found_and_a_second_stream_conflicts() {
    let app = spawn_app().await;
    let (_, t, _) = setup(&app).await;
    let q = format!("{}?stream_id=no-such-stream", ssf(&app, "streams"));
    assert_api_error(call(&app, reqwest::Method::GET, &q, &t, None).await, 404).await;
    assert_api_error(call(&app, reqwest::Method::DELETE, &q, &t, None).await, 404).await;
    for m in [reqwest::Method::PATCH, reqwest::Method::PUT] {
        let res = call(
            &app,
            m,
            &ssf(&app, "streams"),
            &t,
            Some(json!({"stream_id": "no-such-stream"})),
        )
        .await;
        assert_api_error(res, 404).await;
    }
    let st = format!("{}?stream_id=no-such-stream", ssf(&app, "status"));
    assert_api_error(call(&app, reqwest::Method::GET, &st, &t, None).await, 404).await;
    let res = call(
        &app,
        reqwest::Method::POST,
        &ssf(&app, "status"),
        &t,
        Some(json!({"stream_id": "no-such-stream", "status": "paused"})),
    )
    .await;
    assert_api_error(res, 404).await;
    let res = call(
        &app,
        reqwest::Method::POST,
        &ssf(&app, "verify"),
        &t,
        Some(json!({"stream_id": "no-such-stream"})),
    )
    .await;
    assert_api_error(res, 404).await;

    create(&app, &t, json!({})).await;
    let res = call(
        &app,
        reqwest::Method::POST,
        &ssf(&app, "streams"),
        &t,
        Some(json!({})),
    )
    .await;
    assert_api_error(res, 409).await;
}

#[tokio::test]
async fn another_receivers_or_another_pools_stream_is_refused() {
    let app = spawn_app().await;
    let (_, t, _) = setup(&app).await;
    let s = create(&app, &t, json!({})).await;
    let id = s["stream_id"].as_str().unwrap();
    let poll_url = s["delivery"]["endpoint_url"].as_str().unwrap().to_owned();

    // Another receiver of the pool, with every SSF scope: the stream does not exist for it.
    let (_, other) = receiver(&app, &["ssf.manage"]).await;
    let q = format!("{}?stream_id={id}", ssf(&app, "streams"));
    assert_api_error(
        call(&app, reqwest::Method::GET, &q, &other, None).await,
        404,
    )
    .await;
    assert_api_error(
        call(&app, reqwest::Method::DELETE, &q, &other, None).await,
        404,
    )
    .await;
    let res = call(
        &app,
        reqwest::Method::PATCH,
        &ssf(&app, "streams"),
        &other,
        Some(json!({"stream_id": id, "description": "mine"})),
    )
    .await;
    assert_api_error(res, 404).await;
    let res = call(
        &app,
        reqwest::Method::POST,
        &ssf(&app, "status"),
        &other,
        Some(json!({"stream_id": id, "status": "disabled"})),
    )
    .await;
    assert_api_error(res, 404).await;
    let local = poll_url.replacen(&app.public_url, &app.addr, 1);
    let res = call(
        &app,
        reqwest::Method::POST,
        &local,
        &other,
        Some(json!({"returnImmediately": true})),
    )
    .await;
    assert_api_error(res, 404).await;
    let list: Value = call(
        &app,
        reqwest::Method::GET,
        &ssf(&app, "streams"),
        &other,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(list, json!([]));

    // A receiver of another pool: its token is not valid here.
    app.create_pool("beta").await;
    let b = app.create_client("beta", &["ssf.manage"]).await;
    let bt = app.client_token("beta", &b).await;
    let res = call(&app, reqwest::Method::GET, &q, &bt, None).await;
    assert_api_error(res, 401).await;
    // The stream is untouched.
    let read: Value = call(&app, reqwest::Method::GET, &q, &t, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, s);
}

#[tokio::test]
async fn verification_over_poll_and_its_rate_limit() {
    let app = spawn_app().await;
    let (c, t, _) = setup(&app).await;
    let s = create(&app, &t, json!({"delivery": {"method": POLL}})).await;
    let id = s["stream_id"].as_str().unwrap();
    let url = s["delivery"]["endpoint_url"].as_str().unwrap();
    let verify = |state: &str| {
        let (app, t) = (&app, t.clone());
        let body = json!({"stream_id": id, "state": state});
        async move {
            call(
                app,
                reqwest::Method::POST,
                &ssf(app, "verify"),
                &t,
                Some(body),
            )
            .await
        }
    };
    assert_eq!(verify("s-1").await.status(), 204);
    // Again too soon: 429.
    let res = verify("s-2").await;
    assert!(res.headers().contains_key("retry-after"));
    assert_api_error(res, 429).await;

    let got = poll(&app, &t, url, json!({"returnImmediately": true})).await;
    let sets = got["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 1, "{got}");
    let (jti, set) = sets.iter().next().unwrap();
    let claims = check_set(&app, set.as_str().unwrap(), &c.id).await;
    assert_eq!(&claims["jti"], jti);
    assert_eq!(claims["events"][VERIFICATION]["state"], "s-1");
    assert_eq!(claims["sub_id"], json!({"format": "opaque", "id": id}));

    // After the interval, verification may be asked again.
    app.clock.advance(11);
    assert_eq!(verify("s-3").await.status(), 204);
}

#[tokio::test]
async fn verification_over_push_carries_the_authorization_header() {
    let app = spawn_app().await;
    let (c, t, _) = setup(&app).await;
    let rx = PushReceiver::start().await;
    let s = create(
        &app,
        &t,
        json!({"delivery": {"method": PUSH, "endpoint_url": rx.url, "authorization_header": "Bearer receiver-secret"}}),
    )
    .await;
    assert_eq!(
        s["delivery"],
        json!({"method": PUSH, "endpoint_url": rx.url}),
        "the header is never read back"
    );
    let id = s["stream_id"].as_str().unwrap();
    let res = call(
        &app,
        reqwest::Method::POST,
        &ssf(&app, "verify"),
        &t,
        Some(json!({"stream_id": id, "state": "xyz"})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].0.as_deref(), Some("Bearer receiver-secret"));
    assert_eq!(got[0].1, "application/secevent+jwt");
    let claims = check_set(&app, &got[0].2, &c.id).await;
    assert_eq!(claims["events"][VERIFICATION]["state"], "xyz");
}

#[tokio::test]
async fn push_retries_transient_failures_in_order_and_drops_refusals() {
    let app = spawn_app().await;
    let (c, t, ada) = setup(&app).await;
    let rx = PushReceiver::start().await;
    create(
        &app,
        &t,
        json!({"delivery": {"method": PUSH, "endpoint_url": rx.url}}),
    )
    .await;
    // The first SET is refused (400), the second fails twice (503, 429) and then is taken.
    rx.answer(
        400,
        r#"{"err":"invalid_audience","description":"not for us"}"#,
    );
    rx.answer(503, "");
    rx.answer(429, "");
    let bob = app
        .sign_in(
            "acme",
            &app.create_client("acme", &[]).await,
            "alice",
            "alice-password-1",
        )
        .await;
    let _ = bob;
    sign_out(&app, &ada, "alice").await;
    sign_out(&app, &ada, "ada").await;
    let got = rx.wait_for(2).await;
    let first = got[0].2.clone();
    let second = got[1].2.clone();
    assert_ne!(first, second, "a refused SET is not sent again");
    // Retries wait for their time (the service clock): move it on until the second is taken.
    for _ in 0..10 {
        if rx.bodies().len() >= 4 {
            break;
        }
        app.clock.advance(10);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let bodies = rx.wait_for(4).await;
    assert_eq!(bodies[2].2, second);
    assert_eq!(bodies[3].2, second);
    for b in &bodies {
        check_set(&app, &b.2, &c.id).await;
    }
}

#[tokio::test]
async fn poll_with_ack_ack_only_and_set_errs() {
    let app = spawn_app().await;
    let (c, t, ada) = setup(&app).await;
    let client = app.create_client("acme", &[]).await;
    app.sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    app.sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    app.sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let s = create(&app, &t, json!({})).await;
    let url = s["delivery"]["endpoint_url"].as_str().unwrap();
    sign_out(&app, &ada, "alice").await;

    // Three sessions ended: three session-revoked, plus a user-wide one? Read what came.
    let first = poll(
        &app,
        &t,
        url,
        json!({"returnImmediately": true, "maxEvents": 2}),
    )
    .await;
    let sets = first["sets"].as_object().unwrap().clone();
    assert_eq!(sets.len(), 2);
    assert_eq!(first["moreAvailable"], true);
    for set in sets.values() {
        let claims = check_set(&app, set.as_str().unwrap(), &c.id).await;
        assert_eq!(event_type(&claims), SESSION_REVOKED);
    }
    // Not acknowledged: delivered again.
    let again = poll(
        &app,
        &t,
        url,
        json!({"returnImmediately": true, "maxEvents": 2}),
    )
    .await;
    assert_eq!(again["sets"].as_object().unwrap(), &sets);

    // Acknowledge one, report an error on the other, ask for nothing (ack only).
    let jtis: Vec<&String> = sets.keys().collect();
    let acked = poll(
        &app,
        &t,
        url,
        json!({"maxEvents": 0, "ack": [jtis[0]],
               "setErrs": {jtis[1].clone(): {"err": "invalid_key", "description": "unknown kid"}}}),
    )
    .await;
    assert_eq!(acked["sets"], json!({}));
    // Neither comes again; what remains does.
    let rest = poll(&app, &t, url, json!({"returnImmediately": true})).await;
    let rest = rest["sets"].as_object().unwrap();
    assert!(!rest.is_empty());
    assert!(!rest.contains_key(jtis[0]) && !rest.contains_key(jtis[1]));
    let all: Vec<String> = rest.keys().cloned().collect();
    let done = poll(
        &app,
        &t,
        url,
        json!({"returnImmediately": true, "ack": all}),
    )
    .await;
    assert_eq!(done["sets"], json!({}));
    assert_eq!(done["moreAvailable"], false);
}

#[tokio::test]
async fn long_poll_returns_the_event_that_commits_while_it_waits() {
    let app = spawn_app().await;
    let (c, t, ada) = setup(&app).await;
    let s = create(&app, &t, json!({})).await;
    let url = s["delivery"]["endpoint_url"].as_str().unwrap().to_owned();
    let client = app.create_client("acme", &[]).await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let sid = jwt_claims(&alice)["sid"].as_str().unwrap().to_owned();

    let waiting = {
        let (http, url, t) = (
            app.http.clone(),
            url.replacen(&app.public_url, &app.addr, 1),
            t.clone(),
        );
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(t)
                .json(&json!({"returnImmediately": false}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    // The long poll is waiting on the stream once a second one would exceed nothing yet:
    // let it start, then sign alice out.
    tokio::time::sleep(Duration::from_millis(200)).await;
    sign_out(&app, &ada, "alice").await;
    let got = waiting.await.unwrap();
    let sets = got["sets"].as_object().unwrap();
    assert!(!sets.is_empty(), "{got}");
    let mut sids = Vec::new();
    for set in sets.values() {
        let claims = check_set(&app, set.as_str().unwrap(), &c.id).await;
        assert_eq!(event_type(&claims), SESSION_REVOKED);
        sids.push(claims["sub_id"]["session"]["id"].clone());
    }
    assert!(sids.contains(&json!(sid)), "{sids:?}");
}

#[tokio::test]
async fn long_polls_beyond_the_cap_are_refused() {
    let app = spawn_app_with(Backend::from_env(), |c| {
        c.ssf.long_polls_per_stream = 1;
        c.ssf.long_poll_timeout_secs = 3;
    })
    .await;
    let (_, t, _) = setup(&app).await;
    let s = create(&app, &t, json!({})).await;
    let url =
        s["delivery"]["endpoint_url"]
            .as_str()
            .unwrap()
            .replacen(&app.public_url, &app.addr, 1);
    // Three long polls at once on a stream with room for one: one waits, the others are
    // refused at once.
    let polls: Vec<_> = (0..3)
        .map(|_| {
            let (http, url, t) = (app.http.clone(), url.clone(), t.clone());
            tokio::spawn(async move {
                let res = http
                    .post(url)
                    .bearer_auth(t)
                    .json(&json!({"returnImmediately": false}))
                    .send()
                    .await
                    .unwrap();
                let retry = res.headers().contains_key("retry-after");
                (res.status().as_u16(), retry)
            })
        })
        .collect();
    // Returning at once is never capped.
    let res = call(
        &app,
        reqwest::Method::POST,
        &url,
        &t,
        Some(json!({"returnImmediately": true})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let mut statuses = Vec::new();
    for p in polls {
        statuses.push(p.await.unwrap());
    }
    assert!(statuses.contains(&(200, false)), "{statuses:?}");
    assert!(statuses.contains(&(429, true)), "{statuses:?}");
}

#[tokio::test]
async fn a_paused_stream_holds_events_and_delivers_them_in_order() {
    let app = spawn_app().await;
    let (c, t, ada) = setup(&app).await;
    let client = app.create_client("acme", &[]).await;
    app.sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let s = create(&app, &t, json!({})).await;
    let id = s["stream_id"].as_str().unwrap();
    let url = s["delivery"]["endpoint_url"].as_str().unwrap();
    let status = |st: &str| {
        let (app, t) = (&app, t.clone());
        let body = json!({"stream_id": id, "status": st});
        async move {
            call(
                app,
                reqwest::Method::POST,
                &ssf(app, "status"),
                &t,
                Some(body),
            )
            .await
            .status()
        }
    };
    assert_eq!(status("paused").await, 200);
    sign_out(&app, &ada, "alice").await;
    sign_out(&app, &ada, "ada").await;
    // Paused: nothing is handed out (and a long poll would not wait).
    let held = poll(&app, &t, url, json!({"returnImmediately": false})).await;
    assert_eq!(held["sets"], json!({}));
    assert_eq!(status("enabled").await, 200);
    // Handed out in commit order (one at a time, each acknowledged by the next poll):
    // alice's events first, then ada's.
    let mut users = Vec::new();
    let mut ack: Vec<String> = Vec::new();
    loop {
        let got = poll(
            &app,
            &t,
            url,
            json!({"returnImmediately": true, "maxEvents": 1, "ack": ack}),
        )
        .await;
        let sets = got["sets"].as_object().unwrap();
        let Some((jti, set)) = sets.iter().next() else {
            break;
        };
        let claims = check_set(&app, set.as_str().unwrap(), &c.id).await;
        users.push(claims["sub_id"]["user"]["sub"].as_str().unwrap().to_owned());
        ack = vec![jti.clone()];
    }
    assert!(users.len() >= 2, "{users:?}");
    let alice = users[0].clone();
    let first_other = users.iter().position(|u| *u != alice).unwrap();
    assert!(
        users[first_other..].iter().all(|u| *u != alice),
        "alice's events all come before ada's: {users:?}"
    );
}

#[tokio::test]
async fn a_disabled_stream_drops_events() {
    let app = spawn_app().await;
    let (_, t, ada) = setup(&app).await;
    let client = app.create_client("acme", &[]).await;
    app.sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let s = create(&app, &t, json!({})).await;
    let id = s["stream_id"].as_str().unwrap();
    let url = s["delivery"]["endpoint_url"].as_str().unwrap();
    let status = |st: &str| {
        let (app, t) = (&app, t.clone());
        let body = json!({"stream_id": id, "status": st});
        async move {
            call(
                app,
                reqwest::Method::POST,
                &ssf(app, "status"),
                &t,
                Some(body),
            )
            .await
            .status()
        }
    };
    assert_eq!(status("disabled").await, 200);
    sign_out(&app, &ada, "alice").await;
    let got = poll(&app, &t, url, json!({"returnImmediately": true})).await;
    assert_eq!(got["sets"], json!({}));
    assert_eq!(status("enabled").await, 200);
    let got = poll(&app, &t, url, json!({"returnImmediately": true})).await;
    assert_eq!(
        got["sets"],
        json!({}),
        "what happened while disabled is gone"
    );
    // New events flow again.
    app.sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    sign_out(&app, &ada, "alice").await;
    let got = poll(&app, &t, url, json!({"returnImmediately": true})).await;
    assert!(!got["sets"].as_object().unwrap().is_empty());
}

#[tokio::test]
async fn each_stream_has_its_own_poll_url() {
    let app = spawn_app().await;
    let (_, t, ada) = setup(&app).await;
    let (_, t2) = receiver(&app, &["ssf.manage"]).await;
    let a = create(&app, &t, json!({})).await;
    let b = create(&app, &t2, json!({})).await;
    let (ua, ub) = (
        a["delivery"]["endpoint_url"].as_str().unwrap(),
        b["delivery"]["endpoint_url"].as_str().unwrap(),
    );
    assert_ne!(ua, ub);
    let client = app.create_client("acme", &[]).await;
    app.sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    sign_out(&app, &ada, "alice").await;
    // Each receiver gets the event on its own URL, for its own audience; acking on one
    // leaves the other's untouched.
    let ga = poll(&app, &t, ua, json!({"returnImmediately": true})).await;
    let all: Vec<String> = ga["sets"].as_object().unwrap().keys().cloned().collect();
    assert!(!all.is_empty());
    poll(&app, &t, ua, json!({"maxEvents": 0, "ack": all})).await;
    let gb = poll(&app, &t2, ub, json!({"returnImmediately": true})).await;
    assert_eq!(gb["sets"].as_object().unwrap().len(), all.len());
    // The query may name the stream too, but only the same one.
    let wrong = format!(
        "{}?stream_id={}",
        ua.replacen(&app.public_url, &app.addr, 1),
        b["stream_id"].as_str().unwrap()
    );
    assert_api_error(
        call(&app, reqwest::Method::POST, &wrong, &t, Some(json!({}))).await,
        400,
    )
    .await;
}

#[tokio::test]
async fn subject_control_excludes_and_includes_subjects() {
    let app = spawn_app().await;
    let (c, t, ada) = setup(&app).await;
    let client = app.create_client("acme", &[]).await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let alice_sub = jwt_claims(&alice)["sub"].as_str().unwrap().to_owned();
    let s = create(&app, &t, json!({})).await;
    let id = s["stream_id"].as_str().unwrap();
    let url = s["delivery"]["endpoint_url"].as_str().unwrap();
    let alice_subject = json!({"format": "iss_sub", "iss": app.issuer("acme"), "sub": alice_sub});
    app.create_user("acme", "bob", &[], "bob-password-12").await;
    app.sign_in("acme", &client, "bob", "bob-password-12").await;
    let subject = |path: &'static str, subject: Value| {
        let (app, t) = (&app, t.clone());
        let body = json!({"stream_id": id, "subject": subject});
        async move {
            call(app, reqwest::Method::POST, &ssf(app, path), &t, Some(body))
                .await
                .status()
        }
    };
    assert_eq!(subject("subjects/remove", alice_subject.clone()).await, 204);
    // Subjects nobody has answer the same as real ones.
    assert_eq!(
        subject(
            "subjects/remove",
            json!({"format": "email", "email": "nobody@example.com"})
        )
        .await,
        204
    );
    assert_eq!(
        subject(
            "subjects/add",
            json!({"format": "iss_sub", "iss": app.issuer("acme"), "sub": "no-such-user"})
        )
        .await,
        200
    );
    assert_eq!(
        subject(
            "subjects/add",
            json!({"format": "complex", "user": {"format": "email", "email": "x@example.com"}})
        )
        .await,
        200
    );

    sign_out(&app, &ada, "alice").await;
    sign_out(&app, &ada, "bob").await;
    let got = poll(&app, &t, url, json!({"returnImmediately": true})).await;
    let mut users = Vec::new();
    for set in got["sets"].as_object().unwrap().values() {
        let claims = check_set(&app, set.as_str().unwrap(), &c.id).await;
        users.push(claims["sub_id"]["user"]["sub"].clone());
    }
    assert!(!users.is_empty());
    assert!(
        !users.contains(&json!(alice_sub)),
        "alice was removed: {users:?}"
    );
    let all: Vec<String> = got["sets"].as_object().unwrap().keys().cloned().collect();
    poll(&app, &t, url, json!({"maxEvents": 0, "ack": all})).await;

    // Added again: her events come again.
    assert_eq!(
        subject(
            "subjects/add",
            json!({"format": "complex", "user": alice_subject})
        )
        .await,
        200
    );
    app.sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    sign_out(&app, &ada, "alice").await;
    let got = poll(&app, &t, url, json!({"returnImmediately": true})).await;
    let mut users = Vec::new();
    for set in got["sets"].as_object().unwrap().values() {
        users.push(jwt_claims(set.as_str().unwrap())["sub_id"]["user"]["sub"].clone());
    }
    assert!(users.contains(&json!(alice_sub)), "{users:?}");
}

#[tokio::test]
async fn caep_session_revoked_is_pushed_after_a_sign_out() {
    let app = spawn_app().await;
    let (c, t, ada) = setup(&app).await;
    let rx = PushReceiver::start().await;
    create(
        &app,
        &t,
        json!({"delivery": {"method": PUSH, "endpoint_url": rx.url},
                            "events_requested": [SESSION_REVOKED]}),
    )
    .await;
    let client = app.create_client("acme", &[]).await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let claims = jwt_claims(&alice);
    sign_out(&app, &ada, "alice").await;
    // The user-wide session-revoked, then the session's.
    let got = rx.wait_for(2).await;
    let set = check_set(&app, &got[1].2, &c.id).await;
    assert_eq!(event_type(&set), SESSION_REVOKED);
    let e = &set["events"][SESSION_REVOKED];
    assert!(e["event_timestamp"].is_i64());
    assert!(
        !e["reason_admin"]["en"].as_str().unwrap().is_empty(),
        "the interop profile requires reason_admin"
    );
    assert_eq!(set["sub_id"]["format"], "complex");
    assert_eq!(set["sub_id"]["session"]["id"], claims["sid"]);
    assert_eq!(
        set["sub_id"]["user"],
        json!({"format": "iss_sub", "iss": app.issuer("acme"), "sub": claims["sub"]})
    );
}

/// A server on the suite's backend whose public URL is the address it listens on, so a
/// receiver reaches it at the URLs its metadata names.
async fn spawn_app_at_its_address() -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    spawn_app_with(Backend::from_env(), |c| {
        c.listen = format!("127.0.0.1:{port}");
        c.public_url = format!("http://127.0.0.1:{port}");
    })
    .await
}

#[tokio::test]
async fn a_receiver_on_npm_jose_verifies_its_streams_and_receives_session_revoked() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let app = spawn_app_at_its_address().await;
    let (_, _, ada) = setup(&app).await;
    let push = app.create_client("acme", &["ssf.manage"]).await;
    let pollc = app.create_client("acme", &["ssf.manage"]).await;
    let signer = app.create_client("acme", &[]).await;
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/peers/ssf-receiver.mjs");
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .arg(app.url("/.well-known/ssf-configuration/pools/acme"))
        .args([&push.id, &push.secret, &pollc.id, &pollc.secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (install the peers with `npm ci --prefix tests/peers`)");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the receiver answers")
            .unwrap()
            .expect("the receiver is still running");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(v.get("error").is_none(), "the receiver failed: {v}");
        v
    };
    // It discovers, gets tokens, creates both streams and verifies them.
    let ready = next().await;
    assert_eq!(ready["step"], "verified", "{ready}");
    // Sign a user in, and out: the receiver reports the session it got by each way.
    let alice = app
        .sign_in("acme", &signer, "alice", "alice-password-1")
        .await;
    let sid = jwt_claims(&alice)["sid"].clone();
    sign_out(&app, &ada, "alice").await;
    stdin
        .write_all(format!("{}\n", json!({"await_session": sid})).as_bytes())
        .await
        .unwrap();
    let got = next().await;
    assert_eq!(got["step"], "session-revoked", "{got}");
    assert_eq!(got["push"], sid);
    assert_eq!(got["poll"], sid);
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
