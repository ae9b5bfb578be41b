//! Identity providers: created, changed and deleted in a pool's write transaction, deleting
//! the links to them; what their linked users may do, read together; pending sign-ins taken
//! once; one SAML key per pool; federated sessions kept with their session and gone with it.

use gatehouse_domain::federation::{
    AttributeMapping, FederatedSession, FederationStore, IdentityProvider, OAuthKind,
    OAuthSettings, PendingFederation, ProviderName, ProviderProtocol, SamlSpKey,
};
use gatehouse_domain::permission::{Permission, Role};
use gatehouse_domain::store::{Store, StoreError};
use gatehouse_domain::user::FederatedIdentity;

use crate::fixtures::*;

fn provider(pool: gatehouse_domain::ids::PoolId, name: &str) -> IdentityProvider {
    IdentityProvider {
        pool,
        name: ProviderName::parse(name).unwrap(),
        enabled: true,
        protocol: ProviderProtocol::OAuth(OAuthSettings {
            kind: OAuthKind::Oidc,
            issuer: Some("https://op.example".into()),
            client_id: "c1".into(),
            scopes: vec!["email".into()],
            endpoints: Default::default(),
        }),
        attribute_mapping: AttributeMapping::default(),
        sealed_secret: Some(vec![1, 2, 3]),
        created_at: T0,
        updated_at: T0,
    }
}

pub async fn providers_are_kept_per_pool(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let other = new_pool(store, "other").await;
    let idp = provider(pool.id, "op");

    let mut w = store.write(pool.id).await.unwrap();
    w.create_identity_provider(&idp).await.unwrap();
    w.commit().await.unwrap();
    let mut w = store.write(pool.id).await.unwrap();
    let again = w.create_identity_provider(&idp).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    drop(w);
    // A provider of another pool is not visible here, nor is it written by this pool's
    // transaction.
    let mut w = store.write(pool.id).await.unwrap();
    assert!(
        w.create_identity_provider(&provider(other.id, "op"))
            .await
            .is_err()
    );
    drop(w);
    assert_eq!(store.identity_providers(other.id).await.unwrap(), vec![]);
    assert_eq!(
        store.identity_provider(pool.id, &idp.name).await.unwrap(),
        Some(idp.clone())
    );

    let mut changed = idp.clone();
    changed.enabled = false;
    changed.updated_at = T0.plus_secs(5);
    let mut w = store.write(pool.id).await.unwrap();
    assert_eq!(
        w.identity_provider(&idp.name).await.unwrap(),
        Some(idp.clone())
    );
    w.update_identity_provider(&changed).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(
        store.identity_providers(pool.id).await.unwrap(),
        vec![changed.clone()]
    );

    // Deleting a provider deletes the links made through it, and only those.
    let user = new_user(store, pool.id, "alice").await;
    let link = |provider: &str, id: &str| FederatedIdentity {
        pool: pool.id,
        provider_name: provider.to_owned(),
        provider_user_id: id.to_owned(),
        user_id: user.id,
        created_at: T0,
    };
    let mut w = store.write(pool.id).await.unwrap();
    w.link_identity(&link("op", "u-1")).await.unwrap();
    w.link_identity(&link("adfs", "alice@corp")).await.unwrap();
    assert_eq!(w.identities_of_user(user.id).await.unwrap().len(), 2);
    assert!(w.delete_identity_provider(&idp.name).await.unwrap());
    assert!(!w.delete_identity_provider(&idp.name).await.unwrap());
    w.commit().await.unwrap();
    let left = store.identities_of_user(pool.id, user.id).await.unwrap();
    assert_eq!(left, vec![link("adfs", "alice@corp")]);
    assert_eq!(store.identity_providers(pool.id).await.unwrap(), vec![]);
}

pub async fn linked_users_standing_unites_roles_and_groups(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let name = ProviderName::parse("adfs").unwrap();
    let plain = new_user(store, pool.id, "plain").await;
    let mut w = store.write(pool.id).await.unwrap();
    w.link_identity(&FederatedIdentity {
        pool: pool.id,
        provider_name: "adfs".into(),
        provider_user_id: "p".into(),
        user_id: plain.id,
        created_at: T0,
    })
    .await
    .unwrap();
    let standing = w.standing_of_linked_users(&name).await.unwrap();
    assert!(!standing.contains(Permission::CreateUser));
    w.commit().await.unwrap();

    // A member of a group whose role is admin, linked to the provider: the provider's users
    // now hold every permission.
    let admin_member = new_user(store, pool.id, "member").await;
    let mut group = new_group(store, pool.id, "admins").await;
    group.roles = vec![Role::parse("admin").unwrap()];
    let mut w = store.write(pool.id).await.unwrap();
    w.update_group(&group).await.unwrap();
    w.set_user_groups(admin_member.id, &[group.name.clone()])
        .await
        .unwrap();
    w.link_identity(&FederatedIdentity {
        pool: pool.id,
        provider_name: "adfs".into(),
        provider_user_id: "m".into(),
        user_id: admin_member.id,
        created_at: T0,
    })
    .await
    .unwrap();
    let standing = w.standing_of_linked_users(&name).await.unwrap();
    assert!(standing.contains(Permission::CreateUser));
    assert!(
        !w.standing_of_linked_users(&ProviderName::parse("other").unwrap())
            .await
            .unwrap()
            .contains(Permission::CreateUser)
    );
    w.commit().await.unwrap();
}

pub async fn pending_sign_ins_are_taken_once(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let other = new_pool(store, "other").await;
    let pending = PendingFederation {
        pool: pool.id,
        handle_sha256: [7; 32],
        provider: ProviderName::parse("op").unwrap(),
        payload: "{}".into(),
        expires_at: T0.plus_secs(600),
    };
    store.put_pending_federation(&pending).await.unwrap();
    assert!(matches!(
        store.put_pending_federation(&pending).await,
        Err(StoreError::Conflict(_))
    ));
    // Another pool cannot take it.
    assert_eq!(
        store
            .take_pending_federation(other.id, &[7; 32], T0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .take_pending_federation(pool.id, &[7; 32], T0)
            .await
            .unwrap(),
        Some(pending.clone())
    );
    assert_eq!(
        store
            .take_pending_federation(pool.id, &[7; 32], T0)
            .await
            .unwrap(),
        None
    );
    // An expired one is gone when taken, and purged otherwise.
    let late = PendingFederation {
        handle_sha256: [8; 32],
        ..pending.clone()
    };
    store.put_pending_federation(&late).await.unwrap();
    assert_eq!(
        store
            .take_pending_federation(pool.id, &[8; 32], T0.plus_secs(600))
            .await
            .unwrap(),
        None
    );
    let stale = PendingFederation {
        handle_sha256: [9; 32],
        ..pending
    };
    store.put_pending_federation(&stale).await.unwrap();
    let counts = store
        .purge_expired(T0.plus_secs(601), &Default::default())
        .await
        .unwrap();
    assert_eq!(counts.pending_federations, 1);
}

pub async fn one_saml_key_per_pool(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    assert_eq!(store.saml_sp_key(pool.id).await.unwrap(), None);
    let first = SamlSpKey {
        pool: pool.id,
        sealed_key: vec![1],
        certificate: vec![2],
        created_at: T0,
    };
    assert_eq!(store.put_saml_sp_key(&first).await.unwrap(), first);
    let second = SamlSpKey {
        sealed_key: vec![3],
        ..first.clone()
    };
    assert_eq!(store.put_saml_sp_key(&second).await.unwrap(), first);
    assert_eq!(store.saml_sp_key(pool.id).await.unwrap(), Some(first));
}

/// A federated session is written in the transaction of its pool, once per session, only for
/// a session that exists; found by its session and by its provider's subject; and purged
/// with its session.
pub async fn federated_sessions_go_with_their_session(db: &Db) {
    use gatehouse_domain::audit::AuditAction;
    use gatehouse_domain::retention::PurgePolicy;

    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let other = new_pool(store, "other").await;
    let alice = new_user(store, pool.id, "alice").await;
    let corp = ProviderName::parse("corp").unwrap();
    let later = T0.plus_secs(3600);
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let s = sign_in(&alice, later);
        store
            .create_session(&s, &event(pool.id, AuditAction::UserSignedIn, "alice"))
            .await
            .unwrap();
        sessions.push(s);
    }
    let record = |session: &gatehouse_domain::session::Session, index: &str| FederatedSession {
        pool: pool.id,
        session_id: session.id,
        provider: corp.clone(),
        subject: "alice@corp.example".into(),
        name_id_format: Some("urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified".into()),
        session_index: Some(index.into()),
        sealed_id_token: Some(vec![7, 8, 9]),
        created_at: session.created_at,
    };
    let first = record(&sessions[0], "_one");
    let second = record(&sessions[1], "_two");
    let mut w = store.write(pool.id).await.unwrap();
    w.put_federated_session(&first).await.unwrap();
    w.put_federated_session(&second).await.unwrap();
    w.commit().await.unwrap();

    assert_eq!(
        store
            .federated_session(pool.id, first.session_id)
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store
            .federated_session(other.id, first.session_id)
            .await
            .unwrap(),
        None
    );
    let mut w = store.write(pool.id).await.unwrap();
    let found = w
        .federated_sessions_of(&corp, "alice@corp.example")
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert!(found.contains(&first) && found.contains(&second));
    assert_eq!(
        w.federated_sessions_of(&corp, "ALICE@corp.example")
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(
        w.federated_sessions_of(&ProviderName::parse("op").unwrap(), "alice@corp.example")
            .await
            .unwrap(),
        vec![]
    );
    // Once per session.
    let again = w.put_federated_session(&first).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    drop(w);
    // Only for a session that exists, and only in its pool's transaction.
    let mut w = store.write(pool.id).await.unwrap();
    let mut orphan = first.clone();
    orphan.session_id = gatehouse_domain::ids::SessionId::new_random();
    assert!(w.put_federated_session(&orphan).await.is_err());
    drop(w);
    let mut w = store.write(other.id).await.unwrap();
    assert!(w.put_federated_session(&first).await.is_err());
    drop(w);
    let mut w = store.write(other.id).await.unwrap();
    assert_eq!(
        w.federated_sessions_of(&corp, "alice@corp.example")
            .await
            .unwrap(),
        vec![]
    );
    drop(w);

    // Purged with the sessions, once they are past their grace.
    let policy = PurgePolicy::default();
    let counts = store
        .purge_expired(later.plus_secs(policy.session_grace_secs + 1), &policy)
        .await
        .unwrap();
    assert_eq!(counts.sessions, 2);
    for s in [&first, &second] {
        assert_eq!(
            store
                .federated_session(pool.id, s.session_id)
                .await
                .unwrap(),
            None
        );
    }
}
