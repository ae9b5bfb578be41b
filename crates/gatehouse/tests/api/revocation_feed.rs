//! The revocation feed over HTTP: who may read it, its pages and cursors, the SETs it carries
//! (verified by npm `jose` against the pool's JWKS), and the cursors it refuses.

use serde_json::Value;

use crate::common::*;

async fn feed(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.http
        .get(app.pool_url("acme", &format!("/api/auth/revocations{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn services_follow_the_revocation_feed_page_by_page() {
    let app = spawn_app().await;
    let (client, ada) = app.acme_with_ada().await;
    let reader = app
        .create_client("acme", &["auth:RetrieveRevocations"])
        .await;
    let reader_token = app.client_token("acme", &reader).await;

    // Nothing yet: an empty page whose next cursor is where it started.
    let res = feed(&app, &reader_token, "").await;
    assert_eq!(res.status(), 200);
    let empty: Value = res.json().await.unwrap();
    assert_eq!(empty["items"], serde_json::json!([]));
    let start = empty["next"].as_i64().unwrap();

    // Alice signs in three times and is signed out: three sessions and the user end.
    for _ in 0..3 {
        app.sign_in("acme", &client, "alice", "alice-password-1")
            .await;
    }
    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/users/alice/actions/sign-out"))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    // Two pages of two, then nothing: each cursor once, in order.
    let mut cursor = start;
    let mut sets = Vec::new();
    loop {
        let page: Value = feed(&app, &reader_token, &format!("?after={cursor}&limit=2"))
            .await
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        if items.is_empty() {
            assert_eq!(page["next"], cursor);
            break;
        }
        for item in items {
            let c = item["cursor"].as_i64().unwrap();
            assert!(c > cursor, "cursors only grow");
            cursor = c;
            sets.push(item["set"].as_str().unwrap().to_owned());
        }
        assert_eq!(page["next"], cursor);
    }
    assert_eq!(sets.len(), 4, "three sessions and the user");
    for set in &sets {
        let verified = verify_set_with_jose(&app, "acme", set).await.unwrap();
        assert_eq!(verified["header"]["typ"], "secevent+jwt");
        let claims = &verified["payload"];
        assert_eq!(claims["iss"], app.issuer("acme"));
        assert_eq!(
            claims["aud"],
            format!("{}/api/auth/revocations", app.issuer("acme"))
        );
    }

    // A cursor from the future, a negative one, a limit out of range, a word: 400.
    for query in [
        format!("?after={}", cursor + 1),
        "?after=-1".to_owned(),
        "?limit=0".to_owned(),
        "?limit=101".to_owned(),
        "?after=soon".to_owned(),
        "?cursor=1".to_owned(),
    ] {
        let res = feed(&app, &reader_token, &query).await;
        assert_api_error(res, 400).await;
    }

    // Only a caller holding the permission reads it; another pool's reader does not.
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    assert_api_error(feed(&app, &alice, "").await, 403).await;
    let plain = app.create_client("acme", &[]).await;
    let plain_token = app.client_token("acme", &plain).await;
    assert_api_error(feed(&app, &plain_token, "").await, 403).await;
    assert_api_error(feed(&app, "not-a-token", "").await, 401).await;
    app.create_pool("globex").await;
    let other = app
        .create_client("globex", &["auth:RetrieveRevocations"])
        .await;
    let other_token = app.client_token("globex", &other).await;
    assert_api_error(feed(&app, &other_token, "").await, 401).await;
    // The administrator holds every permission, this one too.
    assert_eq!(feed(&app, &ada, "").await.status(), 200);
}

/// Revokes a fresh client-credentials token of `pool` through the instance at `addr`: one
/// `token-revoked` event in that pool.
async fn revoke_a_token_at(app: &TestApp, addr: &str, pool: &str, client: &ClientCreds) {
    let url = |path: &str| format!("{addr}/pools/{pool}{path}");
    let res = app
        .http
        .post(url("/oauth2/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .http
        .post(url("/oauth2/revoke"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// A waiter for a pool's events (what a stream or a long poll sleeps in) wakes when one of
/// its pool commits through another instance on the same database, and events of another
/// pool leave it waiting until its timeout, when it answers false.
#[tokio::test]
async fn waiters_wake_for_their_own_pool_through_any_instance() {
    use gatehouse_domain::ids::PoolSlug;
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_pool("globex").await;
    let acme_client = app.create_client("acme", &[]).await;
    let globex_client = app.create_client("globex", &[]).await;
    let acme = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    let (second, _stop) = app.second_instance().await;

    let wait = |timeout: std::time::Duration| {
        let gh = app.gh.clone();
        let pool = acme.id;
        tokio::spawn(async move { gh.wait_for_security_events(pool, 0, timeout).await })
    };
    let waiter = wait(std::time::Duration::from_millis(1500));
    revoke_a_token_at(&app, &second, "globex", &globex_client).await;
    assert!(
        !waiter.await.unwrap().unwrap(),
        "woke for another pool's event"
    );

    let waiter = wait(std::time::Duration::from_secs(60));
    revoke_a_token_at(&app, &second, "acme", &acme_client).await;
    assert!(waiter.await.unwrap().unwrap());
    // Already there: answered at once, whatever the timeout.
    assert!(
        app.gh
            .wait_for_security_events(acme.id, 0, std::time::Duration::ZERO)
            .await
            .unwrap()
    );
}
