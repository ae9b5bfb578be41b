//! The upstream OpenID Connect client against a real provider, npm `oidc-provider` (OpenID
//! certified), dressed by `tests/peers/upstream-op.mjs`: a user signs in on its page, driven
//! by plain HTTP requests as a browser would send them, and `complete` proves who signed in,
//! with ID tokens of each accepted algorithm (RS256/384/512, PS256, ES256/384, EdDSA).
//! The attacks are refused: a wrong nonce, tokens signed by another key, `alg: none`, HS256
//! keyed with the JWKS, a wrong issuer or audience, an expired token, a discovery document
//! naming another issuer, a redirect from the token endpoint, a loopback upstream the policy
//! does not allow. The provider signs with a key this test generated, so tokens minted here
//! with that key differ from real ones only in the claim under test; a stand-in token
//! endpoint hands them out (and the tokens of other keys, which no real provider would sign).
//! Facebook and Login with Amazon are stand-ins that check what the real ones check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_crypto::jws::{TYP_JWT, sign};
use gatehouse_crypto::keys::{GeneratedKey, SigningKey, generate};
use gatehouse_crypto::secret::{Secret, hmac_sha256};
use gatehouse_domain::pool::SigningAlg;
use gatehouse_service::outbound::{Outbound, OutboundPolicy};
use gatehouse_service::upstream_oidc::{
    ClientAuth, EndpointOverrides, Endpoints, IdTokenError, SignInSecrets, Step, UpstreamClient,
    UpstreamConfig, UpstreamError, UpstreamIdentity, UpstreamKind, authorization_url,
    end_session_url, read_callback,
};
use serde_json::{Map, Value, json};
use url::Url;

const REDIRECT_URI: &str = "http://127.0.0.1:1/pools/acme/oauth2/idpresponse";
const SECRET: &str = "an-upstream-client-secret-of-32-bytes!";
const ADA_PASSWORD: &str = "correct horse battery staple";
/// The provider's clients, one per ID-token algorithm Gatehouse accepts.
const ALGORITHMS: [(&str, &str); 7] = [
    ("pool-rs", "RS256"),
    ("pool-rs384", "RS384"),
    ("pool-rs512", "RS512"),
    ("pool-ps256", "PS256"),
    ("pool-es", "ES256"),
    ("pool-es384", "ES384"),
    ("pool-eddsa", "EdDSA"),
];
/// A time while the provider's tokens are valid: they are issued now.
fn now() -> i64 {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers")
}

/// Loopback allowed, plain http allowed: the policy of a development set-up.
fn client() -> UpstreamClient {
    UpstreamClient::new(
        Outbound::new(OutboundPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            allow_plain_http: true,
        })
        .unwrap(),
    )
}

/// The provider, with the RSA key this test holds.
struct Op {
    base: String,
    key: SigningKey,
    _child: tokio::process::Child,
}

impl Op {
    /// `None` (and a message) when node is not installed.
    async fn start(extra: Value) -> Option<Op> {
        use tokio::io::{AsyncBufReadExt, BufReader};
        if std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("SKIPPED: node is not installed; the upstream provider cannot run");
            return None;
        }
        assert!(
            peers_dir().join("node_modules/oidc-provider").exists(),
            "the test peers are installed (npm ci --prefix tests/peers)"
        );
        let GeneratedKey { kid, pkcs8, .. } = generate(SigningAlg::RS256).unwrap();
        let key = SigningKey::from_pkcs8_with_kid(SigningAlg::RS256, &pkcs8, Some(&kid)).unwrap();
        let client = |id: &str, alg: &str| {
            json!({
                "client_id": id, "client_secret": SECRET,
                "redirect_uris": [REDIRECT_URI],
                "post_logout_redirect_uris": ["http://127.0.0.1:1/pools/acme/signed-out"],
                "id_token_signed_response_alg": alg,
            })
        };
        let mut config = json!({
            "clients": ALGORITHMS.iter().map(|(id, alg)| client(id, alg)).collect::<Vec<_>>(),
            "users": {
                "ada": {"password": ADA_PASSWORD, "claims": {
                    "sub": "ada-7", "email": "ada@upstream.example", "email_verified": true,
                    "name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace",
                }},
            },
            "rsa_pkcs8": STANDARD.encode(&pkcs8),
            "rsa_kid": kid,
        });
        if let (Value::Object(config), Value::Object(extra)) = (&mut config, extra) {
            config.extend(extra);
        }
        let mut child = tokio::process::Command::new("node")
            .arg(peers_dir().join("upstream-op.mjs"))
            .arg(config.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("the provider starts within 30 s")
            .unwrap()
            .expect("the provider prints its base");
        let ready: Value = serde_json::from_str(&line).unwrap();
        Some(Op {
            base: ready["base"].as_str().unwrap().to_owned(),
            key,
            _child: child,
        })
    }

    fn config(&self, client_id: &str) -> UpstreamConfig {
        UpstreamConfig::oidc(self.base.clone(), client_id, Secret::new(SECRET))
    }

    /// Claims as the provider would sign them for `pool-rs`, `nonce` and `access_token` given.
    fn claims(&self, nonce: &str, access_token: &str) -> Map<String, Value> {
        let hash = gatehouse_crypto::secret::sha256(access_token.as_bytes());
        json!({
            "iss": self.base, "sub": "ada-7", "aud": "pool-rs", "nonce": nonce,
            "iat": now(), "exp": now() + 300, "at_hash": URL_SAFE_NO_PAD.encode(&hash[..16]),
        })
        .as_object()
        .unwrap()
        .clone()
    }
}

/// A browser: a cookie jar and manual redirects, so the redirect to the pool is seen.
struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, String) {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = request.header("cookie", cookie).send().await.unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in response.headers() {
            let name = axum::http::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap();
            headers.append(
                name,
                axum::http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
        }
        for set in headers.get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        (status, headers, response.text().await.unwrap())
    }

    /// Follows the provider from `start` through its sign-in page to the redirect back to
    /// the pool, and returns that URL.
    async fn sign_in(&mut self, start: Url, username: &str, password: &str) -> Url {
        let mut next = self.http.get(start.as_str());
        let mut here = start;
        for _ in 0..10 {
            let (status, headers, body) = self.send(next).await;
            if status.is_redirection() {
                let location = headers["location"].to_str().unwrap();
                here = here.join(location).unwrap();
                if here.as_str().starts_with(REDIRECT_URI) {
                    return here;
                }
                next = self.http.get(here.as_str());
                continue;
            }
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(body.contains(">Username</label>"), "{body}");
            assert!(body.contains(">Password</label>"), "{body}");
            assert!(body.contains(">Sign in</button>"), "{body}");
            let action = body.split("action=\"").nth(1).unwrap();
            let action = &action[..action.find('"').unwrap()];
            here = here.join(action).unwrap();
            next = self
                .http
                .post(here.as_str())
                .form(&[("username", username), ("password", password)]);
        }
        panic!("the sign-in did not come back to the pool");
    }
}

/// Starts `router` on loopback; returns its base URL.
async fn stand_in(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// One whole sign-in: the authorization URL, the provider's page, the callback, `complete`.
async fn sign_in(
    client: &UpstreamClient,
    op: &Op,
    config: &UpstreamConfig,
) -> (Endpoints, Result<UpstreamIdentity, UpstreamError>, Browser) {
    let endpoints = client.endpoints(config).await.unwrap();
    let secrets = SignInSecrets::generate();
    let start = authorization_url(
        &endpoints,
        config,
        REDIRECT_URI,
        secrets.state.expose(),
        secrets.nonce.expose(),
        &secrets.code_challenge(),
    );
    assert!(start.as_str().starts_with(&op.base));
    let mut browser = Browser::new();
    let back = browser.sign_in(start, "ada", ADA_PASSWORD).await;
    let code = code_of(&endpoints, &back, secrets.state.expose()).unwrap();
    let identity = client
        .complete(
            &endpoints,
            config,
            REDIRECT_URI,
            &code,
            secrets.code_verifier.expose(),
            secrets.nonce.expose(),
            now(),
        )
        .await;
    (endpoints, identity, browser)
}

/// The code of the provider's redirect back to the pool, as the pool's callback reads it.
fn code_of(endpoints: &Endpoints, back: &Url, state: &str) -> Result<String, UpstreamError> {
    let pairs: Vec<(String, String)> = back.query_pairs().into_owned().collect();
    read_callback(
        endpoints,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        state,
    )
}

#[tokio::test]
async fn a_user_signs_in_through_a_real_openid_provider() {
    let Some(op) = Op::start(json!({})).await else {
        return;
    };
    let client = client();
    for (client_id, alg) in ALGORITHMS {
        let config = op.config(client_id);
        let (endpoints, identity, mut browser) = sign_in(&client, &op, &config).await;
        assert_eq!(endpoints.issuer.as_deref(), Some(op.base.as_str()));
        assert_eq!(endpoints.client_auth, ClientAuth::ClientSecretBasic);
        assert!(endpoints.response_iss, "oidc-provider sends iss (RFC 9207)");
        let identity = identity.unwrap();
        assert_eq!(identity.subject, "ada-7", "{client_id}");
        let claims = &identity.claims;
        // From the ID token, and from userinfo beneath it (the provider releases the scopes'
        // claims at userinfo when it issues an access token).
        assert_eq!(claims["sub"], "ada-7");
        assert_eq!(claims["email"], "ada@upstream.example");
        assert_eq!(claims["email_verified"], true);
        assert_eq!(claims["name"], "Ada Lovelace");
        assert_eq!(claims["given_name"], "Ada");
        assert_eq!(claims["family_name"], "Lovelace");
        for protocol in ["iss", "aud", "exp", "iat", "nonce", "at_hash"] {
            assert!(!claims.contains_key(protocol), "{protocol}");
        }
        let id_token = identity.id_token.unwrap();
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(id_token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], alg, "{client_id}");

        // Upstream logout: the provider's RP-initiated logout asks the user to confirm, ends
        // its session and sends the browser back with the state.
        let signed_out = "http://127.0.0.1:1/pools/acme/signed-out";
        let logout =
            end_session_url(&endpoints, Some(&id_token), Some(signed_out), Some("bye")).unwrap();
        assert!(
            logout
                .as_str()
                .starts_with(&format!("{}/session/end", op.base))
        );
        let request = browser.http.get(logout.as_str());
        let (status, _, body) = browser.send(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains(">Sign out</button>"), "{body}");
        let xsrf = body.split("name=\"xsrf\" value=\"").nth(1).unwrap();
        let xsrf = &xsrf[..xsrf.find('"').unwrap()];
        let request = browser
            .http
            .post(format!("{}/session/end/confirm", op.base))
            .form(&[("xsrf", xsrf), ("logout", "yes")]);
        let (status, headers, _) = browser.send(request).await;
        assert!(status.is_redirection());
        assert_eq!(
            headers["location"].to_str().unwrap(),
            format!("{signed_out}?state=bye")
        );
        // The provider's session is over: the next sign-in shows its page again.
        let secrets = SignInSecrets::generate();
        let again = authorization_url(
            &endpoints,
            &config,
            REDIRECT_URI,
            secrets.state.expose(),
            secrets.nonce.expose(),
            &secrets.code_challenge(),
        );
        let mut page = browser.http.get(again.as_str());
        let mut shown = false;
        for _ in 0..5 {
            let (status, headers, body) = browser.send(page).await;
            if status == StatusCode::OK {
                assert!(body.contains(">Sign in</button>"), "{body}");
                shown = true;
                break;
            }
            let location = headers["location"].to_str().unwrap();
            assert!(
                !location.starts_with(REDIRECT_URI),
                "signed in without a page"
            );
            page = browser.http.get(again.join(location).unwrap().as_str());
        }
        assert!(shown, "the sign-in page after logout");
    }
}

#[tokio::test]
async fn client_secret_post_is_used_where_discovery_lists_only_it() {
    let Some(op) = Op::start(json!({"client_auth_methods": ["client_secret_post"]})).await else {
        return;
    };
    let client = client();
    let (endpoints, identity, _) = sign_in(&client, &op, &op.config("pool-rs")).await;
    assert_eq!(endpoints.client_auth, ClientAuth::ClientSecretPost);
    assert_eq!(identity.unwrap().subject, "ada-7");
}

#[tokio::test]
async fn the_real_providers_tokens_are_refused_for_a_wrong_nonce_or_out_of_time() {
    let Some(op) = Op::start(json!({})).await else {
        return;
    };
    let client = client();
    let config = op.config("pool-rs");
    let endpoints = client.endpoints(&config).await.unwrap();
    // Each case is a fresh sign-in: a code is used once.
    for (case, expected) in [
        ("wrong nonce", IdTokenError::Nonce),
        ("expired", IdTokenError::Expired),
        ("issued in the future", IdTokenError::NotYetValid),
    ] {
        let secrets = SignInSecrets::generate();
        let start = authorization_url(
            &endpoints,
            &config,
            REDIRECT_URI,
            secrets.state.expose(),
            secrets.nonce.expose(),
            &secrets.code_challenge(),
        );
        let back = Browser::new().sign_in(start, "ada", ADA_PASSWORD).await;
        // The callback with another sign-in's state is refused.
        assert_eq!(
            code_of(&endpoints, &back, "another-state").unwrap_err(),
            UpstreamError::StateMismatch
        );
        let code = code_of(&endpoints, &back, secrets.state.expose()).unwrap();
        let (nonce, at) = match case {
            "wrong nonce" => ("another-sign-ins-nonce", now()),
            // The provider's ID tokens live for an hour by default.
            "expired" => (secrets.nonce.expose(), now() + 3600 + 61),
            _ => (secrets.nonce.expose(), now() - 61),
        };
        let err = client
            .complete(
                &endpoints,
                &config,
                REDIRECT_URI,
                &code,
                secrets.code_verifier.expose(),
                nonce,
                at,
            )
            .await
            .unwrap_err();
        assert_eq!(err, UpstreamError::IdToken(expected), "{case}");
    }

    // A wrong code verifier: the provider refuses the exchange (PKCE is required).
    let secrets = SignInSecrets::generate();
    let start = authorization_url(
        &endpoints,
        &config,
        REDIRECT_URI,
        secrets.state.expose(),
        secrets.nonce.expose(),
        &secrets.code_challenge(),
    );
    let back = Browser::new().sign_in(start, "ada", ADA_PASSWORD).await;
    let code = code_of(&endpoints, &back, secrets.state.expose()).unwrap();
    let err = client
        .complete(
            &endpoints,
            &config,
            REDIRECT_URI,
            &code,
            "another-verifier-of-forty-three-characters-xx",
            secrets.nonce.expose(),
            now(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        UpstreamError::Status {
            step: Step::Token,
            status: 400,
            error: Some("invalid_grant".into()),
        }
    );
}

/// A token endpoint that hands out whatever ID token the test sets, and the access token
/// its `at_hash` names.
#[derive(Clone, Default)]
struct TokenStandIn {
    id_token: Arc<Mutex<String>>,
    userinfo: Arc<Mutex<Value>>,
}

async fn stand_in_userinfo(State(s): State<TokenStandIn>, headers: HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {STAND_IN_ACCESS_TOKEN}"))
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(s.userinfo.lock().unwrap().clone()).into_response()
}

const STAND_IN_ACCESS_TOKEN: &str = "stand-in-access-token";

async fn stand_in_token(State(s): State<TokenStandIn>) -> Json<Value> {
    let id_token = s.id_token.lock().unwrap().clone();
    Json(json!({
        "access_token": STAND_IN_ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 60,
        "id_token": id_token,
    }))
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[tokio::test]
async fn forged_and_misaddressed_id_tokens_are_refused() {
    let Some(op) = Op::start(json!({})).await else {
        return;
    };
    let tokens = TokenStandIn::default();
    let token_base = stand_in(
        Router::new()
            .route("/token", post(stand_in_token))
            .route("/userinfo", get(stand_in_userinfo))
            .with_state(tokens.clone()),
    )
    .await;
    let client = client();
    // Discovery and the JWKS are the real provider's; only the token endpoint stands in.
    let config = UpstreamConfig {
        endpoints: EndpointOverrides {
            token: Some(format!("{token_base}/token")),
            ..Default::default()
        },
        // No userinfo: the stand-in's access token means nothing to the provider.
        ..op.config("pool-rs")
    };
    let mut endpoints = client.endpoints(&config).await.unwrap();
    endpoints.userinfo = None;
    let jwks = reqwest::get(format!("{}/jwks", op.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let real_kid = op.key.kid().to_owned();
    let nonce = "the-nonce-this-sign-in-sent";

    let attempt = |id_token: String| {
        let client = client.clone();
        let endpoints = endpoints.clone();
        let config = config.clone();
        let tokens = tokens.clone();
        async move {
            *tokens.id_token.lock().unwrap() = id_token;
            client
                .complete(
                    &endpoints,
                    &config,
                    REDIRECT_URI,
                    "code",
                    "verifier",
                    nonce,
                    now(),
                )
                .await
        }
    };
    let with = |changes: Value| {
        let mut claims = op.claims(nonce, STAND_IN_ACCESS_TOKEN);
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.remove(k);
            } else {
                claims.insert(k.clone(), v.clone());
            }
        }
        sign(&op.key, TYP_JWT, &claims).unwrap()
    };

    // The control: a token signed with the provider's key, every claim right, is accepted,
    // so each refusal below is for the one thing that differs.
    let identity = attempt(with(json!({}))).await.unwrap();
    assert_eq!(identity.subject, "ada-7");

    // Userinfo's claims go beneath the ID token's, and only when it names the same user.
    let with_userinfo = Endpoints {
        userinfo: Some(Url::parse(&format!("{token_base}/userinfo")).unwrap()),
        ..endpoints.clone()
    };
    let through_userinfo = |userinfo: Value| {
        *tokens.userinfo.lock().unwrap() = userinfo;
        *tokens.id_token.lock().unwrap() = with(json!({"name": "Ada Lovelace"}));
        let (client, endpoints, config) = (client.clone(), with_userinfo.clone(), config.clone());
        async move {
            client
                .complete(
                    &endpoints,
                    &config,
                    REDIRECT_URI,
                    "code",
                    "verifier",
                    nonce,
                    now(),
                )
                .await
                .unwrap()
        }
    };
    let same = through_userinfo(
        json!({"sub": "ada-7", "name": "Mallory", "email": "ada@upstream.example"}),
    )
    .await;
    assert_eq!(same.claims["name"], "Ada Lovelace");
    assert_eq!(same.claims["email"], "ada@upstream.example");
    let other =
        through_userinfo(json!({"sub": "mallory", "email": "mallory@upstream.example"})).await;
    assert_eq!(other.subject, "ada-7");
    assert!(!other.claims.contains_key("email"), "{:?}", other.claims);

    // Signed by another key, under the provider's kid, and under a kid of its own.
    let other = generate(SigningAlg::RS256).unwrap();
    let claims = op.claims(nonce, STAND_IN_ACCESS_TOKEN);
    for (kid, expected) in [
        (real_kid.as_str(), IdTokenError::BadSignature),
        (other.kid.as_str(), IdTokenError::UnknownKey),
    ] {
        let key =
            SigningKey::from_pkcs8_with_kid(SigningAlg::RS256, &other.pkcs8, Some(kid)).unwrap();
        let token = sign(&key, TYP_JWT, &claims).unwrap();
        assert_eq!(
            attempt(token).await.unwrap_err(),
            UpstreamError::IdToken(expected),
            "kid {kid}"
        );
    }

    // alg none, with and without a signature; HS256 keyed with the JWKS's public material.
    let payload = b64(&Value::Object(claims.clone()));
    let none = b64(&json!({"alg": "none", "typ": "JWT", "kid": real_kid}));
    let hs = b64(&json!({"alg": "HS256", "typ": "JWT", "kid": real_kid}));
    let jwks_value: Value = serde_json::from_str(&jwks).unwrap();
    let n = jwks_value["keys"][0]["n"].as_str().unwrap().to_owned();
    let mut forged = vec![
        format!("{none}.{payload}."),
        format!("{none}.{payload}.AAAA"),
    ];
    for secret in [jwks.as_bytes(), n.as_bytes()] {
        let mac = hmac_sha256(secret, format!("{hs}.{payload}").as_bytes());
        forged.push(format!("{hs}.{payload}.{}", URL_SAFE_NO_PAD.encode(mac)));
    }
    for token in forged {
        assert_eq!(
            attempt(token.clone()).await.unwrap_err(),
            UpstreamError::IdToken(IdTokenError::AlgorithmNotAllowed),
            "{token:.60}"
        );
    }
    // An RS256 token under the kid of the provider's EC key: the algorithm does not fit it.
    let ec_named =
        SigningKey::from_pkcs8_with_kid(SigningAlg::RS256, &other.pkcs8, Some("ec-1")).unwrap();
    assert_eq!(
        attempt(sign(&ec_named, TYP_JWT, &claims).unwrap())
            .await
            .unwrap_err(),
        UpstreamError::IdToken(IdTokenError::AlgorithmNotAllowed)
    );

    // Signed by the provider's key, one claim wrong.
    for (changes, expected) in [
        (json!({"iss": "http://127.0.0.1:1"}), IdTokenError::Issuer),
        (
            json!({"iss": format!("{}/", op.base)}),
            IdTokenError::Issuer,
        ),
        (json!({"aud": "another-client"}), IdTokenError::Audience),
        (
            json!({"aud": ["another-client", "pool-rs"]}),
            IdTokenError::AuthorizedParty,
        ),
        (
            json!({"aud": ["another-client", "pool-rs"], "azp": "another-client"}),
            IdTokenError::AuthorizedParty,
        ),
        (json!({"exp": now() - 61}), IdTokenError::Expired),
        (json!({"exp": null}), IdTokenError::MissingClaim("exp")),
        (json!({"iat": now() + 120}), IdTokenError::NotYetValid),
        (json!({"nbf": now() + 120}), IdTokenError::NotYetValid),
        (json!({"nonce": "another"}), IdTokenError::Nonce),
        (json!({"nonce": null}), IdTokenError::Nonce),
        (json!({"sub": null}), IdTokenError::MissingClaim("sub")),
        (
            json!({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}),
            IdTokenError::AccessTokenHash,
        ),
    ] {
        assert_eq!(
            attempt(with(changes.clone())).await.unwrap_err(),
            UpstreamError::IdToken(expected),
            "{changes}"
        );
    }
    // Several audiences with this client as the authorized party is fine, and so is a small
    // clock skew.
    let identity = attempt(with(
        json!({"aud": ["another-client", "pool-rs"], "azp": "pool-rs", "exp": now() - 30}),
    ))
    .await
    .unwrap();
    assert_eq!(identity.subject, "ada-7");
    // A token of another type, signed by the provider's key, is refused.
    let access_token = sign(&op.key, "at+jwt", &op.claims(nonce, STAND_IN_ACCESS_TOKEN)).unwrap();
    assert_eq!(
        attempt(access_token).await.unwrap_err(),
        UpstreamError::IdToken(IdTokenError::WrongType)
    );
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_refused() {
    let Some(op) = Op::start(json!({})).await else {
        return;
    };
    let client = client();
    // The real provider's document, asked for under another spelling of its issuer.
    let config = op.config("pool-rs");
    let config = UpstreamConfig {
        issuer: Some(format!("{}/", op.base)),
        ..config
    };
    assert!(matches!(
        client.endpoints(&config).await.unwrap_err(),
        UpstreamError::IssuerMismatch { .. }
    ));
    // A server claiming to be Google's issuer.
    let base = stand_in(Router::new().route(
        "/.well-known/openid-configuration",
        get(|| async {
            Json(json!({
                "issuer": "https://accounts.google.com",
                "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
                "token_endpoint": "https://oauth2.googleapis.com/token",
                "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs",
            }))
        }),
    ))
    .await;
    let err = client
        .endpoints(&UpstreamConfig::oidc(
            base.clone(),
            "pool-rs",
            Secret::new(SECRET),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        UpstreamError::IssuerMismatch {
            configured: base,
            found: "https://accounts.google.com".into()
        }
    );
}

#[tokio::test]
async fn a_redirect_from_the_token_endpoint_is_not_followed() {
    let hits = Arc::new(Mutex::new(0u32));
    let counted = hits.clone();
    let elsewhere = stand_in(Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            *counted.lock().unwrap() += 1;
            Json(json!({"access_token": "x", "token_type": "Bearer", "id_token": "x.y.z"}))
        }
    }))
    .await;
    let target = format!("{elsewhere}/token");
    let token = stand_in(Router::new().route(
        "/token",
        post(move || async move { Redirect::temporary(&target) }),
    ))
    .await;
    let config = UpstreamConfig {
        endpoints: EndpointOverrides {
            authorization: Some(format!("{token}/authorize")),
            token: Some(format!("{token}/token")),
            jwks_uri: Some(format!("{token}/jwks")),
            ..Default::default()
        },
        ..UpstreamConfig::oidc(token.clone(), "pool-rs", Secret::new(SECRET))
    };
    let client = client();
    let endpoints = client.endpoints(&config).await.unwrap();
    let err = client
        .complete(
            &endpoints,
            &config,
            REDIRECT_URI,
            "code",
            "verifier",
            "nonce",
            now(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        UpstreamError::Redirected {
            step: Step::Token,
            status: 307
        }
    );
    assert_eq!(*hits.lock().unwrap(), 0, "the redirect was followed");
}

#[tokio::test]
async fn a_loopback_upstream_is_refused_unless_outbound_allow_lists_it() {
    let Some(op) = Op::start(json!({})).await else {
        return;
    };
    let strict = UpstreamClient::new(
        Outbound::new(OutboundPolicy {
            allow: Vec::new(),
            allow_plain_http: true,
        })
        .unwrap(),
    );
    let config = op.config("pool-rs");
    assert!(matches!(
        strict.endpoints(&config).await.unwrap_err(),
        UpstreamError::Refused {
            step: Step::Discovery,
            ..
        }
    ));
    // The same provider through a name that resolves to loopback: refused where resolved.
    let by_name = UpstreamConfig {
        issuer: Some(op.base.replace("127.0.0.1", "localhost")),
        ..config.clone()
    };
    assert!(matches!(
        strict.endpoints(&by_name).await.unwrap_err(),
        UpstreamError::Refused {
            step: Step::Discovery,
            ..
        }
    ));
    // Endpoints a configuration names are refused too, before any call.
    let overridden = UpstreamConfig {
        endpoints: EndpointOverrides {
            authorization: Some("https://op.example/authorize".into()),
            token: Some(format!("{}/token", op.base)),
            jwks_uri: Some("https://op.example/jwks".into()),
            ..Default::default()
        },
        issuer: Some("https://op.example".into()),
        ..config.clone()
    };
    assert!(matches!(
        strict.endpoints(&overridden).await.unwrap_err(),
        UpstreamError::Refused {
            step: Step::Token,
            ..
        }
    ));
    // With loopback allowed, the same provider is reached.
    assert!(client().endpoints(&config).await.is_ok());
}

/// A key set that changes: the provider rotated its key.
#[tokio::test]
async fn an_unknown_kid_fetches_the_key_set_again_at_most_once_in_a_while() {
    let first = generate(SigningAlg::ES256).unwrap();
    let second = generate(SigningAlg::ES256).unwrap();
    let published = Arc::new(Mutex::new(vec![first.jwk.clone()]));
    let fetches = Arc::new(Mutex::new(0u32));
    let tokens = TokenStandIn::default();
    let (p, f) = (published.clone(), fetches.clone());
    let base = stand_in(
        Router::new()
            .route("/token", post(stand_in_token))
            .with_state(tokens.clone())
            .route(
                "/jwks",
                get(move || {
                    let (p, f) = (p.clone(), f.clone());
                    async move {
                        *f.lock().unwrap() += 1;
                        Json(json!({"keys": *p.lock().unwrap()}))
                    }
                }),
            ),
    )
    .await;
    let config = UpstreamConfig {
        endpoints: EndpointOverrides {
            authorization: Some(format!("{base}/authorize")),
            token: Some(format!("{base}/token")),
            jwks_uri: Some(format!("{base}/jwks")),
            ..Default::default()
        },
        ..UpstreamConfig::oidc(base.clone(), "pool-rs", Secret::new(SECRET))
    };
    let client = client();
    let endpoints = client.endpoints(&config).await.unwrap();
    let token_of = |key: &GeneratedKey| {
        let sk =
            SigningKey::from_pkcs8_with_kid(SigningAlg::ES256, &key.pkcs8, Some(&key.kid)).unwrap();
        let hash = gatehouse_crypto::secret::sha256(STAND_IN_ACCESS_TOKEN.as_bytes());
        sign(
            &sk,
            TYP_JWT,
            &json!({"iss": base, "sub": "u", "aud": "pool-rs", "nonce": "n", "iat": now(),
                    "exp": now() + 60, "at_hash": URL_SAFE_NO_PAD.encode(&hash[..16])}),
        )
        .unwrap()
    };
    let attempt = |token: String| {
        *tokens.id_token.lock().unwrap() = token;
        client.complete(&endpoints, &config, REDIRECT_URI, "c", "v", "n", now())
    };
    attempt(token_of(&first)).await.unwrap();
    attempt(token_of(&first)).await.unwrap();
    assert_eq!(*fetches.lock().unwrap(), 1, "the key set is cached");

    // The provider rotates. The set was fetched just now, so a token naming the new key is
    // refused without another fetch: made-up kids cannot make Gatehouse flood the provider.
    // (That a set older than the interval is fetched again is a unit test.)
    *published.lock().unwrap() = vec![first.jwk.clone(), second.jwk.clone()];
    assert_eq!(
        attempt(token_of(&second)).await.unwrap_err(),
        UpstreamError::IdToken(IdTokenError::UnknownKey)
    );
    assert_eq!(*fetches.lock().unwrap(), 1);
}

/// Facebook, as its documentation describes it: the login dialog, the code exchanged at the
/// Graph API with the app's id and secret, `/me` with the token and `appsecret_proof`.
#[derive(Clone, Default)]
struct FacebookStandIn {
    /// code → (redirect_uri, code_challenge)
    codes: Arc<Mutex<HashMap<String, (String, String)>>>,
    profile_calls: Arc<Mutex<u32>>,
}

const FB_APP_ID: &str = "1234567890";
const FB_APP_SECRET: &str = "facebook-app-secret";
const FB_TOKEN: &str = "EAAB-facebook-user-access-token";

async fn fb_dialog(
    State(s): State<FacebookStandIn>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if q.get("client_id").map(String::as_str) != Some(FB_APP_ID)
        || q.get("response_type").map(String::as_str) != Some("code")
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
        || q.get("scope").map(String::as_str) != Some("public_profile email")
    {
        return (StatusCode::BAD_REQUEST, "bad dialog request").into_response();
    }
    let code = "fb-code-1".to_owned();
    s.codes.lock().unwrap().insert(
        code.clone(),
        (q["redirect_uri"].clone(), q["code_challenge"].clone()),
    );
    let mut back = Url::parse(&q["redirect_uri"]).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q["state"]);
    Redirect::to(back.as_str()).into_response()
}

fn fb_error(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"message": message, "type": "OAuthException", "code": 100}})),
    )
        .into_response()
}

async fn fb_token(
    State(s): State<FacebookStandIn>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if f.get("client_id").map(String::as_str) != Some(FB_APP_ID)
        || f.get("client_secret").map(String::as_str) != Some(FB_APP_SECRET)
    {
        return fb_error("Error validating client secret.");
    }
    let Some((redirect_uri, challenge)) = f
        .get("code")
        .and_then(|c| s.codes.lock().unwrap().remove(c))
    else {
        return fb_error("This authorization code has been used.");
    };
    if f.get("redirect_uri") != Some(&redirect_uri) {
        return fb_error("Error validating verification code.");
    }
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    let computed = URL_SAFE_NO_PAD.encode(gatehouse_crypto::secret::sha256(verifier.as_bytes()));
    if computed != challenge {
        return fb_error("Invalid code verifier.");
    }
    Json(json!({"access_token": FB_TOKEN, "token_type": "bearer", "expires_in": 5183944}))
        .into_response()
}

async fn fb_me(
    State(s): State<FacebookStandIn>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    *s.profile_calls.lock().unwrap() += 1;
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {FB_TOKEN}"))
    {
        return fb_error("An active access token must be used.");
    }
    let proof: String = hmac_sha256(FB_APP_SECRET.as_bytes(), FB_TOKEN.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if q.get("appsecret_proof") != Some(&proof) {
        return fb_error("Invalid appsecret_proof provided in the API argument");
    }
    if q.get("fields").map(String::as_str) != Some("id,name,email,first_name,last_name") {
        return fb_error("unexpected fields");
    }
    Json(json!({
        "id": "10158000000000001", "name": "Ada Lovelace", "email": "ada@facebook.example",
        "first_name": "Ada", "last_name": "Lovelace",
    }))
    .into_response()
}

#[tokio::test]
async fn the_facebook_preset_signs_in_through_the_graph_api() {
    let fb = FacebookStandIn::default();
    let base = stand_in(
        Router::new()
            .route("/v19.0/dialog/oauth", get(fb_dialog))
            .route("/v19.0/oauth/access_token", post(fb_token))
            .route("/v19.0/me", get(fb_me))
            .with_state(fb.clone()),
    )
    .await;
    let overrides = EndpointOverrides {
        authorization: Some(format!("{base}/v19.0/dialog/oauth")),
        token: Some(format!("{base}/v19.0/oauth/access_token")),
        userinfo: Some(format!(
            "{base}/v19.0/me?fields=id,name,email,first_name,last_name"
        )),
        ..Default::default()
    };
    let config = UpstreamConfig {
        endpoints: overrides,
        ..UpstreamConfig::preset(
            UpstreamKind::Facebook,
            FB_APP_ID,
            Secret::new(FB_APP_SECRET),
        )
    };
    let client = client();
    let endpoints = client.endpoints(&config).await.unwrap();
    let secrets = SignInSecrets::generate();
    let start = authorization_url(
        &endpoints,
        &config,
        REDIRECT_URI,
        secrets.state.expose(),
        secrets.nonce.expose(),
        &secrets.code_challenge(),
    );
    let mut browser = Browser::new();
    let request = browser.http.get(start.as_str());
    let (status, headers, _) = browser.send(request).await;
    assert!(status.is_redirection());
    let back = Url::parse(headers["location"].to_str().unwrap()).unwrap();
    let code = code_of(&endpoints, &back, secrets.state.expose()).unwrap();
    let complete = |code: String, config: UpstreamConfig| {
        let (client, endpoints) = (client.clone(), endpoints.clone());
        let verifier = secrets.code_verifier.expose().to_owned();
        async move {
            client
                .complete(
                    &endpoints,
                    &config,
                    REDIRECT_URI,
                    &code,
                    &verifier,
                    "",
                    now(),
                )
                .await
        }
    };
    let identity = complete(code.clone(), config.clone()).await.unwrap();
    assert_eq!(identity.subject, "10158000000000001");
    assert_eq!(identity.claims["email"], "ada@facebook.example");
    assert_eq!(identity.claims["first_name"], "Ada");
    assert_eq!(identity.claims["last_name"], "Lovelace");
    assert_eq!(identity.id_token, None);

    // The code again: Facebook refuses it, and its error object is not repeated.
    let err = complete(code, config.clone()).await.unwrap_err();
    assert_eq!(
        err,
        UpstreamError::Status {
            step: Step::Token,
            status: 400,
            error: None
        }
    );
    // Another app secret: the token endpoint refuses it.
    fb.codes.lock().unwrap().insert(
        "fb-code-2".into(),
        (REDIRECT_URI.into(), secrets.code_challenge()),
    );
    let wrong = UpstreamConfig {
        client_secret: Secret::new("another-secret"),
        ..config
    };
    assert!(matches!(
        complete("fb-code-2".into(), wrong).await.unwrap_err(),
        UpstreamError::Status {
            step: Step::Token,
            ..
        }
    ));
    assert_eq!(*fb.profile_calls.lock().unwrap(), 1);
}

/// Login with Amazon: the code exchanged at `/auth/o2/token` with the client's id and secret
/// in the form, then `/user/profile` with the token.
async fn amazon_token(Form(f): Form<HashMap<String, String>>) -> Response {
    let ok = f.get("grant_type").map(String::as_str) == Some("authorization_code")
        && f.get("code").map(String::as_str) == Some("amzn-code")
        && f.get("client_id").map(String::as_str) == Some("amzn1.application-oa2-client.1")
        && f.get("client_secret").map(String::as_str) == Some("amazon-secret")
        && f.get("redirect_uri").map(String::as_str) == Some(REDIRECT_URI)
        && f.get("code_verifier").is_some_and(|v| v.len() >= 43);
    if !ok {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "bad request"})),
        )
            .into_response();
    }
    Json(json!({
        "access_token": "Atza|amazon-token", "token_type": "bearer", "expires_in": 3600,
        "refresh_token": "Atzr|amazon-refresh",
    }))
    .into_response()
}

async fn amazon_profile(headers: HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some("Bearer Atza|amazon-token")
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_token"})),
        )
            .into_response();
    }
    Json(json!({
        "user_id": "amzn1.account.AEXAMPLE", "name": "Ada Lovelace",
        "email": "ada@amazon.example",
    }))
    .into_response()
}

#[tokio::test]
async fn the_amazon_preset_signs_in_through_its_profile_api() {
    let base = stand_in(
        Router::new()
            .route("/auth/o2/token", post(amazon_token))
            .route("/user/profile", get(amazon_profile)),
    )
    .await;
    let config = UpstreamConfig {
        endpoints: EndpointOverrides {
            token: Some(format!("{base}/auth/o2/token")),
            userinfo: Some(format!("{base}/user/profile")),
            ..Default::default()
        },
        ..UpstreamConfig::preset(
            UpstreamKind::Amazon,
            "amzn1.application-oa2-client.1",
            Secret::new("amazon-secret"),
        )
    };
    let client = client();
    let endpoints = client.endpoints(&config).await.unwrap();
    assert_eq!(
        endpoints.authorization.as_str(),
        "https://www.amazon.com/ap/oa"
    );
    let verifier = SignInSecrets::generate().code_verifier;
    let identity = client
        .complete(
            &endpoints,
            &config,
            REDIRECT_URI,
            "amzn-code",
            verifier.expose(),
            "",
            now(),
        )
        .await
        .unwrap();
    assert_eq!(identity.subject, "amzn1.account.AEXAMPLE");
    assert_eq!(identity.claims["email"], "ada@amazon.example");
    let err = client
        .complete(
            &endpoints,
            &config,
            REDIRECT_URI,
            "another-code",
            verifier.expose(),
            "",
            now(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        UpstreamError::Status {
            step: Step::Token,
            status: 400,
            error: Some("invalid_grant".into())
        }
    );
}
