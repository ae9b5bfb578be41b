//! A stand-in for one Gatehouse pool, as far as a verifier sees it: discovery, the JWKS, the
//! token and introspection endpoints, and the paged revocation feed (no snapshot, no stream),
//! with keys signed by Gatehouse's own signer. Each call is counted.

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_crypto::jws;
use gatehouse_crypto::keys::{PublicJwk, SigningKey, generate};
use gatehouse_domain::pool::SigningAlg;
use serde_json::{Value, json};

pub fn key(alg: SigningAlg, kid: &str) -> SigningKey {
    let generated = generate(alg).unwrap();
    SigningKey::from_pkcs8_with_kid(alg, &generated.pkcs8, Some(kid)).unwrap()
}

pub fn now() -> i64 {
    use gatehouse_verify::Clock;
    gatehouse_verify::SystemClock.unix_seconds()
}

pub struct Pool {
    pub issuer: String,
    pub access_key: SigningKey,
    pub set_key: SigningKey,
    pub jwks: Mutex<Vec<PublicJwk>>,
    pub items: Mutex<Vec<(i64, String)>>,
    pub jwks_hits: AtomicU64,
    pub feed_broken: AtomicBool,
    /// Tokens introspection calls inactive.
    pub inactive: Mutex<HashSet<String>>,
    pub introspections: AtomicU64,
    /// Whether the snapshot and the stream are served (404 otherwise, as before they existed).
    pub serve_stream: AtomicBool,
    pub snapshots: AtomicU64,
    /// The `Last-Event-ID` of each stream connection.
    pub last_event_ids: Mutex<Vec<i64>>,
    /// Answer the next stream connection 410.
    pub gone_once: AtomicBool,
    /// Bumped to end every open stream.
    pub drop_epoch: AtomicU64,
}

pub async fn start() -> Arc<Pool> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let access_key = key(SigningAlg::ES256, "access-1");
    let set_key = key(SigningAlg::RS256, "id-1");
    let pool = Arc::new(Pool {
        issuer: format!("http://{addr}/pools/acme"),
        jwks: Mutex::new(vec![
            access_key.public_jwk().clone(),
            set_key.public_jwk().clone(),
        ]),
        access_key,
        set_key,
        items: Mutex::new(Vec::new()),
        jwks_hits: AtomicU64::new(0),
        feed_broken: AtomicBool::new(false),
        inactive: Mutex::new(HashSet::new()),
        introspections: AtomicU64::new(0),
        serve_stream: AtomicBool::new(false),
        snapshots: AtomicU64::new(0),
        last_event_ids: Mutex::new(Vec::new()),
        gone_once: AtomicBool::new(false),
        drop_epoch: AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route(
            "/pools/acme/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/pools/acme/jwks", get(jwks))
        .route("/pools/acme/oauth2/token", post(token))
        .route("/pools/acme/oauth2/introspect", post(introspect))
        .route("/pools/acme/api/auth/revocations", get(feed))
        .route("/pools/acme/api/auth/revocations/snapshot", get(snapshot))
        .route("/pools/acme/api/auth/revocations/stream", get(stream))
        .with_state(pool.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    pool
}

async fn discovery(State(p): State<Arc<Pool>>) -> Json<Value> {
    let i = &p.issuer;
    Json(json!({
        "issuer": i,
        "jwks_uri": format!("{i}/jwks"),
        "token_endpoint": format!("{i}/oauth2/token"),
        "introspection_endpoint": format!("{i}/oauth2/introspect"),
    }))
}

async fn jwks(State(p): State<Arc<Pool>>) -> Json<Value> {
    p.jwks_hits.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "keys": *p.jwks.lock().unwrap() }))
}

async fn token() -> Json<Value> {
    Json(json!({"access_token": "feed-token", "token_type": "Bearer", "expires_in": 3600}))
}

async fn introspect(
    State(p): State<Arc<Pool>>,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    p.introspections.fetch_add(1, Ordering::SeqCst);
    let token = form.get("token").cloned().unwrap_or_default();
    let active = !p.inactive.lock().unwrap().contains(&token);
    Json(json!({ "active": active }))
}

#[derive(serde::Deserialize)]
struct After {
    #[serde(default)]
    after: i64,
}

async fn feed(State(p): State<Arc<Pool>>, Query(q): Query<After>) -> Response {
    if p.feed_broken.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let items: Vec<Value> = p
        .items
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _)| *c > q.after)
        .take(100)
        .map(|(c, s)| json!({"cursor": c, "set": s}))
        .collect();
    let next = items
        .last()
        .map_or(q.after, |i| i["cursor"].as_i64().unwrap());
    Json(json!({ "items": items, "next": next })).into_response()
}

async fn snapshot(State(p): State<Arc<Pool>>) -> Response {
    if !p.serve_stream.load(Ordering::SeqCst) {
        return StatusCode::NOT_FOUND.into_response();
    }
    p.snapshots.fetch_add(1, Ordering::SeqCst);
    let items = p.items.lock().unwrap().clone();
    let cursor = items.last().map_or(0, |(c, _)| *c);
    let items: Vec<Value> = items
        .into_iter()
        .map(|(c, s)| json!({"cursor": c, "set": s}))
        .collect();
    Json(json!({"cursor": cursor, "retention_seconds": 3900, "items": items})).into_response()
}

async fn stream(State(p): State<Arc<Pool>>, headers: axum::http::HeaderMap) -> Response {
    if !p.serve_stream.load(Ordering::SeqCst) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok()?.parse::<i64>().ok())
        .unwrap_or(0);
    p.last_event_ids.lock().unwrap().push(last);
    if p.gone_once.swap(false, Ordering::SeqCst) {
        return StatusCode::GONE.into_response();
    }
    let epoch = p.drop_epoch.load(Ordering::SeqCst);
    let events =
        futures_util::stream::unfold((p, last, true), move |(p, cursor, first)| async move {
            if first {
                let heartbeat = axum::body::Bytes::from_static(b": heartbeat\n\n");
                return Some((
                    Ok::<_, std::convert::Infallible>(heartbeat),
                    (p, cursor, false),
                ));
            }
            loop {
                if p.drop_epoch.load(Ordering::SeqCst) != epoch {
                    return None;
                }
                let next = p
                    .items
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(c, _)| *c > cursor)
                    .cloned();
                if let Some((c, set)) = next {
                    let event = format!("id: {c}\nevent: set\ndata: {set}\n\n");
                    return Some((Ok(event.into()), (p, c, false)));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(axum::body::Body::from_stream(events))
        .unwrap()
}

impl Pool {
    /// An access token of this pool with `claims` over the usual ones.
    pub fn token(&self, extra: Value) -> String {
        self.token_with(&self.access_key, "at+jwt", extra)
    }

    pub fn token_with(&self, key: &SigningKey, typ: &str, extra: Value) -> String {
        let now = now();
        let mut claims = json!({
            "iss": self.issuer, "sub": "user-1", "aud": self.issuer,
            "exp": now + 600, "iat": now, "jti": format!("jti-{}", rand_id()),
            "sid": "session-1", "username": "alice", "groups": ["staff"],
            "token_use": "access", "client_id": "c1", "scope": "openid",
        });
        merge(&mut claims, extra);
        jws::sign(key, typ, &claims).unwrap()
    }

    /// A SET as the feed carries it, with `extra` over the usual claims.
    pub fn set(&self, event: &str, subject: Value, at: i64, extra: Value) -> String {
        let mut claims = json!({
            "iss": self.issuer,
            "aud": format!("{}/api/auth/revocations", self.issuer),
            "jti": rand_id(), "iat": at, "txn": "t",
            "sub_id": subject,
            "events": { event: { "event_timestamp": at } },
        });
        merge(&mut claims, extra);
        jws::sign(&self.set_key, "secevent+jwt", &claims).unwrap()
    }

    pub fn push(&self, set: String) {
        let mut items = self.items.lock().unwrap();
        let cursor = items.len() as i64 + 1;
        items.push((cursor, set));
    }

    pub fn user_subject(&self, sub: &str) -> Value {
        json!({"format":"complex","user":{"format":"iss_sub","iss":self.issuer,"sub":sub},
               "tenant":{"format":"opaque","id":"acme"}})
    }
}

pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";

pub fn merge(into: &mut Value, extra: Value) {
    if let (Some(into), Value::Object(extra)) = (into.as_object_mut(), extra) {
        for (k, v) in extra {
            if v.is_null() {
                into.remove(&k);
            } else {
                into.insert(k, v);
            }
        }
    }
}

pub fn rand_id() -> String {
    URL_SAFE_NO_PAD.encode(gatehouse_crypto::secret::random_token().expose().as_bytes())
}

/// A compact JWS with a hand-made header, signed with HMAC-SHA256 under `secret`.
pub fn hmac_token(header: Value, claims: Value, secret: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Polls `f` until it is true, for at most ten seconds.
pub async fn eventually(mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the condition did not hold within ten seconds");
}
