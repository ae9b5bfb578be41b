//! `gatehouse-verify` against a real Gatehouse: a service that verifies the pool's tokens
//! itself accepts a user's token, calls nobody per request, and refuses the token once the
//! revocation feed carries its sign-out, the user's disabling, or its revocation.

use std::time::Duration;

use axum::routing::get;
use gatehouse_verify::{FeedState, RevokedBy, VerifiedToken, Verifier, VerifyError, VerifyLayer};
use serde_json::{Value, json};

use crate::common::*;

const USERS: &str = "/api/user-management/users";

/// A server on the suite's backend whose public URL is the address it listens on, so that
/// its issuer, discovery and JWKS URLs are reachable as they are named.
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

async fn verifier(app: &TestApp) -> Verifier {
    let reader = app
        .create_client("acme", &["auth:RetrieveRevocations"])
        .await;
    Verifier::builder(app.issuer("acme"))
        .feed_credentials(&reader.id, &reader.secret)
        .build()
        .await
        .unwrap()
}

/// Polls until `token` is refused, for at most ten seconds; the refusal.
async fn refused(v: &Verifier, token: &str) -> VerifyError {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Err(e) = v.verify(token).await {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the token is still accepted: {:?}",
            v.health()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn action(app: &TestApp, ada: &str, user: &str, action: &str) {
    let res = app
        .http
        .post(app.pool_url("acme", &format!("{USERS}/{user}/actions/{action}")))
        .bearer_auth(ada)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{action}: {}", res.status());
}

/// A protected service on the library's layer, answering `{sub, username, sid}` at
/// `/whoami`; its address.
async fn protected_service(v: &Verifier) -> String {
    let app = axum::Router::new()
        .route(
            "/whoami",
            get(|VerifiedToken(c): VerifiedToken| async move {
                axum::Json(json!({"sub": c.sub, "username": c.username, "sid": c.sid}))
            }),
        )
        .layer(VerifyLayer::new(v.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn a_verifying_service_refuses_signed_out_disabled_and_revoked_tokens() {
    let app = spawn_app_at_its_address().await;
    let (client, ada) = app.acme_with_ada().await;
    let v = verifier(&app).await;
    let service = protected_service(&v).await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;

    // Accepted, through the library and through the service, with no call to Gatehouse.
    let claims = v.verify(&alice).await.unwrap();
    assert_eq!(claims.username.as_deref(), Some("alice"));
    assert_eq!(
        claims.sid,
        jwt_claims(&alice)["sid"].as_str().map(str::to_owned)
    );
    let before = v.health().calls;
    for _ in 0..50 {
        let res = app
            .http
            .get(format!("{service}/whoami"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["username"], "alice");
        assert_eq!(body["sub"], claims.sub);
    }
    let after = v.health().calls;
    assert_eq!(
        (
            after.discovery,
            after.jwks,
            after.token,
            after.introspections
        ),
        (before.discovery, before.jwks, before.token, 0),
        "requests call nobody: {after:?}"
    );

    // Signed out: refused by the library and by the service.
    action(&app, &ada, "alice", "sign-out").await;
    assert!(matches!(
        refused(&v, &alice).await,
        VerifyError::Revoked(RevokedBy::Session | RevokedBy::User)
    ));
    let res = app
        .http
        .get(format!("{service}/whoami"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );

    // A new sign-in a moment later is accepted; disabling the user refuses it, and enabling
    // the user again does not bring it back.
    app.clock.advance(2);
    let again = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    assert!(v.verify(&again).await.is_ok());
    action(&app, &ada, "alice", "disable").await;
    assert!(matches!(
        refused(&v, &again).await,
        VerifyError::Revoked(RevokedBy::Session | RevokedBy::User)
    ));
    action(&app, &ada, "alice", "enable").await;
    let cursor = v.health().cursor;
    app.clock.advance(2);
    let third = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    assert!(v.verify(&third).await.is_ok());
    assert!(v.verify(&again).await.is_err());
    assert!(cursor > 0);

    // A client's token (no session) revoked through RFC 7009.
    let worker = app.create_client("acme", &[]).await;
    let worker_token = app.client_token("acme", &worker).await;
    assert!(v.verify(&worker_token).await.is_ok());
    assert_eq!(
        app.revoke("acme", &worker, &worker_token).await.status(),
        200
    );
    assert_eq!(
        refused(&v, &worker_token).await,
        VerifyError::Revoked(RevokedBy::Token)
    );

    let health = v.health();
    assert_eq!(health.sets_rejected, 0, "{health:?}");
    assert!(health.events_applied >= 4, "{health:?}");
    assert!(
        matches!(health.state, FeedState::Polling | FeedState::Streaming),
        "{health:?}"
    );
}

#[tokio::test]
async fn a_verifier_catches_up_with_what_was_revoked_before_it_started() {
    let app = spawn_app_at_its_address().await;
    let (client, ada) = app.acme_with_ada().await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    action(&app, &ada, "alice", "sign-out").await;

    // Built after the sign-out: refused at once, no waiting.
    let v = verifier(&app).await;
    assert!(matches!(
        v.verify(&alice).await,
        Err(VerifyError::Revoked(_))
    ));
    // Tokens of another pool are not this verifier's.
    app.create_pool("globex").await;
    app.create_user("globex", "gina", &[], "gina-password-1")
        .await;
    let globex_client = app.create_client("globex", &[]).await;
    let gina = app
        .sign_in("globex", &globex_client, "gina", "gina-password-1")
        .await;
    assert!(matches!(
        v.verify(&gina).await,
        Err(VerifyError::Issuer | VerifyError::Audience | VerifyError::UnknownKey)
    ));
    // ada's token is fine.
    assert!(v.verify(&ada).await.is_ok());
}
