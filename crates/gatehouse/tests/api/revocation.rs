//! Revocation as every instance sees it: at once on the instance that revoked, and within
//! moments on another instance over the same database, although both remember revoked ids and
//! verified tokens in memory.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{self, ClientCreds, spawn_app};

async fn introspect_at(base: &str, c: &ClientCreds, token: &str) -> Value {
    common::introspect_at(&reqwest::Client::new(), base, "acme", c, token).await
}

#[tokio::test]
async fn a_revocation_reaches_every_instance() {
    let app = spawn_app().await;
    let (client, _) = app.acme_with_ada().await;
    let (other, _stop) = app.second_instance().await;
    let token = app.client_token("acme", &client).await;
    let untouched = app.client_token("acme", &client).await;
    // Both instances have verified the tokens and found them unrevoked.
    for base in [app.addr.as_str(), other.as_str()] {
        for t in [&token, &untouched] {
            assert_eq!(introspect_at(base, &client, t).await["active"], true);
        }
    }

    assert_eq!(app.revoke("acme", &client, &token).await.status(), 200);
    // The instance that revoked refuses the token from its answer on.
    assert_eq!(
        app.introspect("acme", &client, &token).await,
        json!({"active": false})
    );
    // The other one follows the pool's revocations; a generous deadline keeps a loaded
    // machine from failing the test (the delay is measured by the benchmark, not here).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if introspect_at(&other, &client, &token).await == json!({"active": false}) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other instance still accepts the token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Only that token.
    for base in [app.addr.as_str(), other.as_str()] {
        assert_eq!(
            introspect_at(base, &client, &untouched).await["active"],
            true
        );
    }
}

#[tokio::test]
async fn a_remembered_token_altered_by_one_character_is_refused() {
    let app = spawn_app().await;
    let (client, _) = app.acme_with_ada().await;
    let token = app.client_token("acme", &client).await;
    assert_eq!(
        app.introspect("acme", &client, &token).await["active"],
        true
    );
    // Every position of the signature and of the claims, one at a time.
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let (_, payload) = signed.split_once('.').unwrap();
    for (part, at) in [
        (signature, token.len() - 10),
        (payload, signed.len() - payload.len() + 5),
    ] {
        assert!(!part.is_empty());
        let mut bytes = token.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        assert_ne!(altered, token);
        assert_eq!(
            app.introspect("acme", &client, &altered).await,
            json!({"active": false})
        );
    }
    assert_eq!(
        app.introspect("acme", &client, &token).await["active"],
        true
    );
}
