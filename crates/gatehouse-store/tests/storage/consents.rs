//! Consents: one per user and client, replaced in place, read and deleted in one pool only,
//! gone with their user or client; and the authorizations a consent's revocation ends.

use gatehouse_domain::consent::Consent;
use gatehouse_domain::ids::{ClientId, PoolId, SessionId, UserId};
use gatehouse_domain::session::{Session, SessionKind};
use gatehouse_domain::store::Store;
use gatehouse_domain::txn::SessionsToEnd;

use crate::fixtures::*;

fn consent(pool: PoolId, user: UserId, client: &str, scopes: &[&str]) -> Consent {
    Consent {
        pool,
        user_id: user,
        client_id: ClientId::parse(client).unwrap(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        granted_at: T0,
        updated_at: T0,
    }
}

pub async fn one_per_user_and_client_gone_with_either(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let other = new_pool(store, "other").await;
    let ada = new_user(store, pool.id, "ada").await;
    let bob = new_user(store, pool.id, "bob").await;
    new_client(store, pool.id, "partner").await;
    new_client(store, pool.id, "second").await;
    let partner = ClientId::parse("partner").unwrap();

    let mut w = store.write(pool.id).await.unwrap();
    w.put_consent(&consent(pool.id, ada.id, "partner", &["openid"]))
        .await
        .unwrap();
    w.put_consent(&consent(pool.id, ada.id, "second", &["openid"]))
        .await
        .unwrap();
    w.put_consent(&consent(pool.id, bob.id, "partner", &["email"]))
        .await
        .unwrap();
    w.commit().await.unwrap();

    // A second put replaces the scopes and time, never the first grant's time.
    let mut more = consent(pool.id, ada.id, "partner", &["openid", "email"]);
    more.granted_at = T0.plus_secs(99);
    more.updated_at = T0.plus_secs(100);
    let mut w = store.write(pool.id).await.unwrap();
    w.put_consent(&more).await.unwrap();
    let read = w.consent(ada.id, &partner).await.unwrap().unwrap();
    w.commit().await.unwrap();
    assert_eq!(read.scopes, ["openid", "email"]);
    assert_eq!(read.granted_at, T0);
    assert_eq!(read.updated_at, T0.plus_secs(100));
    let listed = store.consents_of_user(pool.id, ada.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].client_id.as_str(), "partner");

    // Another pool reads and deletes nothing of this one's.
    assert!(
        store
            .consents_of_user(other.id, ada.id)
            .await
            .unwrap()
            .is_empty()
    );
    let mut w = store.write(other.id).await.unwrap();
    assert!(w.consent(ada.id, &partner).await.unwrap().is_none());
    assert!(!w.delete_consent(ada.id, &partner).await.unwrap());
    w.commit().await.unwrap();

    // Deleted once; a second delete finds nothing.
    let mut w = store.write(pool.id).await.unwrap();
    assert!(w.delete_consent(bob.id, &partner).await.unwrap());
    assert!(!w.delete_consent(bob.id, &partner).await.unwrap());
    w.commit().await.unwrap();

    // The client's deletion takes its consents; the user's takes the rest.
    let mut w = store.write(pool.id).await.unwrap();
    w.delete_client(&partner).await.unwrap();
    w.commit().await.unwrap();
    let listed = store.consents_of_user(pool.id, ada.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].client_id.as_str(), "second");
    let mut w = store.write(pool.id).await.unwrap();
    w.delete_user(ada.id).await.unwrap();
    w.commit().await.unwrap();
    assert!(
        store
            .consents_of_user(pool.id, ada.id)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_revoked_consent_ends_only_that_client_s_authorizations(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let ada = new_user(store, pool.id, "ada").await;
    let browser = SessionId::new_ordered();
    let authorized = |client: &str| Session {
        id: SessionId::new_ordered(),
        pool: pool.id,
        user_id: ada.id,
        username: ada.username.clone(),
        client_id: Some(ClientId::parse(client).unwrap()),
        kind: SessionKind::Authorized {
            browser,
            staff: None,
        },
        created_at: T0,
        expires_at: T0.plus_secs(3600),
        revoked_at: None,
    };
    let partner = authorized("partner");
    let own = authorized("portal");
    let mut sign_in_with_client = sign_in(&ada, T0.plus_secs(3600));
    sign_in_with_client.client_id = Some(ClientId::parse("partner").unwrap());
    let mut w = store.write(pool.id).await.unwrap();
    for s in [&partner, &own, &sign_in_with_client] {
        w.create_session(s).await.unwrap();
    }
    let ended = w
        .end_sessions(
            &SessionsToEnd::AuthorizedFor {
                user: ada.id,
                client: ClientId::parse("partner").unwrap(),
            },
            T0.plus_secs(10),
        )
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert_eq!(ended.iter().map(|s| s.id).collect::<Vec<_>>(), [partner.id]);
    for (s, active) in [
        (&partner, false),
        (&own, true),
        (&sign_in_with_client, true),
    ] {
        let read = store.session(pool.id, s.id).await.unwrap().unwrap();
        assert_eq!(read.revoked_at.is_none(), active, "{:?}", s.client_id);
    }
}
