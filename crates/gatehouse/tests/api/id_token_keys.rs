//! The ID-token key family (SPEC §8): every pool has RS256 keys for ID tokens beside its
//! access-token keys, published in the same JWKS and rotated on their own. What the ID-token
//! key signs verifies for a relying party (npm `jose` over the JWKS) and is never accepted as
//! an access token. A pool created before ID tokens gets its key once, however many
//! instances find it missing at once.

use gatehouse_crypto::jws::{self, TYP_ACCESS_TOKEN};
use gatehouse_crypto::keys::SigningKey;
use gatehouse_domain::ids::PoolSlug;
use gatehouse_domain::pool::{Pool, PoolSettings, SigningAlg};
use gatehouse_domain::rotation::RotationKind;
use gatehouse_domain::store::{KeyPurpose, KeyState, SigningKeyRecord, Store};
use gatehouse_service::{RequestMeta, ServiceError};
use serde_json::{Value, json};

use crate::common::{
    TestApp, jwt_claims, jwt_header, spawn_app, verify_id_token_with_jose, verify_with_jose,
};
use crate::key_rotation::{current_kid, kid_of, published_kids, rotate_family, sorted};

async fn jwks(app: &TestApp, pool: &str) -> Vec<Value> {
    let doc: Value = app
        .http
        .get(app.pool_url(pool, "/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    doc["keys"].as_array().unwrap().clone()
}

async fn pool(app: &TestApp, slug: &str) -> std::sync::Arc<Pool> {
    app.gh.pool(&PoolSlug::parse(slug).unwrap()).await.unwrap()
}

/// Claims an OpenID provider puts in an ID token.
fn id_claims(app: &TestApp, pool: &str) -> Value {
    let now = app.gh.now().as_secs();
    json!({"iss": app.issuer(pool), "sub": "user-1", "aud": "relying-party",
        "exp": now + 300, "iat": now, "nonce": "n-0S6_WzA2Mj"})
}

async fn id_token(app: &TestApp, pool: &str) -> String {
    let p = self::pool(app, pool).await;
    let token = app
        .gh
        .sign_id_token(&p, &id_claims(app, pool))
        .await
        .unwrap();
    token.expose().to_owned()
}

/// The pool's stored key of a family in a state, opened with the master key.
async fn opened_key(app: &TestApp, purpose: KeyPurpose) -> SigningKey {
    let record: SigningKeyRecord = app
        .gh
        .signing_keys_as_operator(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.purpose == purpose && k.state == KeyState::Current)
        .unwrap();
    let pool = pool(app, "acme").await;
    let pkcs8 = app
        .master_key()
        .open(pool.id, &record.kid, &record.sealed_private_key)
        .unwrap();
    SigningKey::from_pkcs8_with_kid(record.alg, &pkcs8, Some(&record.kid)).unwrap()
}

#[tokio::test]
async fn a_new_pool_publishes_an_access_key_and_an_rs256_id_token_key() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    let keys = jwks(&app, "acme").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    let of = |alg: &str| keys.iter().find(|k| k["alg"] == alg).unwrap().clone();
    let (access, id) = (of("ES256"), of("RS256"));
    assert_eq!(access["kty"], "EC");
    assert_eq!(id["kty"], "RSA");
    for k in [&access, &id] {
        assert_eq!(k["use"], "sig");
    }
    // Access tokens are signed by the access key, ID tokens by the ID-token key.
    let client = app.create_client("acme", &[]).await;
    let access_token = app.client_token("acme", &client).await;
    assert_eq!(jwt_header(&access_token)["kid"], access["kid"]);
    let token = id_token(&app, "acme").await;
    assert_eq!(
        jwt_header(&token),
        json!({"alg": "RS256", "typ": "JWT", "kid": id["kid"]})
    );
    assert_eq!(app.gh.id_token_alg().as_str(), id["alg"].as_str().unwrap());

    // A pool whose access tokens are RS256 too still has two keys, one per family.
    app.gh
        .create_pool(
            PoolSlug::parse("rsa").unwrap(),
            PoolSettings {
                signing_alg: SigningAlg::RS256,
                ..PoolSettings::default()
            },
            Vec::new(),
            None,
            &RequestMeta::default(),
        )
        .await
        .unwrap();
    let keys = jwks(&app, "rsa").await;
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k["alg"] == "RS256"));
    assert_ne!(keys[0]["kid"], keys[1]["kid"]);
    let access_token = app
        .client_token("rsa", &app.create_client("rsa", &[]).await)
        .await;
    let token = id_token(&app, "rsa").await;
    assert_ne!(jwt_header(&access_token)["kid"], jwt_header(&token)["kid"]);
}

#[tokio::test]
async fn an_id_token_verifies_for_a_relying_party_against_the_jwks() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    let token = id_token(&app, "acme").await;
    let verified = verify_id_token_with_jose(&app, "acme", &token)
        .await
        .unwrap();
    assert_eq!(verified["header"]["typ"], "JWT");
    assert_eq!(verified["payload"], id_claims(&app, "acme"));
    // It is not an access token to a verifier that checks the type either.
    assert!(verify_with_jose(&app, "acme", &token).await.is_err());
}

#[tokio::test]
async fn what_the_id_token_key_signs_is_never_an_access_token() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    let client = app.create_client("acme", &[]).await;
    let real = app.client_token("acme", &client).await;
    // Userinfo knows the client's token and has no user to show for it.
    let known = app.userinfo_status("acme", &real).await;
    assert_eq!(known, 403);
    let claims = jwt_claims(&real);

    // The same claims, re-signed as an access token (`typ: at+jwt`) by the ID-token key: a
    // key the pool publishes, but not for access tokens.
    let id_key = opened_key(&app, KeyPurpose::IdToken).await;
    let forged = jws::sign(&id_key, TYP_ACCESS_TOKEN, &claims).unwrap();
    assert_eq!(jwt_header(&forged)["typ"], "at+jwt");
    assert_eq!(
        app.introspect("acme", &client, &forged).await["active"],
        false
    );
    assert_eq!(app.userinfo_status("acme", &forged).await, 401);

    // Re-signed by the access key instead, the same claims are an access token: what was
    // refused was the key.
    let access_key = opened_key(&app, KeyPurpose::Access).await;
    let resigned = jws::sign(&access_key, TYP_ACCESS_TOKEN, &claims).unwrap();
    assert_eq!(
        app.introspect("acme", &client, &resigned).await["active"],
        true
    );
    assert_eq!(app.userinfo_status("acme", &resigned).await, known);

    // An ID token itself is no bearer token.
    let token = id_token(&app, "acme").await;
    assert_eq!(
        app.introspect("acme", &client, &token).await["active"],
        false
    );
    assert_eq!(app.userinfo_status("acme", &token).await, 401);
}

#[tokio::test]
async fn rotating_the_id_token_keys_keeps_the_old_one_published_and_the_access_keys_as_they_are() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    let client = app.create_client("acme", &[]).await;
    let access_token = app.client_token("acme", &client).await;
    let access = kid_of(&access_token);
    let before = id_token(&app, "acme").await;
    let first = kid_of(&before);

    let rotated = rotate_family(&app, KeyPurpose::IdToken, RotationKind::Scheduled)
        .await
        .unwrap();
    assert_eq!(rotated.purpose, KeyPurpose::IdToken);
    assert_eq!(rotated.kid(KeyState::Previous), Some(first.as_str()));
    let current = rotated.kid(KeyState::Current).unwrap().to_owned();
    let next = rotated.kid(KeyState::Next).unwrap().to_owned();
    assert!(rotated.dropped.is_empty());
    // The new keys are RS256 although the pool's access tokens are ES256.
    for k in rotated
        .keys
        .iter()
        .filter(|k| k.purpose == KeyPurpose::IdToken)
    {
        assert_eq!(k.alg, SigningAlg::RS256);
    }
    assert_eq!(
        published_kids(&app).await,
        sorted(&[&access, &first, &current, &next])
    );
    assert_eq!(current_kid(&app, KeyPurpose::Access).await, access);

    // The ID token signed before still verifies for a relying party; new ones use the new
    // key; access tokens are signed and accepted as before.
    verify_id_token_with_jose(&app, "acme", &before)
        .await
        .unwrap();
    let after = id_token(&app, "acme").await;
    assert_eq!(kid_of(&after), current);
    verify_id_token_with_jose(&app, "acme", &after)
        .await
        .unwrap();
    assert_eq!(kid_of(&app.client_token("acme", &client).await), access);
    assert_eq!(
        app.introspect("acme", &client, &access_token).await["active"],
        true
    );

    // The family's own rule: not again while its previous key may verify live tokens; a
    // scheduled rotation of the access keys is not held back by it.
    match rotate_family(&app, KeyPurpose::IdToken, RotationKind::Scheduled).await {
        Err(ServiceError::Conflict(m)) => assert!(m.contains(&first), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    rotate_family(&app, KeyPurpose::Access, RotationKind::Scheduled)
        .await
        .unwrap();

    // A compromised ID-token key is dropped at once: its tokens no longer verify.
    let dropped = rotate_family(&app, KeyPurpose::IdToken, RotationKind::Compromised)
        .await
        .unwrap();
    assert_eq!(dropped.dropped, [current]);
    assert!(
        verify_id_token_with_jose(&app, "acme", &after)
            .await
            .is_err()
    );
    assert_eq!(kid_of(&id_token(&app, "acme").await), next);
    assert_eq!(app.audit_count("acme", "pool.signing_key_rotated").await, 3);
}

/// Removes a pool's ID-token keys, as a pool created before they existed has none.
async fn strip_id_token_keys(app: &TestApp, slug: &str) {
    let pool = pool(app, slug).await;
    let store = gatehouse_store::SqlStore::connect(&app.database_url)
        .await
        .unwrap();
    let mut w = store.write(pool.id).await.unwrap();
    let mut keys = w.signing_keys().await.unwrap();
    keys.retain(|k| k.purpose == KeyPurpose::Access);
    w.replace_signing_keys(&keys).await.unwrap();
    w.commit().await.unwrap();
    store.close().await;
}

async fn id_token_kids(app: &TestApp, slug: &str) -> Vec<String> {
    app.gh
        .signing_keys_as_operator(&PoolSlug::parse(slug).unwrap())
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.purpose == KeyPurpose::IdToken)
        .map(|k| k.kid)
        .collect()
}

#[tokio::test]
async fn a_pool_from_before_id_tokens_gets_exactly_one_id_token_key() {
    let app = spawn_app().await;

    // Racing calls, each generating a key: one adds it.
    app.create_pool("acme").await;
    strip_id_token_keys(&app, "acme").await;
    assert!(id_token_kids(&app, "acme").await.is_empty());
    let acme = pool(&app, "acme").await;
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (gh, acme) = (app.gh.clone(), acme.clone());
        racers.spawn(async move { gh.ensure_id_token_key(&acme).await.unwrap() });
    }
    let added = racers
        .join_all()
        .await
        .into_iter()
        .filter(|added| *added)
        .count();
    assert_eq!(added, 1);
    assert_eq!(id_token_kids(&app, "acme").await.len(), 1);
    assert!(!app.gh.ensure_id_token_key(&acme).await.unwrap());

    // Two instances over the same database find a pool without one while serving its JWKS:
    // each publishes the one key that was added, and it signs ID tokens.
    app.create_pool("legacy").await;
    strip_id_token_keys(&app, "legacy").await;
    let (other, _stop) = app.second_instance().await;
    let url = |base: &str| format!("{base}/pools/legacy/.well-known/jwks.json");
    let mut fetches = tokio::task::JoinSet::new();
    for base in [app.addr.clone(), other.clone()]
        .into_iter()
        .cycle()
        .take(6)
    {
        let (http, url) = (app.http.clone(), url(&base));
        fetches.spawn(async move {
            let doc: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            let mut kids: Vec<String> = doc["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect();
            kids.sort();
            kids
        });
    }
    let served = fetches.join_all().await;
    let id = id_token_kids(&app, "legacy").await;
    assert_eq!(id.len(), 1);
    for kids in &served {
        assert_eq!(kids.len(), 2, "{kids:?}");
        assert!(kids.contains(&id[0]), "{kids:?}");
    }
    let token = id_token(&app, "legacy").await;
    assert_eq!(kid_of(&token), id[0]);
    assert_eq!(
        app.audit_count("legacy", "pool.signing_key_created").await,
        1
    );
    assert_eq!(app.audit_count("acme", "pool.signing_key_created").await, 1);
}
