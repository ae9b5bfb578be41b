//! The verifier against a stand-in pool: every refusal of a token, the bounded JWKS refetch,
//! each revocation rule as the feed carries it, forged SETs, the staleness policies, and the
//! tower layer's answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod mock;

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gatehouse_domain::pool::SigningAlg;
use gatehouse_verify::{
    Alg, RevokedBy, StalenessPolicy, VerifiedToken, Verifier, VerifierBuilder, VerifyError,
    VerifyLayer,
};
use mock::*;
use serde_json::{Value, json};
use tower::ServiceExt;

fn builder(pool: &Pool) -> VerifierBuilder {
    Verifier::builder(&pool.issuer).feed_credentials("reader", "reader-secret")
}

async fn verifier(pool: &Pool) -> Verifier {
    builder(pool).build().await.unwrap()
}

#[tokio::test]
async fn a_good_token_passes_and_every_forgery_is_refused() {
    let pool = start().await;
    let v = verifier(&pool).await;
    let now = now();

    let claims = v.verify(&pool.token(json!({}))).await.unwrap();
    assert_eq!(claims.sub, "user-1");
    assert_eq!(claims.sid.as_deref(), Some("session-1"));
    assert_eq!(claims.groups, vec!["staff".to_owned()]);
    // RS256 and an audience array are fine too.
    let rs = pool.token_with(&pool.set_key, "at+jwt", json!({"aud": ["x", pool.issuer]}));
    assert!(v.verify(&rs).await.is_ok());
    assert!(
        v.verify(&pool.token_with(&pool.access_key, "application/at+jwt", json!({})))
            .await
            .is_ok()
    );

    // A tampered signature, and a payload swapped under a good signature.
    let good = pool.token(json!({}));
    // One character inside the signature (not its last, whose spare bits base64 rejects).
    let mut tampered = good.clone().into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(v.verify(&tampered).await, Err(VerifyError::Signature));
    let other = pool.token(json!({"sub": "admin"}));
    let parts: Vec<&str> = good.split('.').collect();
    let other_parts: Vec<&str> = other.split('.').collect();
    let swapped = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
    assert_eq!(v.verify(&swapped).await, Err(VerifyError::Signature));

    // alg: none, and HS256 keyed with the public key.
    let claims = json!({"iss": pool.issuer, "sub": "admin", "aud": pool.issuer,
        "exp": now + 600, "iat": now});
    let none = format!(
        "{}.{}.",
        base64url(&json!({"alg":"none","typ":"at+jwt","kid":"access-1"})),
        base64url(&claims)
    );
    assert_eq!(v.verify(&none).await, Err(VerifyError::Algorithm));
    // A critical extension nobody here understands.
    let crit = pool.token_with(&pool.access_key, "at+jwt", json!({}));
    let (_, rest) = crit.split_once('.').unwrap();
    let crit = format!(
        "{}.{rest}",
        base64url(&json!({"alg":"ES256","typ":"at+jwt","kid":"access-1","crit":["exp"]}))
    );
    assert_eq!(v.verify(&crit).await, Err(VerifyError::Malformed));
    let public = serde_json::to_vec(pool.access_key.public_jwk()).unwrap();
    let hs = hmac_token(
        json!({"alg":"HS256","typ":"at+jwt","kid":"access-1"}),
        claims.clone(),
        &public,
    );
    assert_eq!(v.verify(&hs).await, Err(VerifyError::Algorithm));
    // An EC algorithm named over the RSA key's id: the key's type decides.
    let es_over_rsa = pool.token_with(&key(SigningAlg::ES256, "id-1"), "at+jwt", json!({}));
    assert_eq!(v.verify(&es_over_rsa).await, Err(VerifyError::Algorithm));

    // The type, issuer, audience and times.
    let cases: Vec<(String, VerifyError)> = vec![
        (
            pool.token_with(&pool.access_key, "JWT", json!({})),
            VerifyError::Type,
        ),
        (
            pool.token_with(&pool.access_key, "secevent+jwt", json!({})),
            VerifyError::Type,
        ),
        (
            pool.token(json!({"iss": "http://evil.example/pools/acme"})),
            VerifyError::Issuer,
        ),
        (
            pool.token(json!({"aud": "https://other.example"})),
            VerifyError::Audience,
        ),
        (
            pool.token(json!({"exp": now - 31, "iat": now - 700})),
            VerifyError::Expired,
        ),
        (
            pool.token(json!({"nbf": now + 60})),
            VerifyError::NotYetValid,
        ),
        (pool.token(json!({"exp": null})), VerifyError::MissingClaim),
        (pool.token(json!({"iat": null})), VerifyError::MissingClaim),
        (pool.token(json!({"sub": null})), VerifyError::MissingClaim),
        ("not-a-jwt".to_owned(), VerifyError::Malformed),
        ("a.b.c".to_owned(), VerifyError::Malformed),
    ];
    for (token, expected) in cases {
        assert_eq!(v.verify(&token).await, Err(expected));
    }
    // Within the leeway, an expired token still passes.
    assert!(v.verify(&pool.token(json!({"exp": now - 5}))).await.is_ok());

    // A key of another pool: under its own id (unknown here), or under ours.
    let foreign = key(SigningAlg::ES256, "access-1");
    assert_eq!(
        v.verify(&pool.token_with(&foreign, "at+jwt", json!({})))
            .await,
        Err(VerifyError::Signature)
    );
    let foreign = key(SigningAlg::ES256, "globex-access-1");
    assert_eq!(
        v.verify(&pool.token_with(&foreign, "at+jwt", json!({})))
            .await,
        Err(VerifyError::UnknownKey)
    );
}

#[tokio::test]
async fn algorithms_and_type_are_configurable() {
    let pool = start().await;
    let v = builder(&pool)
        .algorithms(&[Alg::ES256])
        .token_type("JWT")
        .audience("https://api.example")
        .leeway(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let rs = pool.token_with(&pool.set_key, "JWT", json!({"aud": "https://api.example"}));
    assert_eq!(v.verify(&rs).await, Err(VerifyError::Algorithm));
    let es = pool.token_with(
        &pool.access_key,
        "JWT",
        json!({"aud": "https://api.example"}),
    );
    assert!(v.verify(&es).await.is_ok());
    // The issuer is no longer an audience once one is named.
    assert_eq!(
        v.verify(&pool.token_with(&pool.access_key, "JWT", json!({})))
            .await,
        Err(VerifyError::Audience)
    );
    let expired = pool.token_with(
        &pool.access_key,
        "JWT",
        json!({"aud": "https://api.example", "exp": now() - 2}),
    );
    assert_eq!(v.verify(&expired).await, Err(VerifyError::Expired));
}

#[tokio::test]
async fn an_unknown_key_id_fetches_the_jwks_once_per_interval() {
    let pool = start().await;
    let v = verifier(&pool).await;
    assert_eq!(pool.jwks_hits.load(Ordering::SeqCst), 1);
    assert_eq!(v.health().calls.jwks, 1);

    // The pool rotates in a new key: the first token under it fetches the JWKS again.
    let rotated = key(SigningAlg::ES256, "access-2");
    pool.jwks.lock().unwrap().push(rotated.public_jwk().clone());
    let token = pool.token_with(&rotated, "at+jwt", json!({}));
    assert!(v.verify(&token).await.is_ok());
    assert_eq!(pool.jwks_hits.load(Ordering::SeqCst), 2);

    // Unknown ids within the interval fetch nothing more, however many arrive.
    let stranger = key(SigningAlg::ES256, "nobody");
    let token = pool.token_with(&stranger, "at+jwt", json!({}));
    let results = futures_join(
        &v,
        std::iter::repeat_n(token.as_str(), 20).collect::<Vec<_>>(),
    )
    .await;
    assert!(results.iter().all(|r| *r == Err(VerifyError::UnknownKey)));
    assert_eq!(pool.jwks_hits.load(Ordering::SeqCst), 2);
    assert_eq!(v.health().calls.jwks, 2);
}

async fn futures_join(v: &Verifier, tokens: Vec<&str>) -> Vec<Result<(), VerifyError>> {
    let mut set = tokio::task::JoinSet::new();
    for t in tokens {
        let v = v.clone();
        let t = t.to_owned();
        set.spawn(async move { v.verify(&t).await.map(|_| ()) });
    }
    set.join_all().await
}

#[tokio::test]
async fn an_unknown_key_id_with_a_short_interval_fetches_exactly_once_per_token() {
    let pool = start().await;
    let v = builder(&pool)
        .jwks_refetch_interval(Duration::ZERO)
        .max_keys(2)
        .build()
        .await
        .unwrap();
    let stranger = key(SigningAlg::ES256, "nobody");
    let token = pool.token_with(&stranger, "at+jwt", json!({}));
    assert_eq!(v.verify(&token).await, Err(VerifyError::UnknownKey));
    assert_eq!(
        pool.jwks_hits.load(Ordering::SeqCst),
        2,
        "one refetch, no retry loop"
    );
    // Only the first `max_keys` keys of a JWKS are kept.
    let third = key(SigningAlg::ES256, "access-3");
    pool.jwks.lock().unwrap().push(third.public_jwk().clone());
    assert_eq!(
        v.verify(&pool.token_with(&third, "at+jwt", json!({})))
            .await,
        Err(VerifyError::UnknownKey)
    );
}

async fn refused(v: &Verifier, token: &str) -> bool {
    v.verify(token).await.is_err()
}

#[tokio::test]
async fn each_revocation_the_feed_carries_refuses_what_it_names() {
    let pool = start().await;
    let v = verifier(&pool).await;
    let now = now();
    let t = now - 10;
    let session = pool.token(json!({"sid": "s-gone", "sub": "u-a"}));
    let other_session = pool.token(json!({"sid": "s-kept", "sub": "u-a"}));
    let jti = pool.token(json!({"jti": "j-gone", "sid": null, "sub": "client-1"}));
    let user_at_t = pool.token(json!({"sub": "u-b", "sid": "s-b1", "iat": t}));
    let user_after_t = pool.token(json!({"sub": "u-b", "sid": "s-b2", "iat": t + 1}));
    let group_at_t = pool.token(json!({"sub": "u-c", "sid": "s-c", "groups": ["ops"], "iat": t}));
    let group_other = pool.token(json!({"sub": "u-c", "sid": "s-c2", "groups": ["dev"], "iat": t}));
    for token in [
        &session,
        &other_session,
        &jti,
        &user_at_t,
        &user_after_t,
        &group_at_t,
    ] {
        assert!(v.verify(token).await.is_ok());
    }

    let issuer = pool.issuer.clone();
    pool.push(pool.set(
        SESSION_REVOKED,
        json!({"format":"complex","session":{"format":"opaque","id":"s-gone"},
               "user":{"format":"iss_sub","iss":issuer,"sub":"u-a"},
               "tenant":{"format":"opaque","id":"acme"}}),
        now,
        json!({}),
    ));
    pool.push(pool.set(
        "urn:gatehouse:secevent:event-type:token-revoked",
        json!({"format":"jwt_id","iss":issuer,"jti":"j-gone"}),
        now,
        json!({}),
    ));
    pool.push(pool.set(
        "https://schemas.openid.net/secevent/risc/event-type/account-disabled",
        pool.user_subject("u-b"),
        t,
        json!({}),
    ));
    pool.push(pool.set(
        "https://schemas.openid.net/secevent/caep/event-type/token-claims-change",
        json!({"format":"complex","group":{"format":"opaque","id":"ops"},
               "tenant":{"format":"opaque","id":"acme"}}),
        t,
        json!({}),
    ));
    eventually(async || v.health().cursor == 4).await;
    assert_eq!(
        v.verify(&session).await,
        Err(VerifyError::Revoked(RevokedBy::Session))
    );
    assert!(v.verify(&other_session).await.is_ok());
    assert_eq!(
        v.verify(&jti).await,
        Err(VerifyError::Revoked(RevokedBy::Token))
    );
    assert_eq!(
        v.verify(&user_at_t).await,
        Err(VerifyError::Revoked(RevokedBy::User)),
        "iat == event_timestamp is refused"
    );
    assert!(
        v.verify(&user_after_t).await.is_ok(),
        "a later token is not"
    );
    assert_eq!(
        v.verify(&group_at_t).await,
        Err(VerifyError::Revoked(RevokedBy::Group))
    );
    assert!(v.verify(&group_other).await.is_ok());

    // A pool-wide kill switch refuses everything issued up to it.
    pool.push(pool.set(
        SESSION_REVOKED,
        json!({"format":"complex","tenant":{"format":"opaque","id":"acme"}}),
        now,
        json!({}),
    ));
    eventually(async || refused(&v, &other_session).await).await;
    assert_eq!(
        v.verify(&other_session).await,
        Err(VerifyError::Revoked(RevokedBy::Pool))
    );
    assert!(v.verify(&pool.token(json!({"iat": now + 1}))).await.is_ok());
    let health = v.health();
    assert_eq!(health.events_applied, 5);
    assert_eq!(health.sets_rejected, 0);
}

#[tokio::test]
async fn forged_or_misaddressed_sets_are_counted_and_never_applied() {
    let pool = start().await;
    let v = verifier(&pool).await;
    let now = now();
    let victim = pool.token(json!({"sub": "victim", "sid": "s-victim"}));
    let subject = pool.user_subject("victim");
    let disable = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";

    // Signed by another RSA key under the pool's key id.
    let forger = key(SigningAlg::RS256, "id-1");
    let claims = json!({"iss": pool.issuer, "aud": format!("{}/api/auth/revocations", pool.issuer),
        "jti": "f1", "iat": now, "sub_id": subject, "events": {disable: {"event_timestamp": now}}});
    pool.push(gatehouse_crypto::jws::sign(&forger, "secevent+jwt", &claims).unwrap());
    // The right key, but for another audience, of another type, from another issuer.
    pool.push(pool.set(disable, subject.clone(), now, json!({"aud": pool.issuer})));
    let mut wrong_typ = claims.clone();
    wrong_typ["jti"] = "f3".into();
    pool.push(gatehouse_crypto::jws::sign(&pool.set_key, "JWT", &wrong_typ).unwrap());
    pool.push(pool.set(
        disable,
        subject.clone(),
        now,
        json!({"iss": "http://evil.example"}),
    ));
    // Signed with the pool's ES256 access-token key (SETs are RS256 only).
    pool.push(gatehouse_crypto::jws::sign(&pool.access_key, "secevent+jwt", &claims).unwrap());
    // Two events in one SET; garbage.
    let mut two = claims.clone();
    two["events"]["https://schemas.openid.net/secevent/risc/event-type/account-purged"] = json!({});
    pool.push(gatehouse_crypto::jws::sign(&pool.set_key, "secevent+jwt", &two).unwrap());
    pool.push("garbage".to_owned());

    eventually(async || v.health().cursor == 7).await;
    let health = v.health();
    assert_eq!(health.sets_rejected, 7);
    assert_eq!(health.events_applied, 0);
    assert_eq!(health.revocation_entries, 0);
    assert!(v.verify(&victim).await.is_ok());

    // The genuine one is applied.
    pool.push(pool.set(disable, subject, now, json!({})));
    eventually(async || refused(&v, &victim).await).await;
    assert_eq!(v.health().events_applied, 1);
}

#[tokio::test]
async fn a_silent_feed_fails_closed_and_recovers() {
    let pool = start().await;
    let v = builder(&pool)
        .stale_after(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let token = pool.token(json!({}));
    assert!(v.verify(&token).await.is_ok());
    pool.feed_broken.store(true, Ordering::SeqCst);
    eventually(async || v.verify(&token).await == Err(VerifyError::Stale)).await;
    assert_eq!(v.health().state, gatehouse_verify::FeedState::Stale);
    // Bad tokens are still told apart from staleness.
    assert_eq!(v.verify("a.b.c").await, Err(VerifyError::Malformed));
    pool.feed_broken.store(false, Ordering::SeqCst);
    eventually(async || v.verify(&token).await.is_ok()).await;
}

#[tokio::test]
async fn a_silent_feed_can_fall_back_to_introspection() {
    let pool = start().await;
    let v = builder(&pool)
        .stale_after(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(20))
        .staleness_policy(StalenessPolicy::Introspect)
        .introspection_cache(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let active = pool.token(json!({}));
    let revoked = pool.token(json!({}));
    pool.inactive.lock().unwrap().insert(revoked.clone());
    assert!(
        v.verify(&revoked).await.is_ok(),
        "the feed is fresh: no introspection"
    );
    assert_eq!(pool.introspections.load(Ordering::SeqCst), 0);

    pool.feed_broken.store(true, Ordering::SeqCst);
    eventually(async || v.verify(&revoked).await == Err(VerifyError::Inactive)).await;
    let calls = pool.introspections.load(Ordering::SeqCst);
    // Answers are remembered: asking again calls nobody.
    for _ in 0..10 {
        assert!(v.verify(&active).await.is_ok());
        assert_eq!(v.verify(&revoked).await, Err(VerifyError::Inactive));
    }
    assert_eq!(pool.introspections.load(Ordering::SeqCst), calls + 1);
    assert_eq!(v.health().calls.introspections, calls + 1);
}

#[tokio::test]
async fn verifying_calls_nobody() {
    let pool = start().await;
    let v = verifier(&pool).await;
    let token = pool.token(json!({}));
    let before = v.health().calls;
    assert_eq!((before.discovery, before.jwks, before.token), (1, 1, 1));
    for _ in 0..500 {
        assert!(v.verify(&token).await.is_ok());
    }
    let after = v.health().calls;
    assert_eq!(
        (
            after.discovery,
            after.jwks,
            after.token,
            after.introspections
        ),
        (
            before.discovery,
            before.jwks,
            before.token,
            before.introspections
        )
    );
}

#[tokio::test]
async fn the_layer_answers_401_and_503_and_hands_claims_on() {
    let pool = start().await;
    let v = builder(&pool)
        .stale_after(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let app = axum::Router::new()
        .route(
            "/whoami",
            axum::routing::get(|VerifiedToken(c): VerifiedToken| async move { c.sub }),
        )
        .layer(VerifyLayer::new(v.clone()));
    let call = |auth: Option<String>| {
        let app = app.clone();
        async move {
            let mut req = Request::get("/whoami");
            if let Some(a) = auth {
                req = req.header(header::AUTHORIZATION, a);
            }
            app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
        }
    };
    let res = call(None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    for bad in [
        "Bearer nope".to_owned(),
        format!("Bearer {}", pool.token(json!({"aud": "x"}))),
    ] {
        let res = call(Some(bad)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
        let body: Value = serde_json::from_slice(
            &axum::body::to_bytes(res.into_body(), 1 << 16)
                .await
                .unwrap(),
        )
        .unwrap();
        assert!(body["message"].is_string());
    }
    let token = pool.token(json!({}));
    let res = call(Some(format!("Bearer {token}"))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    assert_eq!(&body[..], b"user-1");

    pool.feed_broken.store(true, Ordering::SeqCst);
    eventually(async || v.verify(&token).await == Err(VerifyError::Stale)).await;
    let res = call(Some(format!("Bearer {token}"))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Without the layer, the extractor uses a verifier from the extensions.
    pool.feed_broken.store(false, Ordering::SeqCst);
    eventually(async || v.verify(&token).await.is_ok()).await;
    let bare = axum::Router::new()
        .route(
            "/whoami",
            axum::routing::get(|VerifiedToken(c): VerifiedToken| async move { c.sub }),
        )
        .layer(axum::Extension(v.clone()));
    let req = Request::get("/whoami")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(bare.oneshot(req).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn build_refuses_what_cannot_work() {
    let pool = start().await;
    assert!(
        Verifier::builder(&pool.issuer).build().await.is_err(),
        "no credentials"
    );
    assert!(
        Verifier::builder("ftp://x")
            .feed_credentials("a", "b")
            .build()
            .await
            .is_err()
    );
    // A discovery document naming another issuer.
    let wrong = format!("{}/", pool.issuer.replace("/acme", "/acme/../acme"));
    assert!(
        Verifier::builder(wrong)
            .feed_credentials("a", "b")
            .build()
            .await
            .is_err()
    );
}

fn base64url(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn the_stream_is_followed_resumed_and_read_anew_after_gone() {
    let pool = start().await;
    pool.serve_stream.store(true, Ordering::SeqCst);
    let issuer = pool.issuer.clone();
    let session = |sid: &str| {
        json!({"format":"complex","session":{"format":"opaque","id":sid},
               "user":{"format":"iss_sub","iss":issuer,"sub":"u"},
               "tenant":{"format":"opaque","id":"acme"}})
    };
    let token = |sid: &str| pool.token(json!({"sid": sid, "sub": "u"}));
    pool.push(pool.set(SESSION_REVOKED, session("s0"), now(), json!({})));

    // The snapshot, read before build returns: no waiting for what was revoked before.
    let v = verifier(&pool).await;
    assert_eq!(
        v.verify(&token("s0")).await,
        Err(VerifyError::Revoked(RevokedBy::Session))
    );
    assert_eq!(pool.snapshots.load(Ordering::SeqCst), 1);
    eventually(async || v.health().state == gatehouse_verify::FeedState::Streaming).await;
    assert_eq!(
        *pool.last_event_ids.lock().unwrap(),
        vec![1],
        "from the snapshot's cursor"
    );

    // Live events arrive by the stream.
    let s1 = token("s1");
    assert!(v.verify(&s1).await.is_ok());
    pool.push(pool.set(SESSION_REVOKED, session("s1"), now(), json!({})));
    eventually(async || refused(&v, &s1).await).await;

    // The connection drops: it resumes from its cursor, and misses nothing.
    pool.drop_epoch.fetch_add(1, Ordering::SeqCst);
    pool.push(pool.set(SESSION_REVOKED, session("s2"), now(), json!({})));
    let s2 = token("s2");
    eventually(async || refused(&v, &s2).await).await;
    eventually(async || pool.last_event_ids.lock().unwrap().len() >= 2).await;
    assert_eq!(pool.last_event_ids.lock().unwrap()[1], 2, "Last-Event-ID");

    // 410 Gone: the snapshot is read again, then the stream from its cursor.
    pool.gone_once.store(true, Ordering::SeqCst);
    pool.drop_epoch.fetch_add(1, Ordering::SeqCst);
    eventually(async || pool.snapshots.load(Ordering::SeqCst) == 2).await;
    pool.push(pool.set(SESSION_REVOKED, session("s3"), now(), json!({})));
    let s3 = token("s3");
    eventually(async || refused(&v, &s3).await).await;

    let health = v.health();
    assert_eq!(health.calls.feed_pages, 0, "never polled: {health:?}");
    assert_eq!(health.calls.snapshot, 2);
    assert_eq!(health.sets_rejected, 0);
    assert_eq!(health.cursor, 4);
}
