use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::client::{GrantType, SecretDigest};
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
}
