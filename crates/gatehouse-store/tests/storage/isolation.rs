use gatehouse_domain::audit::{AuditAction, AuditQuery};
use gatehouse_domain::ids::ClientId;
use gatehouse_domain::session::RevokedToken;
use gatehouse_domain::store::{SessionFilter, Store, StoreError};
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::user::{FederatedIdentity, VerifiableAttribute, VerificationCode};

use crate::fixtures::*;

/// Nothing of pool A can be read or changed through pool B's id.
pub async fn pools_do_not_see_each_other(db: &Db) {
    let store = &db.store;
    let a = new_pool(store, "a").await;
    let b = new_pool(store, "b").await;
    let alice = new_user(store, a.id, "alice").await;
    let group = new_group(store, a.id, "team").await;
    new_client(store, a.id, "app").await;
    store
        .set_user_groups(
            a.id,
            alice.id,
            &[gname("team")],
            &event(a.id, AuditAction::UserGroupsUpdated, "alice"),
        )
        .await
        .unwrap();
    let session = impersonation(&alice, Timestamp(T0.0 + 600));
    store
        .create_session(
            &session,
            &event(a.id, AuditAction::ImpersonationStarted, "alice"),
        )
        .await
        .unwrap();
    store
        .link_identity(
            &FederatedIdentity {
                pool: a.id,
                provider_name: "Google".to_owned(),
                provider_user_id: "g".to_owned(),
                user_id: alice.id,
                created_at: T0,
            },
            &event(a.id, AuditAction::UserLinkedToProvider, "alice"),
        )
        .await
        .unwrap();
    store
        .revoke_token(
            &RevokedToken {
                pool: a.id,
                jti: "j".to_owned(),
                expires_at: Timestamp(T0.0 + 60),
                revoked_at: T0,
            },
            &event(a.id, AuditAction::TokenRevoked, "j"),
        )
        .await
        .unwrap();
    store
        .put_verification_code(&VerificationCode {
            pool: a.id,
            user_id: alice.id,
            attribute: VerifiableAttribute::Email,
            code_sha256: [1; 32],
            expires_at: Timestamp(T0.0 + 60),
            attempts: 0,
            destination: "alice@example.com".to_owned(),
            sealed_code: None,
        })
        .await
        .unwrap();

    assert_eq!(
        store.user_by_username(b.id, &uname("alice")).await.unwrap(),
        None
    );
    assert_eq!(store.user_by_id(b.id, alice.id).await.unwrap(), None);
    assert!(store.list_users(b.id, None, 100).await.unwrap().is_empty());
    assert_eq!(store.group(b.id, &group.name).await.unwrap(), None);
    assert!(store.list_groups(b.id, None, 100).await.unwrap().is_empty());
    assert!(
        store
            .groups_of_user(b.id, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .users_in_group(b.id, &group.name, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .client(b.id, &ClientId::parse("app").unwrap())
            .await
            .unwrap(),
        None
    );
    assert!(store.list_clients(b.id).await.unwrap().is_empty());
    assert_eq!(store.session(b.id, session.id).await.unwrap(), None);
    assert!(
        store
            .list_sessions(b.id, SessionFilter::ActiveOfUser(alice.id, T0))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_sessions(b.id, SessionFilter::ActiveImpersonations(T0))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .identities_of_user(b.id, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.is_token_revoked(b.id, "j").await.unwrap());
    assert_eq!(
        store
            .take_verification_code(b.id, alice.id, VerifiableAttribute::Email)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.signing_keys(b.id).await.unwrap(),
        vec![key(b.id, "k1")]
    );

    let not_found =
        |r: Result<(), StoreError>| assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let ev = || event(b.id, AuditAction::UserDeleted, "alice");
    not_found(store.delete_user(b.id, alice.id, &ev()).await);
    let mut moved = alice.clone();
    moved.pool = b.id;
    not_found(save_user(store, &moved, &ev()).await);
    not_found(store.set_user_groups(b.id, alice.id, &[], &ev()).await);
    not_found(store.delete_group(b.id, &group.name, &ev()).await);
    let mut moved_group = group.clone();
    moved_group.pool = b.id;
    not_found(save_group(store, &moved_group, &ev()).await);
    not_found(
        store
            .delete_client(b.id, &ClientId::parse("app").unwrap(), &ev())
            .await,
    );
    not_found(store.revoke_session(b.id, session.id, T0, &ev()).await);

    // B's audit log holds only B's creation; A's is untouched by the failed attempts above.
    let b_events = all_events(store, b.id).await;
    assert_eq!(b_events.len(), 1);
    assert_eq!(b_events[0].event.action, AuditAction::PoolCreated);
    let q = AuditQuery {
        action: Some(AuditAction::UserCreated),
        limit: 10,
        ..AuditQuery::default()
    };
    assert!(store.list_audit(b.id, &q).await.unwrap().is_empty());

    // And everything of A is still there.
    assert_eq!(
        store.user_by_id(a.id, alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.groups_of_user(a.id, alice.id).await.unwrap(),
        vec![group]
    );
    assert!(
        store
            .session(a.id, session.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
}
