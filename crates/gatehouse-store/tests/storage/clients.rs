use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::client::{AuthFlow, GrantType, SecretDigest};
use gatehouse_domain::ids::ClientId;
use gatehouse_domain::store::{Store, StoreError};
use gatehouse_domain::time::Timestamp;

use crate::fixtures::*;

pub async fn crud(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let confidential = client_value(pool.id, "m2m");
    let created = event(pool.id, AuditAction::AppClientCreated, "m2m");
    store.create_client(&confidential, &created).await.unwrap();
    assert_written(store, &created).await;

    let mut public = client_value(pool.id, "spa");
    public.secret_sha256 = None;
    public.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    public.redirect_uris = vec![
        "https://spa.example.com/cb".to_owned(),
        "http://127.0.0.1:3000/cb".to_owned(),
    ];
    // Kept as given: order, case and query strings are part of the exact match.
    public.post_logout_redirect_uris = vec![
        "https://spa.example.com/Signed-Out?from=gatehouse".to_owned(),
        "com.example.spa:/bye".to_owned(),
    ];
    public.third_party = true;
    public.scopes = Vec::new();
    public.created_at = Timestamp(T0.0 + 1);
    store
        .create_client(
            &public,
            &event(pool.id, AuditAction::AppClientCreated, "spa"),
        )
        .await
        .unwrap();

    let id = |s: &str| ClientId::parse(s).unwrap();
    assert_eq!(
        store.client(pool.id, &id("m2m")).await.unwrap(),
        Some(confidential.clone())
    );
    let read = store.client(pool.id, &id("spa")).await.unwrap().unwrap();
    assert_eq!(read, public);
    assert!(read.is_public() && read.third_party);
    assert!(!confidential.is_public() && !confidential.third_party);
    assert_eq!(store.client(pool.id, &id("nope")).await.unwrap(), None);
    assert_eq!(
        store.list_clients(pool.id).await.unwrap(),
        vec![confidential.clone(), public.clone()]
    );

    let mut dup = client_value(pool.id, "m2m");
    dup.secret_sha256 = Some(SecretDigest([1; 32]));
    let ev = event(pool.id, AuditAction::AppClientCreated, "m2m");
    let err = store.create_client(&dup, &ev).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(!was_written(store, &ev).await);
    assert_eq!(
        store.client(pool.id, &id("m2m")).await.unwrap(),
        Some(confidential)
    );

    let deleted = event(pool.id, AuditAction::AppClientDeleted, "m2m");
    store
        .delete_client(pool.id, &id("m2m"), &deleted)
        .await
        .unwrap();
    assert_written(store, &deleted).await;
    assert_eq!(store.client(pool.id, &id("m2m")).await.unwrap(), None);
    assert_eq!(store.list_clients(pool.id).await.unwrap(), vec![public]);
    let again = event(pool.id, AuditAction::AppClientDeleted, "m2m");
    let err = store
        .delete_client(pool.id, &id("m2m"), &again)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(!was_written(store, &again).await);
}

/// Clients registered before post-logout redirect URIs and third parties existed read as
/// first-party clients with none.
pub async fn rows_from_before_registration_fields(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    sqlx::query(
        "INSERT INTO app_clients (pool_id, client_id, name, secret_sha256, scopes, grant_types, \
         redirect_uris, created_at) VALUES ($1, 'old', 'Old', NULL, '[]', \
         '[\"authorization_code\"]', '[\"https://old.example.com/cb\"]', $2)",
    )
    .bind(pool.id.to_string())
    .bind(T0.as_secs())
    .execute(store.pool())
    .await
    .unwrap();
    let old = store
        .client(pool.id, &ClientId::parse("old").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.redirect_uris, ["https://old.example.com/cb"]);
    assert!(old.post_logout_redirect_uris.is_empty());
    assert!(!old.third_party);
    assert!(old.is_public());
    // No flows recorded (as before migration 0024): the default set.
    assert_eq!(old.auth_flows, AuthFlow::DEFAULT);
    assert!(!old.allows(AuthFlow::UserAuth));
}

/// A client's sign-in flows are kept as given (none at all included), and are what an update
/// changes, on its own client only.
pub async fn auth_flows_round_trip_and_update(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let id = |s: &str| ClientId::parse(s).unwrap();
    let mut narrow = client_value(pool.id, "narrow");
    narrow.auth_flows = vec![AuthFlow::Custom];
    let mut none = client_value(pool.id, "none");
    none.auth_flows = Vec::new();
    let other = client_value(pool.id, "other");
    for c in [&narrow, &none, &other] {
        store
            .create_client(
                c,
                &event(pool.id, AuditAction::AppClientCreated, c.client_id.as_str()),
            )
            .await
            .unwrap();
    }
    let read = |name: &'static str| async move {
        store.client(pool.id, &id(name)).await.unwrap().unwrap()
    };
    assert_eq!(read("narrow").await.auth_flows, [AuthFlow::Custom]);
    assert!(read("none").await.auth_flows.is_empty());
    assert_eq!(read("other").await.auth_flows, AuthFlow::DEFAULT);

    let mut w = store.write(pool.id).await.unwrap();
    let mut c = w.client(&id("narrow")).await.unwrap().unwrap();
    c.auth_flows = AuthFlow::ALL.to_vec();
    w.update_client(&c).await.unwrap();
    w.commit().await.unwrap();
    let widened = read("narrow").await;
    assert_eq!(widened.auth_flows, AuthFlow::ALL);
    assert_eq!(widened, c);
    assert_eq!(read("other").await, other);
    assert_eq!(
        store.list_clients(pool.id).await.unwrap(),
        vec![c.clone(), none, other]
    );

    // An update of a client that is gone (or of another pool) writes nothing.
    let elsewhere = client_value(new_pool(store, "elsewhere").await.id, "narrow");
    let mut w = store.write(pool.id).await.unwrap();
    let mut ghost = client_value(pool.id, "ghost");
    ghost.auth_flows = Vec::new();
    assert!(matches!(
        w.update_client(&ghost).await.unwrap_err(),
        StoreError::NotFound
    ));
    assert!(w.update_client(&elsewhere).await.is_err());
    drop(w);
    assert_eq!(read("narrow").await, c);
}
