//! Limits on failed attempts per source address and per app client, in front of the
//! endpoints that check a secret: the token, introspection and revocation endpoints, sign-in,
//! challenge answers, reset confirmation and attribute verification.
//!
//! Each source address and each client has a token bucket of failures: a failed attempt (an
//! answer 401, or 400 from an endpoint that checks a code) takes a token, time puts them back,
//! and while a bucket is empty the address or client is answered 429 with `Retry-After`
//! before its request is looked at. Successes cost nothing, so no legitimate load is ever
//! slowed, however heavy. The buckets are in this process (per instance); the per-username
//! count that locks accounts is in the database (`gatehouse_domain::lockout`).
//!
//! The source address is the connection's peer, unless that peer is a trusted proxy
//! (`limits.trusted_proxies`): then it is the right-most address of `X-Forwarded-For` that is
//! not itself a trusted proxy.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use ipnet::IpNet;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::basic_credentials;

/// Buckets kept at most per kind; past this, full buckets are forgotten first.
const MAX_BUCKETS: usize = 100_000;

/// How many failures a source address or a client may make.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitSettings {
    /// Failures an address may make at once.
    pub address_burst: u32,
    /// Failures an address earns back per minute.
    pub address_per_minute: u32,
    /// Failures a client may make at once (its users mistype too).
    pub client_burst: u32,
    /// Failures a client earns back per minute.
    pub client_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            address_burst: 30,
            address_per_minute: 30,
            client_burst: 300,
            client_per_minute: 300,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct Buckets<K> {
    burst: f64,
    per_sec: f64,
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_sec: f64::from(per_minute.max(1)) / 60.0,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, b: Bucket, now: Instant) -> Bucket {
        let earned = now.duration_since(b.at).as_secs_f64() * self.per_sec;
        Bucket {
            tokens: (b.tokens + earned).min(self.burst),
            at: now,
        }
    }

    /// Seconds until the key may try again, if it must wait.
    fn wait(&self, key: &K, now: Instant) -> Option<u32> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let b = self.refilled(*map.get(key)?, now);
        (b.tokens < 1.0).then(|| {
            let secs = ((1.0 - b.tokens) / self.per_sec).ceil();
            // At most a day: the cast cannot truncate meaningfully.
            secs.clamp(1.0, 86_400.0) as u32
        })
    }

    fn fail(&self, key: K, now: Instant) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_BUCKETS && !map.contains_key(&key) {
            let (burst, per_sec) = (self.burst, self.per_sec);
            map.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < burst);
            if map.len() >= MAX_BUCKETS {
                // Still full of live buckets: an address spray. Start over rather than grow.
                map.clear();
            }
        }
        let b = map.get(&key).copied().map_or(
            Bucket {
                tokens: self.burst,
                at: now,
            },
            |b| self.refilled(b, now),
        );
        map.insert(
            key,
            Bucket {
                tokens: (b.tokens - 1.0).max(0.0),
                at: now,
            },
        );
    }

    fn is_empty(&self) -> bool {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// The failure buckets of one process.
#[derive(Debug)]
pub struct FailureLimits {
    addresses: Buckets<IpAddr>,
    clients: Buckets<String>,
    trusted_proxies: Vec<IpNet>,
}

impl FailureLimits {
    pub fn new(settings: &LimitSettings) -> Self {
        Self {
            addresses: Buckets::new(settings.address_burst, settings.address_per_minute),
            clients: Buckets::new(settings.client_burst, settings.client_per_minute),
            trusted_proxies: settings.trusted_proxies.clone(),
        }
    }

    fn trusted(&self, ip: &IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }

    /// The address the request comes from (see the module's documentation).
    pub fn source(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted(&peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusted(&ip) => continue,
                Ok(ip) => return ip,
                // Whatever a client wrote there cannot be trusted past this point.
                Err(_) => return peer,
            }
        }
        peer
    }
}

/// The client named by HTTP Basic credentials (their user part, as sent).
fn basic_client(headers: &HeaderMap) -> Option<String> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic_credentials(headers)?)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let id = text.split_once(':').map_or(text.as_str(), |(id, _)| id);
    Some(id.to_owned())
}

/// The `client_id` of a form or (when `json`) JSON body.
fn body_client(json: bool, body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    if json {
        #[derive(serde::Deserialize)]
        struct Named {
            // Cognito's API names it `ClientId`.
            #[serde(alias = "ClientId")]
            client_id: Option<String>,
        }
        return serde_json::from_slice::<Named>(body).ok()?.client_id;
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.starts_with("application/json") || t.starts_with(crate::cognito::AMZ_JSON)
        })
}

/// Whether the answer `res` from `path` is a failed attempt at a secret. Cognito's API answers
/// every refusal 400: there the exception it names decides.
fn is_failure(path: &str, res: &Response) -> bool {
    let status = res.status();
    if path.ends_with("/cognito") {
        return status == StatusCode::BAD_REQUEST
            && res
                .headers()
                .get(crate::cognito::ERROR_TYPE_HEADER)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| crate::cognito::FAILURE_EXCEPTIONS.contains(&t));
    }
    status == StatusCode::UNAUTHORIZED
        || (status == StatusCode::BAD_REQUEST
            && ["/respond", "/confirm-password-reset", "/verify-attribute"]
                .iter()
                .any(|p| path.ends_with(p)))
}

/// The OAuth endpoints among the guarded ones: they answer errors as RFC 6749 §5.2.
fn is_oauth(path: &str) -> bool {
    ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"]
        .iter()
        .any(|p| path.ends_with(p))
}

fn too_many(path: &str, retry_after_secs: u32) -> Response {
    if path.ends_with("/cognito") {
        return crate::cognito::too_many_requests(retry_after_secs);
    }
    if is_oauth(path) {
        return crate::error::oauth_too_many_requests(retry_after_secs);
    }
    if path.ends_with("/oauth2/authorize") {
        return crate::browser::throttled_page(retry_after_secs);
    }
    ApiError {
        retry_after_secs: Some(retry_after_secs),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many failed attempts; try again later",
        )
    }
    .into_response()
}

/// The middleware on the endpoints that check secrets.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limits = &state.limits;
    let now = Instant::now();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let source = peer.map(|p| limits.source(p, req.headers()));
    let path = req.uri().path().to_owned();
    if let Some(wait) = source.and_then(|ip| limits.addresses.wait(&ip, now)) {
        return too_many(&path, wait);
    }
    // The client is named by its Basic credentials, or else by its body: that is read here
    // (the handler reads the same bytes) only when there is no Basic header, and parsed only
    // when some client has failed lately or the answer is a failure.
    let basic = basic_client(req.headers());
    let (req, body) = if basic.is_some() {
        (req, None)
    } else {
        let json = is_json(req.headers());
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, crate::MAX_BODY_BYTES).await else {
            return ApiError::bad_request("the request body is too large or unreadable")
                .into_response();
        };
        (
            Request::from_parts(parts, Body::from(bytes.clone())),
            Some((json, bytes)),
        )
    };
    let client = || {
        basic
            .clone()
            .or_else(|| body.as_ref().and_then(|(json, b)| body_client(*json, b)))
    };
    if !limits.clients.is_empty()
        && let Some(wait) = client().and_then(|c| limits.clients.wait(&c, now))
    {
        return too_many(&path, wait);
    }
    let res = next.run(req).await;
    if is_failure(&path, &res) {
        let now = Instant::now();
        if let Some(ip) = source {
            limits.addresses.fail(ip, now);
        }
        if let Some(client) = client() {
            limits.clients.fail(client, now);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn buckets_empty_with_failures_and_fill_with_time() {
        let b = Buckets::new(3, 60);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.wait(&"a", t), None);
            b.fail("a", t);
        }
        assert_eq!(b.wait(&"a", t), Some(1));
        assert_eq!(b.wait(&"b", t), None);
        assert_eq!(b.wait(&"a", t + std::time::Duration::from_secs(1)), None);
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let limits = FailureLimits::new(&LimitSettings {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..LimitSettings::default()
        });
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.9, 10.1.1.1".parse().unwrap(),
        );
        // From the trusted proxy: the right-most untrusted hop, not what the client wrote
        // first.
        assert_eq!(limits.source(ip("10.0.0.2"), &h), ip("203.0.113.9"));
        // From anyone else the header is ignored.
        assert_eq!(limits.source(ip("198.51.100.7"), &h), ip("198.51.100.7"));
        // Garbage stops the walk at the proxy.
        h.insert("x-forwarded-for", "nonsense, 10.1.1.1".parse().unwrap());
        assert_eq!(limits.source(ip("10.0.0.2"), &h), ip("10.0.0.2"));
        assert_eq!(
            limits.source(ip("10.0.0.2"), &HeaderMap::new()),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn cognito_refusals_count_by_their_exception() {
        let answer = |status: StatusCode, kind: Option<&'static str>| {
            let mut res = status.into_response();
            if let Some(k) = kind {
                res.headers_mut().insert(
                    crate::cognito::ERROR_TYPE_HEADER,
                    axum::http::HeaderValue::from_static(k),
                );
            }
            res
        };
        let path = "/pools/acme/cognito";
        for k in crate::cognito::FAILURE_EXCEPTIONS {
            assert!(is_failure(path, &answer(StatusCode::BAD_REQUEST, Some(k))));
        }
        assert!(!is_failure(
            path,
            &answer(StatusCode::BAD_REQUEST, Some("InvalidParameterException"))
        ));
        assert!(!is_failure(path, &answer(StatusCode::BAD_REQUEST, None)));
        assert!(!is_failure(path, &answer(StatusCode::OK, None)));
        // Elsewhere the header means nothing: a 400 of an ordinary endpoint is no failure.
        assert!(!is_failure(
            "/pools/acme/api/auth/initiate",
            &answer(StatusCode::BAD_REQUEST, Some("NotAuthorizedException"))
        ));
        assert!(
            body_client(
                true,
                br#"{"ClientId":"abc","AuthFlow":"USER_PASSWORD_AUTH"}"#
            ) == Some("abc".to_owned())
        );
    }

    #[test]
    fn clients_are_named_by_basic_json_or_form() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "Basic YWJjOnNlY3JldA==".parse().unwrap(),
        );
        assert_eq!(basic_client(&h), Some("abc".to_owned()));
        // Clients write the scheme in any case; the token endpoint accepts them all.
        h.insert(
            header::AUTHORIZATION,
            "basic YWJjOnNlY3JldA==".parse().unwrap(),
        );
        assert_eq!(basic_client(&h), Some("abc".to_owned()));
        assert_eq!(basic_client(&HeaderMap::new()), None);
        assert_eq!(
            body_client(true, br#"{"client_id":"xyz"}"#),
            Some("xyz".to_owned())
        );
        assert_eq!(body_client(true, b"not json"), None);
        assert_eq!(
            body_client(false, b"grant_type=x&client_id=q%20r"),
            Some("q r".to_owned())
        );
        assert_eq!(body_client(false, b""), None);
    }
}
