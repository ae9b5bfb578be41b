//! Signing-key rotation (SPEC §8): tokens signed before a rotation keep verifying here and
//! with an independent verifier (`jose` over the JWKS) until they expire; the next key is
//! published before it signs; a compromised key is refused at once, also by another instance
//! over the same database; every rotation is audited as the operator's. These rotate the
//! access-token keys; the ID-token keys (`id_token_keys.rs`) stay as they are meanwhile.

use gatehouse_domain::audit::{AuditAction, AuditQuery};
use gatehouse_domain::ids::PoolSlug;
use gatehouse_domain::rotation::RotationKind;
use gatehouse_domain::session::ActorKind;
use gatehouse_domain::store::{KeyPurpose, KeyState};
use gatehouse_service::signing_keys::RotatedKeys;
use gatehouse_service::{Operator, RequestMeta, ServiceError};
use serde_json::Value;

use crate::common::{TestApp, introspect_at, jwt_header, spawn_app, verify_with_jose};

pub async fn rotate_family(
    app: &TestApp,
    purpose: KeyPurpose,
    kind: RotationKind,
) -> Result<RotatedKeys, ServiceError> {
    app.gh
        .rotate_signing_key_as_operator(
            &Operator::new("night-ops"),
            &PoolSlug::parse("acme").unwrap(),
            purpose,
            kind,
            &RequestMeta::default(),
        )
        .await
}

async fn rotate(app: &TestApp, kind: RotationKind) -> Result<RotatedKeys, ServiceError> {
    rotate_family(app, KeyPurpose::Access, kind).await
}

/// The pool's current key of a family, as stored.
pub async fn current_kid(app: &TestApp, purpose: KeyPurpose) -> String {
    app.gh
        .signing_keys_as_operator(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.purpose == purpose && k.state == KeyState::Current)
        .unwrap()
        .kid
}

pub async fn published_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app
        .http
        .get(app.pool_url("acme", "/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

pub fn sorted(kids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = kids.iter().map(|k| (*k).to_owned()).collect();
    v.sort();
    v
}

pub fn kid_of(token: &str) -> String {
    jwt_header(token)["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_rotation_publishes_the_next_key_and_keeps_old_tokens_valid_until_they_expire() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    let client = app.create_client("acme", &[]).await;
    let before = app.client_token("acme", &client).await;
    let first = kid_of(&before);
    // The ID-token key is published beside the access keys throughout, untouched.
    let id = current_kid(&app, KeyPurpose::IdToken).await;
    assert_eq!(published_kids(&app).await, sorted(&[&first, &id]));

    let rotated = rotate(&app, RotationKind::Scheduled).await.unwrap();
    use gatehouse_domain::store::KeyState::{Current, Next, Previous};
    let (current, next) = (
        rotated.kid(Current).unwrap().to_owned(),
        rotated.kid(Next).unwrap().to_owned(),
    );
    assert_eq!(rotated.kid(Previous), Some(first.as_str()));
    assert!(rotated.dropped.is_empty());
    // Previous, current and next are all published; the next one before it signs anything.
    assert_eq!(
        published_kids(&app).await,
        sorted(&[&first, &current, &next, &id])
    );

    // The old token still verifies, here and for an independent verifier; new ones use the
    // new key.
    assert_eq!(
        app.introspect("acme", &client, &before).await["active"],
        true
    );
    verify_with_jose(&app, "acme", &before).await.unwrap();
    let after = app.client_token("acme", &client).await;
    assert_eq!(kid_of(&after), current);
    verify_with_jose(&app, "acme", &after).await.unwrap();

    // Rotating again now would drop the key of tokens still alive: refused, with when.
    match rotate(&app, RotationKind::Scheduled).await {
        Err(ServiceError::Conflict(m)) => assert!(m.contains(&first), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        app.introspect("acme", &client, &before).await["active"],
        true
    );

    // Once they have expired (an hour, plus the margin), the next key signs and the first
    // one goes.
    app.clock.advance(3600 + 61);
    let recent = app.client_token("acme", &client).await;
    assert_eq!(kid_of(&recent), current);
    let again = rotate(&app, RotationKind::Scheduled).await.unwrap();
    assert_eq!(again.dropped, sorted(&[&first]));
    assert_eq!(again.kid(Current), Some(next.as_str()));
    assert_eq!(again.kid(Previous), Some(current.as_str()));
    let newest = again.kid(Next).unwrap().to_owned();
    assert_eq!(
        published_kids(&app).await,
        sorted(&[&current, &next, &newest, &id])
    );
    assert_eq!(current_kid(&app, KeyPurpose::IdToken).await, id);
    let latest = app.client_token("acme", &client).await;
    assert_eq!(kid_of(&latest), next);
    assert_eq!(
        app.introspect("acme", &client, &recent).await["active"],
        true
    );
    assert_eq!(
        app.introspect("acme", &client, &before).await["active"],
        false
    );

    // Both rotations are in the pool's audit log, as the operator's.
    let pool = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    let events = app
        .gh
        .audit_events(
            &pool,
            &Operator::new("auditor").in_pool(&pool.slug),
            &AuditQuery {
                action: Some(AuditAction::SigningKeyRotated),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    for e in &events {
        let actor = e.event.actor.as_ref().unwrap();
        assert_eq!(actor.kind, ActorKind::Operator);
        assert_eq!(actor.id, "night-ops");
    }
}

#[tokio::test]
async fn a_compromised_key_is_refused_at_once_also_by_another_instance() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    let client = app.create_client("acme", &[]).await;
    let (other, _stop) = app.second_instance().await;
    let stolen = app.client_token("acme", &client).await;
    // The other instance has loaded the pool's keys.
    assert_eq!(
        introspect_at(&app.http, &other, "acme", &client, &stolen).await["active"],
        true
    );
    // Longer than the other instance waits before it asks the store about an unknown key.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let rotated = rotate(&app, RotationKind::Compromised).await.unwrap();
    assert_eq!(rotated.dropped, [kid_of(&stolen)]);
    assert!(!published_kids(&app).await.contains(&kid_of(&stolen)));
    assert_eq!(
        app.introspect("acme", &client, &stolen).await["active"],
        false
    );
    assert!(verify_with_jose(&app, "acme", &stolen).await.is_err());

    // A token signed here with the new key verifies at the other instance at once: a key id
    // it has not loaded makes it read the keys again...
    let fresh = app.client_token("acme", &client).await;
    assert_eq!(
        introspect_at(&app.http, &other, "acme", &client, &fresh).await["active"],
        true
    );
    // ...which no longer hold the compromised one.
    assert_eq!(
        introspect_at(&app.http, &other, "acme", &client, &stolen).await["active"],
        false
    );
}

#[tokio::test]
async fn a_forced_rotation_drops_the_previous_key_at_once() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    let client = app.create_client("acme", &[]).await;
    let oldest = app.client_token("acme", &client).await;
    rotate(&app, RotationKind::Scheduled).await.unwrap();
    let middle = app.client_token("acme", &client).await;

    let forced = rotate(&app, RotationKind::Forced).await.unwrap();
    assert_eq!(forced.dropped, [kid_of(&oldest)]);
    assert_eq!(
        app.introspect("acme", &client, &oldest).await["active"],
        false
    );
    assert_eq!(
        app.introspect("acme", &client, &middle).await["active"],
        true
    );
}
