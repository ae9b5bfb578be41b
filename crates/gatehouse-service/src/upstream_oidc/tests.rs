use super::*;
use crate::outbound::OutboundPolicy;

fn endpoints(issuer: Option<&str>, response_iss: bool) -> Endpoints {
    Endpoints {
        issuer: issuer.map(str::to_owned),
        authorization: Url::parse("https://op.example/authorize?tenant=t1").unwrap(),
        token: Url::parse("https://op.example/token").unwrap(),
        userinfo: None,
        jwks_uri: None,
        end_session: Some(Url::parse("https://op.example/logout").unwrap()),
        client_auth: ClientAuth::ClientSecretBasic,
        response_iss,
    }
}

fn query(url: &Url) -> Vec<(String, String)> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn pkce_s256_matches_rfc_7636() {
    assert_eq!(
        pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    let secrets = SignInSecrets::generate();
    assert_eq!(
        secrets.code_challenge(),
        pkce_s256(secrets.code_verifier.expose())
    );
    assert_ne!(secrets.state, secrets.nonce);
    assert!(!format!("{secrets:?}").contains(secrets.nonce.expose()));
}

#[test]
fn the_authorization_request_is_code_with_pkce_and_a_nonce_for_openid() {
    let config = UpstreamConfig {
        scopes: vec!["email".into(), "openid".into(), "email".into()],
        ..UpstreamConfig::oidc("https://op.example", "gh", Secret::new("s"))
    };
    let url = authorization_url(
        &endpoints(Some("https://op.example"), false),
        &config,
        "https://id.example/pools/acme/oauth2/idpresponse",
        "st",
        "no",
        "ch",
    );
    let q = query(&url);
    // The endpoint's own query is kept.
    assert_eq!(param(&q, "tenant"), Some("t1"));
    assert_eq!(param(&q, "response_type"), Some("code"));
    assert_eq!(param(&q, "client_id"), Some("gh"));
    assert_eq!(
        param(&q, "redirect_uri"),
        Some("https://id.example/pools/acme/oauth2/idpresponse")
    );
    assert_eq!(param(&q, "scope"), Some("openid email"));
    assert_eq!(param(&q, "state"), Some("st"));
    assert_eq!(param(&q, "nonce"), Some("no"));
    assert_eq!(param(&q, "code_challenge"), Some("ch"));
    assert_eq!(param(&q, "code_challenge_method"), Some("S256"));

    let facebook = UpstreamConfig::preset(UpstreamKind::Facebook, "app", Secret::new("s"));
    let q = query(&authorization_url(
        &endpoints(None, false),
        &facebook,
        "https://id.example/cb",
        "st",
        "no",
        "ch",
    ));
    assert_eq!(param(&q, "scope"), Some("public_profile email"));
    assert_eq!(param(&q, "nonce"), None);
    assert_eq!(param(&q, "code_challenge_method"), Some("S256"));
    let amazon = UpstreamConfig::preset(UpstreamKind::Amazon, "app", Secret::new("s"));
    assert_eq!(scope_of(&amazon), "profile");
    let google = UpstreamConfig::preset(UpstreamKind::Google, "app", Secret::new("s"));
    assert_eq!(scope_of(&google), "openid email profile");
    assert_eq!(google.issuer.as_deref(), Some(GOOGLE_ISSUER));
}

#[test]
fn the_callback_gives_its_code_only_with_the_right_state_and_issuer() {
    let plain = endpoints(Some("https://op.example"), false);
    let strict = endpoints(Some("https://op.example"), true);
    let ok = [("code", "c1"), ("state", "s1")];
    assert_eq!(read_callback(&plain, ok, "s1").unwrap(), "c1");
    assert_eq!(
        read_callback(&plain, ok, "s2").unwrap_err(),
        UpstreamError::StateMismatch
    );
    assert_eq!(
        read_callback(&plain, [("code", "c1")], "s1").unwrap_err(),
        UpstreamError::StateMismatch
    );
    assert_eq!(
        read_callback(&plain, [("code", "c1"), ("state", "")], "").unwrap(),
        "c1",
        "an empty expected state is the caller's choice"
    );
    // A second state (or code) is refused rather than chosen.
    assert!(matches!(
        read_callback(
            &plain,
            [("state", "x"), ("code", "c"), ("state", "s1")],
            "s1"
        ),
        Err(UpstreamError::Callback(_))
    ));
    // RFC 9207: the issuer of the response, when sent or promised.
    let with_iss = [
        ("code", "c1"),
        ("state", "s1"),
        ("iss", "https://op.example"),
    ];
    assert_eq!(read_callback(&strict, with_iss, "s1").unwrap(), "c1");
    assert_eq!(
        read_callback(&strict, ok, "s1").unwrap_err(),
        UpstreamError::WrongResponseIssuer
    );
    let other = [
        ("code", "c1"),
        ("state", "s1"),
        ("iss", "https://evil.example"),
    ];
    assert_eq!(
        read_callback(&plain, other, "s1").unwrap_err(),
        UpstreamError::WrongResponseIssuer
    );
    // An error the provider reports, after the state is checked.
    let denied = [("error", "access_denied"), ("state", "s1")];
    assert_eq!(
        read_callback(&plain, denied, "s1").unwrap_err(),
        UpstreamError::Denied("access_denied".into())
    );
    assert_eq!(
        read_callback(&plain, denied, "s2").unwrap_err(),
        UpstreamError::StateMismatch
    );
    let odd = [("error", "<script>\"x\""), ("state", "s1")];
    assert_eq!(
        read_callback(&plain, odd, "s1").unwrap_err(),
        UpstreamError::Denied("an unreadable error".into())
    );
    assert!(matches!(
        read_callback(&plain, [("state", "s1")], "s1"),
        Err(UpstreamError::Callback(_))
    ));
}

#[test]
fn end_session_is_offered_only_where_the_provider_has_it() {
    let e = endpoints(Some("https://op.example"), false);
    let url = end_session_url(&e, Some("idt"), Some("https://id.example/bye"), Some("s")).unwrap();
    let q = query(&url);
    assert_eq!(param(&q, "id_token_hint"), Some("idt"));
    assert_eq!(
        param(&q, "post_logout_redirect_uri"),
        Some("https://id.example/bye")
    );
    assert_eq!(param(&q, "state"), Some("s"));
    let none = Endpoints {
        end_session: None,
        ..e
    };
    assert!(end_session_url(&none, Some("idt"), None, None).is_none());
}

#[test]
fn appsecret_proof_is_hex_hmac_sha256() {
    // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
    assert_eq!(
        social::appsecret_proof("key", "The quick brown fox jumps over the lazy dog"),
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
}

#[test]
fn error_codes_are_repeated_only_when_short_and_plain() {
    assert_eq!(
        error::error_code("invalid_grant").as_deref(),
        Some("invalid_grant")
    );
    assert_eq!(error::error_code(""), None);
    assert_eq!(error::error_code("a\"b"), None);
    assert_eq!(error::error_code("é"), None);
    assert_eq!(error::error_code(&"x".repeat(65)), None);
}

#[tokio::test]
async fn presets_and_overrides_make_endpoints_without_a_call() {
    let client = UpstreamClient::new(Outbound::new(OutboundPolicy::default()).unwrap());
    let facebook = UpstreamConfig::preset(UpstreamKind::Facebook, "app", Secret::new("s"));
    let e = client.endpoints(&facebook).await.unwrap();
    assert_eq!(e.authorization.as_str(), FACEBOOK_AUTHORIZATION);
    assert_eq!(e.token.as_str(), FACEBOOK_TOKEN);
    assert_eq!(e.userinfo.as_ref().unwrap().as_str(), FACEBOOK_PROFILE);
    assert_eq!(e.client_auth, ClientAuth::ClientSecretPost);
    let amazon = UpstreamConfig {
        endpoints: EndpointOverrides {
            token: Some("https://token.example/t".into()),
            ..Default::default()
        },
        ..UpstreamConfig::preset(UpstreamKind::Amazon, "app", Secret::new("s"))
    };
    let e = client.endpoints(&amazon).await.unwrap();
    assert_eq!(e.authorization.as_str(), AMAZON_AUTHORIZATION);
    assert_eq!(e.token.as_str(), "https://token.example/t");
    assert_eq!(e.userinfo.as_ref().unwrap().as_str(), AMAZON_PROFILE);

    // Google with every endpoint discovery would give overridden: no discovery call.
    let google = UpstreamConfig {
        endpoints: EndpointOverrides {
            authorization: Some("https://a.example/auth".into()),
            token: Some("https://a.example/token".into()),
            jwks_uri: Some("https://a.example/jwks".into()),
            ..Default::default()
        },
        ..UpstreamConfig::preset(UpstreamKind::Google, "app", Secret::new("s"))
    };
    let e = client.endpoints(&google).await.unwrap();
    assert_eq!(e.issuer.as_deref(), Some(GOOGLE_ISSUER));
    assert_eq!(e.jwks_uri.unwrap().as_str(), "https://a.example/jwks");

    // Overrides are checked as the policy says: plain http while Gatehouse is on https, a
    // private address, a fragment.
    for (what, bad) in [
        ("http", "http://a.example/token"),
        ("private", "https://10.0.0.1/token"),
        ("not a URL", "token"),
    ] {
        let config = UpstreamConfig {
            endpoints: EndpointOverrides {
                token: Some(bad.into()),
                ..google.endpoints.clone()
            },
            ..google.clone()
        };
        assert!(
            matches!(
                client.endpoints(&config).await,
                Err(UpstreamError::Refused {
                    step: Step::Token,
                    ..
                })
            ),
            "{what}"
        );
    }
    let config = UpstreamConfig {
        endpoints: EndpointOverrides {
            authorization: Some("https://a.example/auth#x".into()),
            ..google.endpoints.clone()
        },
        ..google.clone()
    };
    assert!(matches!(
        client.endpoints(&config).await,
        Err(UpstreamError::Config(_))
    ));
    let no_issuer = UpstreamConfig {
        issuer: None,
        ..UpstreamConfig::oidc("x", "app", Secret::new("s"))
    };
    assert!(matches!(
        client.endpoints(&no_issuer).await,
        Err(UpstreamError::Config(_))
    ));
}

/// A key set that changes under a stand-in JWKS endpoint; counts its fetches.
async fn rotating_jwks(
    published: std::sync::Arc<std::sync::Mutex<Vec<gatehouse_crypto::keys::PublicJwk>>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicU32>,
) -> String {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route(
        "/jwks",
        get(move || {
            let (published, fetches) = (published.clone(), fetches.clone());
            async move {
                fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                axum::Json(serde_json::json!({"keys": *published.lock().unwrap()}))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/jwks")
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_key_set_once_the_interval_has_passed() {
    use gatehouse_crypto::jws::{TYP_JWT, sign};
    use gatehouse_crypto::keys::{SigningKey, generate};
    use gatehouse_domain::pool::SigningAlg;
    use std::sync::atomic::Ordering;

    let first = generate(SigningAlg::EdDSA).unwrap();
    let second = generate(SigningAlg::EdDSA).unwrap();
    let published = std::sync::Arc::new(std::sync::Mutex::new(vec![first.jwk.clone()]));
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let uri = Url::parse(&rotating_jwks(published.clone(), fetches.clone()).await).unwrap();
    let client = UpstreamClient::new(
        Outbound::new(OutboundPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            allow_plain_http: true,
        })
        .unwrap(),
    );
    let token_of = |key: &gatehouse_crypto::keys::GeneratedKey| {
        let sk =
            SigningKey::from_pkcs8_with_kid(SigningAlg::EdDSA, &key.pkcs8, Some(&key.kid)).unwrap();
        sign(
            &sk,
            TYP_JWT,
            &serde_json::json!({"iss": "https://op.example", "sub": "u", "aud": "c",
                                "nonce": "n", "iat": 1000, "exp": 2000}),
        )
        .unwrap()
    };
    let expect = id_token::Expect {
        issuer: "https://op.example",
        also_issuer: None,
        client_id: "c",
        nonce: "n",
        access_token: "at",
        now: 1500,
    };
    let check = |token: String| {
        let (client, uri) = (client.clone(), uri.clone());
        async move { client.check_id_token(&uri, &token, &expect).await }
    };
    assert_eq!(check(token_of(&first)).await.unwrap()["sub"], "u");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // The provider adds a key. Within the interval: refused, no fetch.
    published.lock().unwrap().push(second.jwk.clone());
    assert_eq!(
        check(token_of(&second)).await.unwrap_err(),
        UpstreamError::IdToken(IdTokenError::UnknownKey)
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // Past it: one fetch finds the new key, which is then cached.
    client.age_key_sets(std::time::Duration::from_secs(11));
    assert_eq!(check(token_of(&second)).await.unwrap()["sub"], "u");
    assert_eq!(check(token_of(&second)).await.unwrap()["sub"], "u");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    // A made-up kid right after: refused without a fetch.
    let third = generate(SigningAlg::EdDSA).unwrap();
    assert!(check(token_of(&third)).await.is_err());
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}
