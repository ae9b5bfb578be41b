use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::SessionId;
use gatehouse_domain::session::RevokedToken;
use gatehouse_domain::store::{SessionFilter, Store, StoreError};
use gatehouse_domain::time::Timestamp;

use crate::fixtures::*;

pub async fn create_list_and_revoke(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let alice = new_user(store, pool.id, "alice").await;
    let bob = new_user(store, pool.id, "bob").await;
    let later = Timestamp(T0.0 + 3600);

    let mut s1 = sign_in(&alice, later);
    s1.created_at = Timestamp(T0.0 - 2);
    let created = event(pool.id, AuditAction::UserSignedIn, "alice");
    store.create_session(&s1, &created).await.unwrap();
    assert_written(store, &created).await;
    let mut s2 = impersonation(&alice, later);
    s2.created_at = Timestamp(T0.0 - 1);
    let started = event(pool.id, AuditAction::ImpersonationStarted, "alice");
    store.create_session(&s2, &started).await.unwrap();
    assert_written(store, &started).await;
    let mut expired = sign_in(&alice, T0);
    expired.created_at = Timestamp(T0.0 - 100);
    store
        .create_session(
            &expired,
            &event(pool.id, AuditAction::UserSignedIn, "alice"),
        )
        .await
        .unwrap();
    let mut expired_imp = impersonation(&bob, Timestamp(T0.0 - 1));
    expired_imp.created_at = Timestamp(T0.0 - 100);
    store
        .create_session(
            &expired_imp,
            &event(pool.id, AuditAction::ImpersonationStarted, "bob"),
        )
        .await
        .unwrap();
    let s3 = impersonation(&bob, later);
    store
        .create_session(
            &s3,
            &event(pool.id, AuditAction::ImpersonationStarted, "bob"),
        )
        .await
        .unwrap();

    assert_eq!(
        store.session(pool.id, s1.id).await.unwrap(),
        Some(s1.clone())
    );
    assert_eq!(
        store.session(pool.id, s2.id).await.unwrap(),
        Some(s2.clone())
    );
    assert_eq!(
        store
            .session(pool.id, SessionId::new_random())
            .await
            .unwrap(),
        None
    );

    // Active means not revoked and expiring strictly after now.
    let of_alice = store
        .list_sessions(pool.id, SessionFilter::ActiveOfUser(alice.id, T0))
        .await
        .unwrap();
    assert_eq!(of_alice, vec![s1.clone(), s2.clone()]);
    let impersonations = store
        .list_sessions(pool.id, SessionFilter::ActiveImpersonations(T0))
        .await
        .unwrap();
    assert_eq!(impersonations, vec![s2.clone(), s3.clone()]);
    let at_expiry = store
        .list_sessions(pool.id, SessionFilter::ActiveImpersonations(later))
        .await
        .unwrap();
    assert!(at_expiry.is_empty());

    let revoked_at = Timestamp(T0.0 + 60);
    let ended = event(pool.id, AuditAction::ImpersonationEnded, "alice");
    store
        .revoke_session(pool.id, s2.id, revoked_at, &ended)
        .await
        .unwrap();
    assert_written(store, &ended).await;
    let read = store.session(pool.id, s2.id).await.unwrap().unwrap();
    assert_eq!(read.revoked_at, Some(revoked_at));
    assert!(!read.is_active_at(T0));
    let impersonations = store
        .list_sessions(pool.id, SessionFilter::ActiveImpersonations(T0))
        .await
        .unwrap();
    assert_eq!(impersonations, vec![s3]);
    let of_alice = store
        .list_sessions(pool.id, SessionFilter::ActiveOfUser(alice.id, T0))
        .await
        .unwrap();
    assert_eq!(of_alice, vec![s1]);

    // Revoking twice, or revoking what does not exist, is NotFound and records nothing.
    let twice = event(pool.id, AuditAction::SessionRevoked, "alice");
    let err = store
        .revoke_session(pool.id, s2.id, Timestamp(T0.0 + 61), &twice)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(!was_written(store, &twice).await);
    assert_eq!(
        store
            .session(pool.id, s2.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(revoked_at)
    );
    let err = store
        .revoke_session(
            pool.id,
            SessionId::new_random(),
            T0,
            &event(pool.id, AuditAction::SessionRevoked, "x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");

    // A session must belong to a user of the pool, and its id is unique.
    let ghost = sign_in(&user_value(pool.id, "ghost"), later);
    let ev = event(pool.id, AuditAction::ImpersonationStarted, "ghost");
    let err = store.create_session(&ghost, &ev).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(!was_written(store, &ev).await);
    let ev = event(pool.id, AuditAction::ImpersonationStarted, "alice");
    let err = store.create_session(&s2, &ev).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(!was_written(store, &ev).await);
}

pub async fn token_revocation(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let other = new_pool(store, "other").await;
    let token = RevokedToken {
        pool: pool.id,
        jti: "jti-1".to_owned(),
        expires_at: Timestamp(T0.0 + 3600),
        revoked_at: T0,
    };
    assert!(!store.is_token_revoked(pool.id, "jti-1").await.unwrap());
    let ev = event(pool.id, AuditAction::TokenRevoked, "jti-1");
    store.revoke_token(&token, &ev).await.unwrap();
    assert_written(store, &ev).await;
    assert!(store.is_token_revoked(pool.id, "jti-1").await.unwrap());
    store
        .revoke_token(
            &RevokedToken {
                revoked_at: Timestamp(T0.0 + 5),
                ..token
            },
            &event(pool.id, AuditAction::TokenRevoked, "jti-1"),
        )
        .await
        .unwrap();
    assert!(store.is_token_revoked(pool.id, "jti-1").await.unwrap());
    assert!(!store.is_token_revoked(pool.id, "jti-2").await.unwrap());
    assert!(!store.is_token_revoked(other.id, "jti-1").await.unwrap());
}
